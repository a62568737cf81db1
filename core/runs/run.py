"""One run: config -> its run folder (core.infra.rundir: config, log, curve, checkpoint, weights,
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

from core.config import RunConfig, normalise, run_id, to_dict
from core.data import load_splits
from core.data.images import stack
from core.data.points import order_of, record_of
from core.data.sets import Splits
from core.evaluation import EVAL_ATTACKS, EvalContext, covers, eval_batch_size, evaluate, ordered
from core.infra.atomic import save_torch, write_text
from core.infra.distributed import SINGLE, World, local_device, world
from core.infra.kernels import for_run, pin
from core.infra.provenance import (
    code_version,
    compile_stats,
    machine,
    package_versions,
    peak_memory,
    reset_compile_stats,
)
from core.infra.rundir import RunDir
from core.models import build_model
from core.models.sources import source_of
from core.runs.checks import check_inputs, validate
from core.training.loop import train
from core.training.tracking import Tracking

log = logging.getLogger("core")
FINISHED = ("done", "diverged")


def run_dir_of(cfg: RunConfig) -> RunDir:
    return RunDir.of(cfg.runs_dir, run_id(cfg))


def read_result(run_dir: RunDir) -> dict | None:
    return RunDir(run_dir).read_result()


def resolve_device(name: str) -> torch.device:
    """`auto`: this rank's GPU if there is one (each task of a multi-GPU job sees its own, or
    picks it by LOCAL_RANK under torchrun), else the CPU."""
    if name != "auto":
        return torch.device(name)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return local_device(world().local_rank)


def choose_kernels(cfg: RunConfig) -> None:
    """This process's CPU kernels for `cfg` (core.infra.kernels): pinned, then lifted for a bf16
    run on a CPU. A run's entry point calls it before anything computes: the libraries read
    the settings at their first use."""
    pin()
    for_run(cfg.precision, resolve_device(cfg.device).type)


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
    w, rid, run_dir = world(), run_id(cfg), run_dir_of(cfg)
    done = w.broadcast(run_dir.read_result())  # rank 0 decides for every rank
    if answers(done, cfg):
        return done
    check_inputs(cfg)  # its data, weights and device, and its pretraining's, before any work
    with exclusive(run_dir, w):  # a second job on the same config waits, then reuses it
        done = w.broadcast(run_dir.read_result())
        if answers(done, cfg):
            return done
        with log_to(run_dir, w):
            if done is not None and done.get("status") in FINISHED:
                return _extend_evaluation(cfg, run_dir, done)
            if w.main:
                write_text(run_dir.config, OmegaConf.to_yaml(OmegaConf.structured(cfg)))
            log.info("run %s in %s (%d rank(s))", rid, run_dir, w.size)
            return _train_and_evaluate(cfg, rid, run_dir)


def answers(result: dict | None, cfg: RunConfig) -> bool:
    """Whether `result` is finished and holds every evaluation `cfg` asks for: nothing to do."""
    return (result is not None and result.get("status") in FINISHED
            and covers(result["metrics"], cfg.eval, result["n_eval"]))


def prepare(cfg: RunConfig) -> tuple[torch.device, Splits, torch.Tensor, torch.Tensor]:
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    splits = load_splits(cfg.data)
    x, y = stack(splits.test, order_of(splits, cfg.data, cfg.eval.points)[:cfg.eval.n])
    return device, splits, x.float() / 255, y


def evaluate_suite(cfg: RunConfig, model, x, y, attacks: list[str], run_dir: RunDir,
              device: torch.device) -> dict:
    # rank 0's batch for all: AutoAttack's chunks (and so its numbers) follow the batch
    batch = world().broadcast(eval_batch_size(cfg.eval.batch_size, model, x.shape[1:], device))
    log.info("evaluation batch size %d", batch)
    ctx = EvalContext(eps=cfg.attack.eps, seed=cfg.seed, batch_size=batch, device=device,
                      eval=cfg.eval, state=run_dir, progress=cfg.progress)
    return evaluate(model, x, y, attacks, ctx)


def build(cfg: RunConfig, splits: Splits, source: str):
    return build_model(cfg.model, cfg.model.img_size or cfg.data.img_size, splits.num_classes,
                       cfg.runs_dir, source, seed=cfg.seed)


def _train_and_evaluate(cfg: RunConfig, rid: str, run_dir: RunDir) -> dict:
    started = time.time()
    source = resolve_source(cfg)  # a pretraining it needs runs first, with its own counts
    if cfg.compile:
        reset_compile_stats()
    device, splits, x, y = prepare(cfg)
    built = build(cfg, splits, source)
    tracking = Tracking(cfg.track if world().main else [], run_dir, rid, to_dict(cfg))
    try:
        progress, trainee = train(cfg, rid, run_dir, built, splits, device, tracking)
        model, trained = trainee.eval_model, time.time()
        train_peak = peak_memory(device)  # the eval batch probe resets the GPU's peak
        metrics = evaluate_suite(cfg, model, x, y, cfg.eval.attacks, run_dir, device)
        tracking.log("final", {k: v for k, v in metrics.items() if k.endswith("_acc")},
                     progress.step)
    finally:
        tracking.close()
    evaluated = time.time()
    status = "diverged" if progress.status == "diverged" else "done"
    w = world()
    result = {
        "run_id": rid, "status": status, "metrics": metrics, **metrics,
        "n_eval": len(y), "num_classes": splits.num_classes, "data": splits.description,
        "data_stand_in": splits.stand_in, "eval_points": record_of(cfg.data, cfg.eval.points),
        "scale": cfg.scale_name, "config": to_dict(cfg), "pretrained": built.weights.record(),
        "code": code_version(), "packages": package_versions(), "machine": machine(device),
        "epochs_done": len(progress.curve), "steps": progress.step,
        "diverged_at": progress.diverged_at,
        "train_images_per_s": progress.images / max(progress.train_seconds, 1e-9),
        "train_seconds": progress.train_seconds, "last_step_seconds": progress.last_step_seconds,
        "eval_seconds": evaluated - trained, "wall_seconds": time.time() - started,
        "peak_memory": train_peak, "eval_peak_memory": peak_memory(device), "ranks": w.size,
        "compile": compile_stats() if cfg.compile else None,
    }
    if cfg.compile:
        log.info("torch.compile: %(graphs)d graphs, %(graph_breaks)d graph breaks",
                 result["compile"])
    if w.main:
        save_torch(run_dir.weights, model.net.state_dict())
        run_dir.write_result(result)
    w.barrier()
    log.info("run %s %s: %s", rid, status, {k: round(v, 4) for k, v in metrics.items()
                                              if k.endswith("acc")})
    return run_dir.read_result()  # what is on disk, so callers and readers see the same


def _extend_evaluation(cfg: RunConfig, run_dir: RunDir, result: dict) -> dict:
    """Evaluate the attacks a finished run lacks, on its own weights (the `run:` source);
    merge them in."""
    device, splits, x, y = prepare(cfg)
    model = build(cfg, splits, f"run:{run_dir.name}").model.to(device)
    wanted = set(result["config"]["eval"]["attacks"]) | set(cfg.eval.attacks)
    attacks = ordered(wanted)
    before = dict(result["metrics"])
    log.info("extending the evaluation of %s with %s", run_dir.name,
             [a for a in attacks if a not in result["config"]["eval"]["attacks"]])
    metrics = evaluate_suite(cfg, model, x, y, attacks, run_dir, device)
    for k in result["metrics"]:
        result.pop(k, None)
    result.update(metrics=metrics, **metrics)
    entries = [EVAL_ATTACKS.get(a) for a in attacks]
    limits = {a.limit: getattr(cfg.eval, a.limit) for a in entries if a.limit}
    result["config"]["eval"].update(attacks=attacks, **limits)
    added = [a.name for a in entries
             if any(metrics.get(k) != before.get(k) for k in (a.column, a.count_column))]
    result.setdefault("evaluations_added", []).append({"attacks": added, "code": code_version()})
    if world().main:
        run_dir.write_result(result)
    world().barrier()
    return run_dir.read_result()


@contextlib.contextmanager
def exclusive(run_dir: RunDir, w: World = SINGLE):
    """An advisory lock on the run folder, held (by rank 0) while the run trains and
    evaluates."""
    import fcntl

    if not w.main:
        yield
        return
    run_dir.mkdir()
    with open(run_dir.lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def log_to(run_dir: RunDir, w: World = SINGLE):
    """Send this package's log records to the run's own log file while the run lasts (rank
    0's; the other ranks log to their job's output)."""
    if not w.main:
        yield
        return
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
