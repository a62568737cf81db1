"""Launchers: how a grid's runs reach compute. All go through submitit except `debug`.

- debug: in this process, one after the other (tests, debugging).
- local: submitit local jobs on this machine, at most `workers` at once (one GPU each on a
  GPU machine); blocks until the grid is done.
- slurm: submitit job arrays with a concurrency cap, pretraining runs first and the cells
  that need them after (SLURM dependency); returns at once unless --wait.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ablations import manifest as mf
from ablations.jobs import Job, job_callable
from core.errors import UserError
from core.registry import Registry
from core.run import answers

SLURM_PROFILES = Path(__file__).resolve().parent.parent / "slurm" / "profiles"
SUBMITIT = "_submitit"


@dataclass
class LaunchOptions:
    runs_dir: str
    workers: int = 1
    profile: str = "default"
    wait: bool = False
    threads: int | None = None   # debug: torch threads (None: torch's default)
    on_event: Callable[[str], None] = print


@dataclass
class Launched:
    submitted: list[str] = field(default_factory=list)   # run ids
    skipped: list[str] = field(default_factory=list)     # already finished
    failed: list[str] = field(default_factory=list)


LAUNCHERS: Registry[Callable[[list[Job], mf.Group, LaunchOptions], Launched]] = Registry(
    "launcher")


def todo(jobs: list[Job]) -> tuple[list[Job], list[str]]:
    """(jobs to run, run ids of finished ones). A finished run that lacks an attack its job
    asks for is a job again: it only evaluates the missing attacks on its saved weights."""
    left, done = [], []
    for j in jobs:
        (done.append(j.run_id) if answers(j.run_dir.read_result(), j.cfg) else left.append(j))
    return left, done


@LAUNCHERS.register("debug")
def debug(jobs: list[Job], group: mf.Group, opts: LaunchOptions) -> Launched:
    left, done = todo(jobs)
    out = Launched(skipped=done)
    for j in left:
        group.record_job(j.run_id, "debug", "in-process", str(j.run_dir.log), j.what)
        out.submitted.append(j.run_id)
        try:
            job_callable(j, opts.threads)()
        except Exception as e:  # the job records it in its run folder; the grid goes on
            out.failed.append(j.run_id)
            opts.on_event(f"failed {j.run_id}: {type(e).__name__}: {e}")
    group.save(opts.runs_dir)
    return out


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


@LAUNCHERS.register("local")
def local(jobs: list[Job], group: mf.Group, opts: LaunchOptions) -> Launched:
    """A bounded pool of submitit local jobs that respects pretraining dependencies."""
    import submitit
    import torch

    left, done = todo(jobs)
    out = Launched(skipped=done)
    gpus = torch.cuda.device_count()
    workers = min(opts.workers, gpus) if gpus else opts.workers
    executor = submitit.AutoExecutor(folder=Path(opts.runs_dir) / SUBMITIT / "%j",
                                     cluster="local")
    finished = set(done)
    running: dict[str, tuple[submitit.Job, int | None]] = {}
    pending = list(left)
    while pending or running:
        free_gpus = [g for g in range(gpus) if g not in {s for _, s in running.values()}]
        for j in [j for j in pending if all(d in finished for d in j.deps)]:
            if len(running) >= workers:
                break
            slot = free_gpus.pop(0) if gpus else None
            gpu_params = {"gpus_per_node": 1, "local_visible_gpus": [slot]} if gpus else {}
            executor.update_parameters(timeout_min=7 * 24 * 60, **gpu_params)
            job = executor.submit(job_callable(j, None if gpus else _threads_per_worker(workers)))
            running[j.run_id] = (job, slot)
            pending.remove(j)
            out.submitted.append(j.run_id)
            group.record_job(j.run_id, "local", str(job.job_id), str(job.paths.stdout), j.what)
            group.save(opts.runs_dir)
            opts.on_event(f"started {j.what} {j.run_id} (job {job.job_id})")
        blocked = [j for j in pending if any(d in out.failed for d in j.deps)]
        for j in blocked:  # its pretraining failed: it cannot run
            pending.remove(j)
            out.failed.append(j.run_id)
        time.sleep(0.5)
        for rid, (job, _) in list(running.items()):
            if job.done():
                del running[rid]
                ok = job.exception() is None
                (finished.add(rid) if ok else out.failed.append(rid))
                opts.on_event(f"{'finished' if ok else 'FAILED'} {rid}")
    return out


def slurm_available() -> str | None:
    """None if sbatch is on PATH and the controller answers, else the reason."""
    if shutil.which("sbatch") is None:
        return "no `sbatch` on PATH: this machine is not a SLURM submit host"
    try:
        subprocess.run(["squeue", "--noheader", "-u", "nobody"], check=True,
                       capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", b"") or b""
        text = detail.decode().strip().splitlines()[:1] or [type(e).__name__]
        return f"the SLURM controller does not answer ({text[0]})"
    return None


def load_profile(name: str) -> dict:
    path = Path(name) if name.endswith(".yaml") else SLURM_PROFILES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SLURM_PROFILES.glob("*.yaml")))
        raise UserError(f"unknown SLURM profile '{name}'; known: {known} (or a .yaml path)")
    profile = yaml.safe_load(path.read_text()) or {}
    site = SLURM_PROFILES.parent / "site.yaml"
    if site.is_file():
        profile.update(yaml.safe_load(site.read_text()) or {})
    profile.setdefault("account", os.environ.get("VITADV_SLURM_ACCOUNT"))
    profile.setdefault("qos", os.environ.get("VITADV_SLURM_QOS"))
    return profile


def slurm_executor(runs_dir: str, profile: dict):
    import submitit

    executor = submitit.AutoExecutor(folder=Path(runs_dir) / SUBMITIT / "%j", cluster="slurm",
                                     slurm_max_num_timeout=int(profile.get("requeue", 3)))
    params = dict(timeout_min=int(profile.get("time_min", 60)),
                  gpus_per_node=int(profile.get("gpus_per_job", 0)),
                  cpus_per_task=int(profile.get("cpus_per_task", 1)),
                  mem_gb=float(profile.get("mem_gb", 4)),
                  slurm_array_parallelism=int(profile.get("array_parallelism", 16)),
                  slurm_signal_delay_s=int(profile.get("signal_delay_s", 60)),
                  name="vitadv")
    for key in ("partition", "account", "qos"):
        if profile.get(key):
            params[f"slurm_{key}"] = profile[key]
    executor.update_parameters(**params)
    return executor


@LAUNCHERS.register("slurm")
def slurm(jobs: list[Job], group: mf.Group, opts: LaunchOptions) -> Launched:
    reason = slurm_available()
    if reason:
        raise UserError(f"--launcher slurm: {reason}")
    left, done = todo(jobs)
    out = Launched(skipped=done)
    profile = load_profile(opts.profile)
    executor = slurm_executor(opts.runs_dir, profile)
    threads = int(profile.get("cpus_per_task", 1))
    submitted: dict[str, str] = {}
    for stage in (["pretrain"], ["cell"]):
        batch = [j for j in left if j.what in stage]
        if not batch:
            continue
        deps = sorted({submitted[d] for j in batch for d in j.deps if d in submitted})
        executor.update_parameters(
            slurm_additional_parameters={"dependency": f"afterok:{':'.join(deps)}"} if deps else {})
        echoed = io.StringIO()  # submitit echoes sbatch's stderr; we say it once, in one line
        try:
            with contextlib.redirect_stderr(echoed):
                handles = executor.submit_array([job_callable(j, threads) for j in batch])
        except Exception as e:  # sbatch's refusal, e.g. GPUs on a CPU-only partition
            lines = (str(e) or echoed.getvalue()).strip().splitlines()
            raise UserError(f"SLURM refused the submission: {_sbatch_error(lines)}") from None
        for j, h in zip(batch, handles, strict=True):
            submitted[j.run_id] = str(h.job_id)
            out.submitted.append(j.run_id)
            group.record_job(j.run_id, "slurm", str(h.job_id), str(h.paths.stdout), j.what)
        group.save(opts.runs_dir)
    if opts.wait:
        _wait_slurm(group, out, opts)
    return out


def _sbatch_error(lines: list[str]) -> str:
    useful = [ln for ln in lines if "error" in ln.lower()] or lines or ["unknown error"]
    return useful[-1].strip()


def _wait_slurm(group: mf.Group, out: Launched, opts: LaunchOptions) -> None:
    import submitit

    folder = Path(opts.runs_dir) / SUBMITIT / "%j"
    ids = group.job_ids()
    # Clusters without accounting make submitit warn at every poll; a job's result file is
    # what says it finished, and `ablations.status` falls back to squeue.
    logging.getLogger("submitit").setLevel(logging.ERROR)
    for rid in out.submitted:
        job = submitit.SlurmJob(folder=folder, job_id=ids[rid])
        try:
            job.result()
        except Exception:  # noqa: BLE001 - reported, the others still awaited
            out.failed.append(rid)
