"""One run: config -> runs/<run-id>/ (config, log, curve, checkpoint, weights, result.json).

`run(cfg)` is what the CLI, the ablation jobs and the tests call. It never redoes a finished
run, resumes an interrupted one, and writes result.json last (its presence means "finished").
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from core.atomic import save_torch, write_json, write_text
from core.config import (
    AugCfg,
    DataCfg,
    EvalCfg,
    MethodCfg,
    ModelCfg,
    OptimCfg,
    RunConfig,
    normalise,
    run_id,
    to_dict,
)
from core.data import load_splits
from core.data.images import stack
from core.data.sets import Splits
from core.evaluation import EvalContext, eval_batch_size, evaluate
from core.models import build_model
from core.provenance import code_version, machine, package_versions
from core.training.loop import train
from core.validate import validate

log = logging.getLogger("core")
FINISHED = ("done", "diverged")
RESULT, WEIGHTS, CONFIG, LOG = "result.json", "weights.pth", "config.yaml", "train.log"


def run_dir_of(cfg: RunConfig) -> Path:
    return Path(cfg.runs_dir) / run_id(cfg)


def read_result(run_dir: Path) -> dict | None:
    path = run_dir / RESULT
    return json.loads(path.read_text()) if path.is_file() else None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pretrain_config(cfg: RunConfig) -> RunConfig:
    """The clean run that `model.source: pretrain` stands for.

    Built from defaults plus only what pretraining depends on (architecture, image size, its
    own data, epochs, lr and seed), so every fine-tuning cell that shares them shares one
    pretraining run, as the paper's cells share one ImageNet checkpoint.
    """
    p, m = cfg.pretrain, cfg.model
    return RunConfig(
        model=ModelCfg(preset=m.preset, arch=m.arch, source="none", img_size=m.img_size,
                       patch_size=m.patch_size, window_size=m.window_size),
        data=DataCfg(name=p.data, root=cfg.data.root if p.data == cfg.data.name else None,
                     img_size=cfg.data.img_size, train_subset=p.train_subset,
                     num_workers=cfg.data.num_workers),
        aug=AugCfg(preset="none", crop_padding=cfg.aug.crop_padding, flip=cfg.aug.flip),
        method=MethodCfg(name="clean"),
        optim=OptimCfg(name=p.optim, lr=p.lr, schedule="cyclic", weight_decay=p.weight_decay),
        eval=EvalCfg(preset="clean", attacks=["clean"], batch_size=cfg.eval.batch_size,
                     curve_n=cfg.eval.curve_n),
        pretrain=p, scale_name=cfg.scale_name, epochs=p.epochs, batch_size=p.batch_size,
        seed=p.seed,
        precision=cfg.precision, device=cfg.device, threads=cfg.threads, runs_dir=cfg.runs_dir,
        progress=cfg.progress)


def resolve_source(cfg: RunConfig) -> str:
    """`pretrain` -> `run:<id>` of the pretraining run, trained now if it is not there yet."""
    if cfg.model.source != "pretrain":
        return cfg.model.source
    pcfg = normalise(pretrain_config(cfg))
    result = run(pcfg)
    if result["status"] != "done":
        raise RuntimeError(f"pretraining run {result['run_id']} ended {result['status']}")
    return f"run:{result['run_id']}"


def run(cfg: RunConfig) -> dict:
    """Train and evaluate `cfg` (or return its finished result); returns result.json's dict.

    Which attacks to run is not part of the run id: asking a finished run for attacks it has
    not run yet evaluates just those on its saved weights and adds them to its result.
    """
    validate(cfg)
    rid, run_dir = run_id(cfg), run_dir_of(cfg)
    done = read_result(run_dir)
    if answers(done, cfg):
        return done
    run_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(run_dir):  # a second job on the same config waits, then reuses the result
        done = read_result(run_dir)
        if answers(done, cfg):
            return done
        with _log_to(run_dir / LOG):
            if done is not None and done.get("status") in FINISHED:
                return _extend_evaluation(cfg, run_dir, done)
            write_text(run_dir / CONFIG, OmegaConf.to_yaml(OmegaConf.structured(cfg)))
            log.info("run %s in %s", rid, run_dir)
            return _train_and_evaluate(cfg, rid, run_dir)


def answers(result: dict | None, cfg: RunConfig) -> bool:
    """Whether `result` is finished and holds every evaluation `cfg` asks for: nothing to do."""
    return result is not None and result.get("status") in FINISHED and covers(result, cfg)


def covers(result: dict, cfg: RunConfig) -> bool:
    """Whether a finished result already holds every evaluation `cfg` asks for."""
    metrics = result["metrics"]
    n_aa = min(cfg.eval.n_aa or result["n_eval"], result["n_eval"])
    return all(f"{a}_acc" in metrics for a in cfg.eval.attacks) and (
        "aa" not in cfg.eval.attacks or metrics.get("n_aa") == n_aa)


def _setup(cfg: RunConfig) -> tuple[torch.device, Splits, torch.Tensor, torch.Tensor]:
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    splits = load_splits(cfg.data)
    x, y = stack(splits.test, splits.test_order()[:cfg.eval.n])
    return device, splits, x.float() / 255, y


def _evaluate(cfg: RunConfig, model, x, y, attacks: list[str], run_dir: Path,
              device: torch.device) -> dict:
    batch = eval_batch_size(cfg.eval.batch_size, model, x.shape[1:], device)
    log.info("evaluation batch size %d", batch)
    ctx = EvalContext(eps=cfg.attack.eps, seed=cfg.seed, batch_size=batch,
                      device=device, cw_kappa=cfg.eval.cw_kappa, n_aa=cfg.eval.n_aa,
                      state_dir=run_dir / "eval", progress=cfg.progress)
    return evaluate(model, x, y, attacks, ctx)


def _train_and_evaluate(cfg: RunConfig, rid: str, run_dir: Path) -> dict:
    started = time.time()
    source = resolve_source(cfg)
    device, splits, x, y = _setup(cfg)
    built = build_model(cfg.model, cfg.model.img_size or cfg.data.img_size, splits.num_classes,
                        cfg.runs_dir, source, seed=cfg.seed)
    progress, trainee = train(cfg, rid, run_dir, built, splits, device)
    model = trainee.eval_model
    metrics = _evaluate(cfg, model, x, y, cfg.eval.attacks, run_dir, device)
    status = "diverged" if progress.status == "diverged" else "done"
    save_torch(run_dir / WEIGHTS, model.net.state_dict())
    result = {
        "run_id": rid, "status": status, "metrics": metrics, **metrics,
        "n_eval": len(y), "num_classes": splits.num_classes, "data": splits.description,
        "scale": cfg.scale_name, "config": to_dict(cfg), "pretrained": built.weights.record(),
        "code": code_version(), "packages": package_versions(), "machine": machine(device),
        "epochs_done": len(progress.curve), "steps": progress.step,
        "diverged_at": progress.diverged_at,
        "train_images_per_s": progress.images / max(progress.train_seconds, 1e-9),
        "train_seconds": progress.train_seconds, "wall_seconds": time.time() - started,
    }
    write_json(run_dir / RESULT, result)
    log.info("run %s %s: %s", rid, status, {k: round(v, 4) for k, v in metrics.items()
                                              if k.endswith("acc")})
    return read_result(run_dir)  # what is on disk, so callers and readers see the same


def _extend_evaluation(cfg: RunConfig, run_dir: Path, result: dict) -> dict:
    """Evaluate the attacks a finished run lacks, on its saved weights; merge them in."""
    device, splits, x, y = _setup(cfg)
    model = build_model(cfg.model, cfg.model.img_size or cfg.data.img_size, splits.num_classes,
                        cfg.runs_dir, "none").model
    model.net.load_state_dict(torch.load(run_dir / WEIGHTS, map_location="cpu",
                                         weights_only=True))
    pre = result["pretrained"]
    model.mean.copy_(torch.tensor(pre["mean"]).view_as(model.mean))
    model.std.copy_(torch.tensor(pre["std"]).view_as(model.std))
    wanted = set(result["config"]["eval"]["attacks"]) | set(cfg.eval.attacks)
    attacks = [a for a in EvalCfg().attacks if a in wanted] + sorted(
        wanted - set(EvalCfg().attacks))
    log.info("extending the evaluation of %s with %s", run_dir.name,
             [a for a in attacks if f"{a}_acc" not in result["metrics"]])
    before = dict(result["metrics"])
    metrics = _evaluate(cfg, model.to(device), x, y, attacks, run_dir, device)
    for k in result["metrics"]:
        result.pop(k, None)
    result.update(metrics=metrics, **metrics)
    result["config"]["eval"].update(attacks=attacks, n_aa=cfg.eval.n_aa)
    added = [a for a in attacks if f"{a}_acc" not in before]
    result.setdefault("evaluations_added", []).append({"attacks": added, "code": code_version()})
    write_json(run_dir / RESULT, result)
    return read_result(run_dir)


@contextlib.contextmanager
def _exclusive(run_dir: Path):
    """An advisory lock on the run folder, held while the run trains and evaluates."""
    import fcntl

    with open(run_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _log_to(path: Path):
    """Send this package's log records to the run's own log file while the run lasts."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("core")
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
