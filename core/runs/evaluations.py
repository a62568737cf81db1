"""Evaluating any checkpoint with the training runs' suite (what `python -m core.evaluate`
does), and the store of those evaluations, <runs_dir>/_evals/<eval-id>/.

<eval-id> hashes what is evaluated: the weights (resolved source, SHA-256, normalisation), the
model and data settings, the test points, eps, the seed and CW's kappa; not the attacks, so
asking again for more attacks runs only those. For run:RUN_ID the run's stored config is the
base and the overrides given apply on top, so the plain command reproduces the run's metrics."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import core.conf
from core.config import RunConfig, experiment_dict, from_dict, run_id, to_dict
from core.config.compose import compose
from core.data.sets import Splits
from core.evaluation import EVAL_ATTACKS, ordered
from core.infra.atomic import write_text
from core.infra.errors import ConfigError, UserError
from core.infra.provenance import code_version, machine, package_versions
from core.infra.registry import UnknownNameError
from core.infra.rundir import RunDir
from core.models import BuiltModel, timm_kwargs
from core.models.families import head_classes, meta_model
from core.models.sources import load_weights, source_of, split_source, weights_missing
from core.runs.checks import check_inputs, check_writable, validate
from core.runs.run import (
    answers,
    build,
    choose_kernels,
    evaluate_suite,
    exclusive,
    log_to,
    prepare,
)

log = logging.getLogger("core")
EVALS = "_evals"   # <runs_dir>/_evals/<eval-id>/: one folder per evaluated (weights, settings)
CONF = core.conf.FOLDER
# what an evaluation computes depends on these besides the model and data settings ...
EVALUATED = ("attack.eps", "seed", "eval.n", "eval.points", "eval.cw_kappa", "eval.step_size",
             "eval.aa_chunk")
# ... and not on these (the weights come in by their SHA-256)
NOT_EVALUATED = ("model.source", "model.drop_path", "data.train_subset", "data.drop_last")
# a checkpoint's shape that says which input it was made for: (key, what, the setting to fix)
FIT_PROBES = (
    ("pos_embed", "image size", "data.img_size (or model.img_size)"),
    ("layers.0.blocks.0.attn.relative_position_bias_table", "window size",
     "data.img_size and model.window_size"),
    ("patch_embed.proj.weight", "patch size", "model.patch_size"),
)


def evaluation_config(overrides: list[str]) -> RunConfig:
    """The composed config; for model.source=run:ID the run's own config with `overrides`
    on top (its model, data points, eps, seed, evaluation settings and thread count)."""
    cfg = compose(overrides)
    kind, arg = split_source(cfg.model.source)
    try:
        source = source_of(cfg.model.source)
    except UnknownNameError as e:
        raise ConfigError(f"model.source: {e}") from None
    if source.stored_config is None:  # weights that do not carry their settings
        return cfg
    problem = weights_missing(cfg.model.source, cfg.runs_dir)
    if problem:
        raise UserError(problem)
    stored = source.stored_config(arg, Path(cfg.runs_dir))
    try:
        return on_top(stored, cfg, {*set_by(overrides), "runs_dir", "model.source"})
    except (OmegaConfBaseException, KeyError) as e:
        raise ConfigError(f"run {arg}'s stored config does not fit this code's schema "
                          f"({str(e).splitlines()[0]}); give the settings as overrides with "
                          "model.source=file:<its weights.pth>") from None


def on_top(base: dict, cfg: RunConfig, paths: set[str]) -> RunConfig:
    """`base` (a stored config) with the dotted fields `paths` taken from `cfg`."""
    d, given = copy.deepcopy(base), to_dict(cfg)
    for path in sorted(paths):
        *parents, leaf = path.split(".")
        src, dst = given, d
        for p in parents:
            src, dst = src[p], dst.setdefault(p, {})
        dst[leaf] = copy.deepcopy(src[leaf])
    return from_dict(d)


def set_by(overrides: list[str]) -> set[str]:
    """The dotted fields `overrides` set: a key=value its key; a group=preset the fields the
    preset file sets (and those of the presets it swaps in)."""
    out: set[str] = set()
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        out |= preset_keys(key, value) if (CONF / key).is_dir() else {key}
    return out


def preset_keys(group: str, name: str) -> set[str]:
    path = CONF / group / f"{name}.yaml"
    text = path.read_text() if path.is_file() else ""
    data = yaml.safe_load(text) or {}
    prefix = "" if "@package _global_" in text else f"{group}."
    keys = set(_leaves({k: v for k, v in data.items() if k != "defaults"}, prefix))
    for item in data.get("defaults", []):
        for k, v in (item.items() if isinstance(item, dict) else []):
            swapped = k.removeprefix("override").strip().lstrip("/")
            if (CONF / swapped).is_dir():
                keys |= preset_keys(swapped, str(v))
    return keys


def _leaves(d: dict, prefix: str) -> Iterator[str]:
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def checked_source(cfg: RunConfig) -> str:
    """The source to load (a RobustBench entry qualified with the data set's), after every
    check that needs no weights: values, source kind, entry vs architecture, files, device."""
    validate(cfg)
    needed = source_of(cfg.model.source).needs(cfg)
    if needed is not None:
        raise ConfigError(f"model.source={cfg.model.source} names a run to train, not a "
                          f"checkpoint; evaluate that run: model.source=run:{run_id(needed)}")
    kind, arg = split_source(cfg.model.source)
    if kind == "run":  # "set runs_dir=DIR" alone would lose the run it holds
        try:
            check_writable(cfg.runs_dir)
        except UserError:
            raise UserError(f"runs_dir={cfg.runs_dir} holds run {arg} but cannot be written "
                            f"(evaluations go to {Path(cfg.runs_dir) / EVALS}): copy the run "
                            f"where you can write (cp -r {Path(cfg.runs_dir) / arg} DIR/) and "
                            "give runs_dir=DIR") from None
    source = f"{kind}:{source_of(cfg.model.source).resolve(arg, cfg)}" if arg else kind
    check_inputs(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, source=source)))
    return source


def evaluate_checkpoint(cfg: RunConfig) -> dict:
    """Evaluate the checkpoint `cfg` names (or return its finished evaluation if it holds
    every attack asked for); returns the evaluation's result dict."""
    choose_kernels(cfg)
    source = checked_source(cfg)
    device, splits, x, y = prepare(cfg)
    img_size = cfg.model.img_size or cfg.data.img_size
    built = _build_checked(cfg, splits, img_size, source)
    ident = identity(cfg, built, splits.num_classes)
    folder = eval_dir(cfg.runs_dir, ident)
    done = folder.read_result()
    if answers(done, cfg):
        return done
    with exclusive(folder.mkdir()):  # a second evaluation of it waits, then reuses it
        done = folder.read_result()
        if answers(done, cfg):
            return done
        with log_to(folder):
            return _evaluate_into(cfg, folder, built, splits, x, y, device, ident, done)


def _build_checked(cfg: RunConfig, splits: Splits, img_size: int, source: str) -> BuiltModel:
    try:
        built = build(cfg, splits, source)
    except ConfigError as e:
        if "do not fit" not in str(e):
            raise
        raise ConfigError(misfit(cfg, source, splits.num_classes, img_size) or str(e)) from None
    problem = fit_problem(built, cfg.model.arch, splits.num_classes, img_size)
    if problem:
        raise ConfigError(problem)
    return built


def fit_problem(built: BuiltModel, arch: str, num_classes: int, img_size: int) -> str | None:
    """Why weights that loaded are not the model they were made for: another class count,
    or another input (timm resizes position embeddings and windows to fit, which is right
    for fine-tuning and wrong for evaluating a checkpoint)."""
    sd, net, src = built.weights.state_dict, built.model.net, built.weights.resolved
    if sd is None:
        return None
    problem = classes_problem(src, sd, arch, num_classes)
    if problem:
        return problem
    own = net.state_dict()
    for key, what, fix in FIT_PROBES:
        if key in sd and key in own and sd[key].shape != own[key].shape:
            return (f"weights {src} were made for another {what}: {key} is "
                    f"{list(sd[key].shape)} in them, {list(own[key].shape)} in "
                    f"{type(net).__name__} at {img_size}px; set {fix} to theirs")
    return None


def classes_problem(src: str, sd: dict, arch: str, num_classes: int) -> str | None:
    classes = head_classes(arch, sd)
    if classes is None or classes == num_classes:
        return None
    return (f"weights {src} classify {classes} classes but the data set has {num_classes}; "
            f"evaluate them on a data set with {classes} classes (data=NAME)")


def misfit(cfg: RunConfig, source: str, num_classes: int, img_size: int) -> str | None:
    """A state dict that does not load, in one line: which keys are missing, which are not
    the architecture's, which have another shape."""
    sd = load_weights(source, cfg.runs_dir).state_dict or {}
    kwargs, _ = timm_kwargs(cfg.model, img_size, num_classes)
    net = meta_model(cfg.model.arch, **kwargs)
    problem = classes_problem(source, sd, cfg.model.arch, num_classes)
    if problem:
        return problem
    own = net.state_dict()
    absent = [k for k in own if k not in sd]
    foreign = [k for k in sd if k not in own]
    shaped = [k for k in own if k in sd and own[k].shape != sd[k].shape]
    parts = []
    if absent:
        parts.append(f"{len(absent)} of its {len(own)} keys are missing (e.g. {absent[0]})")
    if foreign:
        parts.append(f"{len(foreign)} keys are not its (e.g. {foreign[0]})")
    if shaped:
        k = shaped[0]
        parts.append(f"{k} is {list(sd[k].shape)}, not {list(own[k].shape)}")
    if not parts:
        return None
    return (f"weights {source} do not fit {cfg.model.arch}: {'; '.join(parts)}; give the "
            "architecture they were saved from (model=... or model.arch=...)")


def identity(cfg: RunConfig, built: BuiltModel, num_classes: int) -> dict:
    """What an evaluation's numbers depend on (the attacks asked for aside): its folder's key."""
    w = built.weights
    flat = experiment_dict(cfg)
    settings = {k: v for k, v in flat.items() if k in EVALUATED or (
        k.startswith(("model.", "data.")) and not k.startswith(NOT_EVALUATED))}
    return {"weights": {"source": w.resolved, "sha256": w.sha256, "mean": list(w.mean),
                        "std": list(w.std)},
            "num_classes": num_classes, "img_size": cfg.model.img_size or cfg.data.img_size,
            **settings}


def eval_id(ident: dict) -> str:
    text = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def eval_dir(runs_dir: str | Path, ident: dict) -> RunDir:
    return RunDir.of(Path(runs_dir) / EVALS, eval_id(ident))


def evaluations(runs_dir: str | Path) -> Iterator[dict]:
    """Every finished evaluation under `runs_dir`, in folder-name order."""
    root = Path(runs_dir) / EVALS
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        result = RunDir(folder).read_result()
        if result is not None:
            yield result


def _evaluate_into(cfg: RunConfig, folder: RunDir, built: BuiltModel, splits: Splits,
                   x: torch.Tensor, y: torch.Tensor, device: torch.device, ident: dict,
                   before: dict | None) -> dict:
    """Run the asked attacks (with those of an earlier request, read from their stored
    flags) and write the result with its provenance."""
    started = time.time()
    earlier = before["config"]["eval"] if before else {"attacks": []}
    attacks = ordered(set(earlier["attacks"]) | set(cfg.eval.attacks))
    cfg = _keep_earlier_limits(cfg, earlier)
    log.info("evaluation %s of %s (sha256 %s) on %s: %s", folder.name, built.weights.resolved,
             built.weights.sha256, splits.description, attacks)
    write_text(folder.config, OmegaConf.to_yaml(OmegaConf.structured(cfg)))  # for people
    model = built.model.to(device).eval()
    metrics = evaluate_suite(cfg, model, x, y, attacks, folder, device)
    config = to_dict(cfg)
    config["eval"]["attacks"] = attacks
    result = {
        "eval_id": folder.name, "status": "done", "metrics": metrics, **metrics,
        "n_eval": len(y), "num_classes": splits.num_classes, "data": splits.description,
        "data_stand_in": splits.stand_in,
        "source": built.weights.resolved, "weights": built.weights.record(), "identity": ident,
        "config": config, "code": code_version(), "packages": package_versions(),
        "machine": machine(device), "wall_seconds": time.time() - started,
        "evaluations": [*(before or {}).get("evaluations", []),
                        {"attacks": _added(attacks, before, metrics), "code": code_version(),
                         "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}],
    }
    folder.write_result(result)
    log.info("evaluation %s: %s", folder.name, {k: round(v, 4) for k, v in metrics.items()
                                                 if k.endswith("acc")})
    return folder.read_result()


def _keep_earlier_limits(cfg: RunConfig, earlier: dict) -> RunConfig:
    """An attack kept from an earlier request keeps the points it ran on (AutoAttack's n_aa),
    so asking for other attacks never re-runs it on more points."""
    limits = {a.limit: earlier[a.limit] for a in EVAL_ATTACKS.values()
              if a.limit and a.name in earlier["attacks"] and a.name not in cfg.eval.attacks
              and a.limit in earlier}
    return dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **limits))


def _added(attacks: list[str], before: dict | None, metrics: dict) -> list[str]:
    old = (before or {}).get("metrics", {})
    return [a for a in attacks if any(old.get(k) != metrics.get(k) for k in (
        EVAL_ATTACKS.get(a).column, EVAL_ATTACKS.get(a).count_column))]
