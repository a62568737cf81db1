"""Where pretrained weights come from: `none`, `timm:<tag>`, `file:<path>`, `run:<run-id>`,
`pretrain`, `robustbench:<name>` (RobustBench's on-disk layout, core/models/robustbench.py).

Each source entry knows how to load (the raw state dict plus what the result must record:
the resolved source, the SHA-256 of the weights file, the normalisation the weights expect),
how to tell offline whether the weights are there, and which run it needs first, if any
(`pretrain`: a clean pretraining run, whose cost is that run's).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.config import RunConfig, pretrain_config
from core.data.sets import STAND_IN
from core.infra.atomic import sha256_file
from core.infra.errors import ConfigError, UserError
from core.infra.registry import Registry
from core.infra.rundir import RunDir
from core.models import robustbench
from core.models.robustbench import entry_problem, qualified
from core.models.weights import Weights


@dataclass(frozen=True)
class Source:
    """load(arg, runs_dir) -> Weights. missing(arg, runs_dir) -> why the weights are not on
    this machine (None: they are), asked before any work. needs(cfg) -> the run that must
    finish first (its weights are then loaded as `run:<id>`), or None. stored_config(arg,
    runs_dir) -> the config the weights were made with (core.evaluate starts from it)."""

    load: Callable[[str, Path], Weights]
    missing: Callable[[str, Path], str | None] = lambda arg, runs_dir: None
    needs: Callable[[RunConfig], RunConfig | None] = lambda cfg: None
    # the config the weights were trained with, where the source keeps it (a run's)
    stored_config: Callable[[str, Path], dict] | None = None
    # the argument made exact for a config (a RobustBench name gets its data set), checked
    resolve: Callable[[str, RunConfig], str] = lambda arg, cfg: arg
    # whether weights from it count as data beyond the training set (RobustBench's field)
    extra_data: Callable[[dict], bool] = lambda cfg: True


SOURCES: Registry[Source] = Registry("weight source")


def split_source(source: str) -> tuple[str, str]:
    kind, _, arg = source.partition(":")
    return kind, arg


def source_of(source: str) -> Source:
    return SOURCES.get(split_source(source)[0])


def load_weights(source: str, runs_dir: str | Path = "runs") -> Weights:
    kind, arg = split_source(source)
    return SOURCES.get(kind).load(arg, Path(runs_dir))


def weights_missing(source: str, runs_dir: str | Path = "runs") -> str | None:
    kind, arg = split_source(source)
    return SOURCES.get(kind).missing(arg, Path(runs_dir))


def _none(arg: str, runs_dir: Path) -> Weights:
    return Weights(None, "none")


def _file(arg: str, runs_dir: Path) -> Weights:
    """A timm-format state dict (.pth/.bin/.safetensors), e.g. on a cluster without internet."""
    from timm.models import load_state_dict

    problem = _file_missing(arg, runs_dir)
    if problem:
        raise UserError(problem)
    path = Path(arg).expanduser()
    try:
        sd = load_state_dict(str(path), weights_only=True)
    except Exception as e:  # unpickling and format errors come in many types
        raise UserError(f"weights file {path} cannot be read as a state dict "
                        f"({type(e).__name__}); model.source=file:PATH takes a .pth, .bin or "
                        ".safetensors state dict") from None
    return Weights(sd, f"file:{path.resolve()}", sha256_file(path))


def _file_missing(arg: str, runs_dir: Path) -> str | None:
    path = Path(arg).expanduser()
    if path.is_file():
        return None
    return (f"weights file not found: {path} (model.source=file:PATH needs a state dict file; "
            "`python -m core.prefetch weights TAG --out FILE` writes one)")


def _run(arg: str, runs_dir: Path) -> Weights:
    """The final weights of a run of this project (e.g. a clean pretraining run)."""
    problem = _run_missing(arg, runs_dir)
    if problem:
        raise UserError(problem)
    run_dir = RunDir.of(runs_dir, arg)
    meta = run_dir.read_result() or {}
    sd = torch.load(run_dir.weights, map_location="cpu", weights_only=True)
    norm = meta.get("pretrained") or {}
    return Weights(sd, f"run:{arg}", sha256_file(run_dir.weights), norm.get("mean"),
                   norm.get("std"), num_classes=meta.get("num_classes"))


def _run_missing(arg: str, runs_dir: Path) -> str | None:
    run_dir = RunDir.of(runs_dir, arg)
    if run_dir.weights.is_file() and run_dir.result.is_file():
        return None
    return (f"no weights for run {arg}: {run_dir.weights} is missing (is the run finished, "
            "and is runs_dir right?)")


def _timm(tag: str, runs_dir: Path) -> Weights:
    """A timm pretrained tag, from the Hugging Face / torch hub cache or the network."""
    import timm

    cfg = _timm_cfg(tag)
    try:
        net = timm.create_model(tag, pretrained=True)
    except Exception as e:  # network or cache problems come in many exception types
        raise UserError(
            f"cannot load timm weights '{tag}' ({type(e).__name__}); on a machine with internet "
            f"run `python -m core.prefetch weights {tag}` (fills the cache; set HF_HUB_OFFLINE=1 "
            "on the cluster) or use model.source=file:PATH") from None
    path = cached_weights_file(tag)
    stand_in = path is not None and (path.parent / STAND_IN).is_file()
    return Weights(net.state_dict(), f"timm:{tag}", sha256_file(path) if path else None,
                   tuple(cfg.mean), tuple(cfg.std), num_classes=cfg.num_classes,
                   info={"weights_file": str(path) if path else None, "stand_in": stand_in})


def _timm_cfg(tag: str):
    import timm
    from timm.models import get_pretrained_cfg

    arch, _, _ = tag.partition(".")
    cfg = get_pretrained_cfg(tag)
    if cfg is None or not timm.is_model(arch):
        raise ConfigError(f"unknown timm pretrained tag '{tag}'; "
                          f"see timm.list_pretrained('{arch}*')")
    return cfg


def _timm_missing(tag: str, runs_dir: Path) -> str | None:
    _timm_cfg(tag)
    if cached_weights_file(tag) is not None:
        return None
    return (f"timm weights '{tag}' are not in the local cache: run `python -m core.prefetch "
            f"weights {tag}` on a machine with internet (set HF_HUB_OFFLINE=1 on the cluster), "
            "or use model.source=file:PATH")


def cached_weights_file(tag: str) -> Path | None:
    """The local file timm loads `tag` from (HF hub or torch hub cache), if it can be found."""
    from timm.models import get_pretrained_cfg
    from timm.models._builder import _resolve_pretrained_source

    cfg = get_pretrained_cfg(tag).to_dict()
    load_from, loc = _resolve_pretrained_source(cfg)
    if load_from == "hf-hub":
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = loc if isinstance(loc, tuple) else (loc, None)
        names = [filename] if filename else ["model.safetensors", "pytorch_model.bin",
                                             "open_clip_pytorch_model.bin"]
        for name in names:
            hit = try_to_load_from_cache(repo_id, name)
            if isinstance(hit, str):
                return Path(hit)
    elif load_from == "url":
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(loc)
        return path if path.is_file() else None
    elif load_from == "file":
        return Path(loc)
    return None


def _pretrain(arg: str, runs_dir: Path) -> Weights:
    raise UserError("model.source=pretrain is resolved by core.runs.run into the run:<id> of its "
                    "pretraining run; load that instead")


def _robustbench_resolve(arg: str, cfg: RunConfig) -> str:
    """`NAME` -> `<dataset>/Linf/NAME` for the config's data set, the architecture checked."""
    problem = entry_problem(arg, cfg.model.arch)
    if problem:
        raise ConfigError(problem)
    return qualified(arg, cfg.data.name)


SOURCES.add("none", Source(_none, extra_data=lambda cfg: False))
SOURCES.add("file", Source(_file, _file_missing))
SOURCES.add("run", Source(_run, _run_missing,
                          stored_config=lambda arg, runs_dir: (RunDir.of(runs_dir, arg)
                                                               .read_result()["config"])))
SOURCES.add("timm", Source(_timm, _timm_missing))
# a clean run of the same model, trained on first use and shared by every cell that needs it
SOURCES.add("pretrain", Source(_pretrain, needs=pretrain_config, extra_data=lambda cfg: (
    cfg["pretrain"]["data"] != cfg["data"]["name"])))
# an entry of RobustBench's model zoo on disk: <models_dir>/<dataset>/Linf/<name>.pt
SOURCES.add("robustbench", Source(robustbench.load, robustbench.missing,
                                  resolve=_robustbench_resolve))
