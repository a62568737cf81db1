"""--preflight: every distinct run of a grid (pretraining included) for two optimizer steps
on a handful of images with its real configuration (architecture and size, weight source and
its adaptation, data reader, precision, compile, ARD/PRM, objective, attack), then a
two-point evaluation with every attack the grid asks for, AutoAttack included.

It writes only under <runs_dir>/_preflight/ (a scratch folder, emptied first), never a real
run folder. Per run: ok or the one-line reason it failed, the seconds of one optimizer step
and the peak memory measured there, and the projected time of the full run on that device
(its FLOPs, core.runs.cost, at the rate the measured step achieved). The grid's total comes last.
Launched through a launcher like a grid, so `--launcher slurm` proves the cluster's
environment too (each record says where its job ran: Python, torch, CUDA, GPU, data, weights).
"""
from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

from ablations.grid import manifest as mf
from ablations.grid.cells import Cell
from ablations.launch.jobs import Job, jobs_for
from core.config import RunConfig, changed, from_dict, normalise, run_id, to_dict
from core.data.sets import root_of
from core.infra.atomic import write_json
from core.infra.errors import ConfigError, UserError
from core.infra.rundir import RunDir
from core.models.sources import source_of
from core.runs.checks import validate
from core.runs.cost import forward_flops, job_flops_parts, passes_per_image
from core.runs.gpus import eval_speed
from core.runs.run import choose_kernels, run

SCRATCH = "_preflight"
POINTS = 2          # evaluation points
STEPS = 2           # optimizer steps


def shrink(cfg: RunConfig, batch: int, scratch: Path) -> RunConfig:
    """The same run, two steps of `batch` images and a two-point evaluation, in `scratch`."""
    changes = {"epochs": 1, "batch_size": batch, "data.train_subset": STEPS * batch,
               "eval.n": POINTS, "eval.n_aa": None, "eval.curve_n": POINTS,
               "warmup_epochs": min(cfg.warmup_epochs, 1.0), "pretrain.epochs": 1,
               "pretrain.batch_size": batch, "pretrain.train_subset": STEPS * batch,
               "runs_dir": str(scratch), "progress": False}
    return changed(cfg, **changes)


class PreflightJob:
    """One run's pre-flight in a job (any launcher): never raises, returns its record and
    keeps it in the scratch run folder."""

    def __init__(self, cfg: dict, full: dict, threads: int | None = None) -> None:
        self.cfg, self.full, self.threads = cfg, full, threads

    def __call__(self) -> dict:
        cfg = from_dict(self.cfg)
        choose_kernels(cfg)
        cfg = changed(cfg, threads=cfg.threads or self.threads)
        record = probe(cfg, from_dict(self.full))
        write_json(RunDir.of(cfg.runs_dir, run_id(cfg)).preflight, record)
        return record


def probe(cfg: RunConfig, full: RunConfig) -> dict:
    """Run the shrunk `cfg`; measure; project `full` from the measured step."""

    try:
        result = run(cfg)
    except Exception as e:  # noqa: BLE001 - every failure is this run's one-line answer
        text = (str(e).strip().splitlines() or [""])[0]
        return {"ok": False, "reason": f"{type(e).__name__}: {text}"[:300],
                "where": environment(cfg)}
    return {"ok": result["status"] == "done", "reason": None if result["status"] == "done"
            else f"the two steps ended {result['status']}", "where": environment(cfg),
            "step_seconds": result["last_step_seconds"], "peak_memory": result["peak_memory"],
            "machine": result["machine"]["kind"], **_projection(cfg, full, result)}


def _projection(cfg: RunConfig, full: RunConfig, result: dict) -> dict:
    """Full-run seconds: training at the FLOP rate the measured (second, warm) step achieved,
    evaluation, which runs in FP32, at that rate scaled by the GPU's FP32 peak over its peak
    at the training precision (core.runs.gpus.eval_speed)."""

    img = cfg.model.img_size or cfg.data.img_size
    f = forward_flops(cfg.model.arch, img, cfg.model.patch_size, cfg.model.window_size)
    rate = cfg.batch_size * passes_per_image(cfg) * f / max(result["last_step_seconds"], 1e-9)
    m = result["machine"]
    eval_rate = rate * eval_speed(m["device"], m["device_name"], full.precision)
    train, evaluation = job_flops_parts(full)
    return {"flops_per_s": rate, "eval_flops_per_s": eval_rate,
            "projected_seconds": train / rate + evaluation / eval_rate}


def environment(cfg: RunConfig) -> dict:
    """Where the job ran and what it read: the things a cluster gets wrong."""
    import platform

    import torch
    from huggingface_hub import constants

    return {"host": platform.node(), "python": sys.executable, "torch": torch.__version__,
            "cuda": torch.version.cuda if torch.cuda.is_available() else None,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "data": str(root_of(cfg.data)), "hf_cache": str(constants.HF_HUB_CACHE),
            "offline": bool(constants.HF_HUB_OFFLINE)}


CPU_BATCH = 4  # images a step where there is no GPU (a paper model's step takes seconds)


def default_batch(cells: list[Cell]) -> int:
    """The configs' own batch on a GPU (the projection is then the real step's), else a few
    images (the projection then errs long: full batches use a device better)."""
    import torch

    return min(c.cfg.batch_size for c in cells) if torch.cuda.is_available() else CPU_BATCH


def scratch(runs_dir: str) -> Path:
    return Path(runs_dir) / SCRATCH


def plan(cells: list[Cell], runs_dir: str, batch: int) -> tuple[list[Job], dict[str, RunConfig]]:
    """The pre-flight jobs of `cells` (pretraining included, each once) in an emptied scratch
    folder, and the full config each one stands for. A batch a shrunk run cannot take is one
    line before the folder is touched, not a failure in every run."""
    scratch_dir = scratch(runs_dir)
    small = [dataclasses.replace(c, cfg=shrink(c.cfg, batch, scratch_dir)) for c in cells]
    fulls: dict[str, RunConfig] = {}
    for full, probe_cell in zip(cells, small, strict=True):
        fulls[probe_cell.run_id] = full.cfg
        needed = source_of(probe_cell.cfg.model.source).needs(probe_cell.cfg)
        if needed is not None:  # its pretraining (shrunk ones of different sizes may merge)
            fulls[run_id(normalise(needed))] = normalise(
                source_of(full.cfg.model.source).needs(full.cfg))
    jobs = jobs_for(small)
    for j in jobs:
        _check_shrunk(j, batch)
    shutil.rmtree(scratch_dir, ignore_errors=True)
    return jobs, {j.run_id: fulls[j.run_id] for j in jobs}


def _check_shrunk(job: Job, batch: int) -> None:
    try:
        validate(job.cfg)
    except ConfigError as e:
        raise UserError(f"--preflight-batch {batch}: {e} (run {job.run_id}); "
                        f"give another --preflight-batch") from None


def job_factory(fulls: dict[str, RunConfig]):
    def make(job: Job, threads: int | None = None) -> PreflightJob:
        return PreflightJob(to_dict(job.cfg), to_dict(fulls[job.run_id]), threads)

    return make


def report(jobs: list[Job], fulls: dict[str, RunConfig], cells: list[Cell]) -> int:
    """One line per run, then the total; 0 if every run is ok."""
    records = {j.run_id: j.run_dir.read_json(j.run_dir.preflight) for j in jobs}
    ok = [r for r in records.values() if r and r["ok"]]
    for j in jobs:
        print(_line(j, records[j.run_id], _label(j, fulls, cells)))
    total = sum(r["projected_seconds"] for r in ok)
    where = sorted({r["machine"] for r in ok}) or ["-"]
    print(f"total: {len(jobs)} runs, {len(ok)} ok, {len(jobs) - len(ok)} failed; the ok ones "
          f"project to {total / 3600:.1f} device-hours on {', '.join(where)} (from steps of "
          f"{jobs[0].cfg.batch_size} images: an upper bound where the full batch is larger)")
    hosts = sorted({(r["where"]["host"], r["where"]["python"], r["where"]["torch"],
                     r["where"]["gpu"] or "no GPU", r["where"]["hf_cache"])
                    for r in records.values() if r})
    for host in hosts:
        print("jobs ran on {}: {}, torch {}, {}; weights cache {}".format(*host))
    return 0 if len(ok) == len(jobs) else 1


def _line(job: Job, record: dict | None, label: str) -> str:
    if record is None:
        return f"FAILED  {job.run_id}  {label}: the job left no record (see its log)"
    if not record["ok"]:
        return f"FAILED  {job.run_id}  {label}: {record['reason']}"
    gb = record["peak_memory"]["bytes"] / 2**30
    return (f"ok      {job.run_id}  {label}: {record['step_seconds']:.2f} s/step of "
            f"{job.cfg.batch_size}, peak {gb:.1f} GB ({record['peak_memory']['what']}), "
            f"full run ~{_hours(record['projected_seconds'])}")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _label(job: Job, fulls: dict[str, RunConfig], cells: list[Cell]) -> str:
    names = [f"{c.ablation}: {c.name}" for c in cells if c.run_id == run_id(fulls[job.run_id])]
    return " | ".join(names) if names else f"pretraining of {job.cfg.model.arch}"


def group(runs_dir: str, jobs: list[Job]) -> mf.Group:
    """The scratch folder's own manifest (the real grids' manifests stay untouched)."""
    return mf.Group({"preflight": mf.load(scratch(runs_dir), "preflight", "any")},
                    {j.run_id: {"preflight"} for j in jobs})
