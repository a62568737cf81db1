"""One run: config -> its run folder (core.rundir: config, log, curve, checkpoint, weights,
result).

`run(cfg)` is what the CLI, the ablation jobs and the tests call. It never redoes a finished
run, resumes an interrupted one, and writes the result last (its presence means "finished").
"""
from __future__ import annotations

import contextlib
import logging
import time

import torch
from omegaconf import OmegaConf

from core.atomic import save_torch, write_text
from core.config import RunConfig, normalise, run_id, to_dict
from core.data import load_splits
from core.data.images import stack
from core.data.sets import Splits
from core.evaluation import EVAL_ATTACKS, EvalContext, covers, eval_batch_size, evaluate, ordered
from core.models import build_model
from core.models.sources import source_of
from core.provenance import code_version, machine, package_versions
from core.rundir import RunDir
from core.training.loop import train
from core.validate import validate

log = logging.getLogger("core")
FINISHED = ("done", "diverged")


def run_dir_of(cfg: RunConfig) -> RunDir:
    return RunDir.of(cfg.runs_dir, run_id(cfg))


def read_result(run_dir: RunDir) -> dict | None:
    return RunDir(run_dir).read_result()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_source(cfg: RunConfig) -> str:
    """A source that needs a run first (`pretrain`) -> `run:<id>` of that run, trained now if
    it is not there yet; any other source as it is."""
    needed = source_of(cfg.model.source).needs(cfg)
    if needed is None:
        return cfg.model.source
    result = run(normalise(needed))
    if result["status"] != "done":
        raise RuntimeError(f"pretraining run {result['run_id']} ended {result['status']}")
    return f"run:{result['run_id']}"


def run(cfg: RunConfig) -> dict:
    """Train and evaluate `cfg` (or return its finished result); returns the result's dict.

    Which attacks to run is not part of the run id: asking a finished run for attacks it has
    not run yet evaluates just those on its saved weights and adds them to its result.
    """
    validate(cfg)
    rid, run_dir = run_id(cfg), run_dir_of(cfg)
    done = run_dir.read_result()
    if answers(done, cfg):
        return done
    run_dir.mkdir()
    with _exclusive(run_dir):  # a second job on the same config waits, then reuses the result
        done = run_dir.read_result()
        if answers(done, cfg):
            return done
        with _log_to(run_dir):
            if done is not None and done.get("status") in FINISHED:
                return _extend_evaluation(cfg, run_dir, done)
            write_text(run_dir.config, OmegaConf.to_yaml(OmegaConf.structured(cfg)))
            log.info("run %s in %s", rid, run_dir)
            return _train_and_evaluate(cfg, rid, run_dir)


def answers(result: dict | None, cfg: RunConfig) -> bool:
    """Whether `result` is finished and holds every evaluation `cfg` asks for: nothing to do."""
    return (result is not None and result.get("status") in FINISHED
            and covers(result["metrics"], cfg.eval, result["n_eval"]))


def _setup(cfg: RunConfig) -> tuple[torch.device, Splits, torch.Tensor, torch.Tensor]:
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    splits = load_splits(cfg.data)
    x, y = stack(splits.test, splits.test_order()[:cfg.eval.n])
    return device, splits, x.float() / 255, y


def _evaluate(cfg: RunConfig, model, x, y, attacks: list[str], run_dir: RunDir,
              device: torch.device) -> dict:
    batch = eval_batch_size(cfg.eval.batch_size, model, x.shape[1:], device)
    log.info("evaluation batch size %d", batch)
    ctx = EvalContext(eps=cfg.attack.eps, seed=cfg.seed, batch_size=batch, device=device,
                      eval=cfg.eval, state=run_dir, progress=cfg.progress)
    return evaluate(model, x, y, attacks, ctx)


def _build(cfg: RunConfig, splits: Splits, source: str):
    return build_model(cfg.model, cfg.model.img_size or cfg.data.img_size, splits.num_classes,
                       cfg.runs_dir, source, seed=cfg.seed)


def _train_and_evaluate(cfg: RunConfig, rid: str, run_dir: RunDir) -> dict:
    started = time.time()
    source = resolve_source(cfg)
    device, splits, x, y = _setup(cfg)
    built = _build(cfg, splits, source)
    progress, trainee = train(cfg, rid, run_dir, built, splits, device)
    model = trainee.eval_model
    metrics = _evaluate(cfg, model, x, y, cfg.eval.attacks, run_dir, device)
    status = "diverged" if progress.status == "diverged" else "done"
    save_torch(run_dir.weights, model.net.state_dict())
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
    run_dir.write_result(result)
    log.info("run %s %s: %s", rid, status, {k: round(v, 4) for k, v in metrics.items()
                                              if k.endswith("acc")})
    return run_dir.read_result()  # what is on disk, so callers and readers see the same


def _extend_evaluation(cfg: RunConfig, run_dir: RunDir, result: dict) -> dict:
    """Evaluate the attacks a finished run lacks, on its own weights (the `run:` source);
    merge them in."""
    device, splits, x, y = _setup(cfg)
    model = _build(cfg, splits, f"run:{run_dir.name}").model.to(device)
    wanted = set(result["config"]["eval"]["attacks"]) | set(cfg.eval.attacks)
    attacks = ordered(wanted)
    before = dict(result["metrics"])
    log.info("extending the evaluation of %s with %s", run_dir.name,
             [a for a in attacks if a not in result["config"]["eval"]["attacks"]])
    metrics = _evaluate(cfg, model, x, y, attacks, run_dir, device)
    for k in result["metrics"]:
        result.pop(k, None)
    result.update(metrics=metrics, **metrics)
    entries = [EVAL_ATTACKS.get(a) for a in attacks]
    limits = {a.limit: getattr(cfg.eval, a.limit) for a in entries if a.limit}
    result["config"]["eval"].update(attacks=attacks, **limits)
    added = [a.name for a in entries
             if any(metrics.get(k) != before.get(k) for k in (a.column, a.count_column))]
    result.setdefault("evaluations_added", []).append({"attacks": added, "code": code_version()})
    run_dir.write_result(result)
    return run_dir.read_result()


@contextlib.contextmanager
def _exclusive(run_dir: RunDir):
    """An advisory lock on the run folder, held while the run trains and evaluates."""
    import fcntl

    with open(run_dir.lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _log_to(run_dir: RunDir):
    """Send this package's log records to the run's own log file while the run lasts."""
    handler = logging.FileHandler(run_dir.log)
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
