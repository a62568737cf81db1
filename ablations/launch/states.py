"""Where each run of a grid stands: pending, running, done, diverged or failed, read from the
run folders and, for SLURM jobs, from squeue/sacct (what `python -m ablations.status` shows
and what the launchers' progress counts)."""
from __future__ import annotations

import functools
import re
import subprocess
import time
from pathlib import Path

from ablations.grid import manifest as mf
from core.infra.rundir import RunDir

SLURM_STATES = {"PENDING": "pending", "CONFIGURING": "pending", "REQUEUED": "pending",
                "REQUEUE_HOLD": "pending", "RUNNING": "running", "COMPLETING": "running",
                "SUSPENDED": "pending", "PREEMPTED": "pending"}


def run_state(runs_dir: Path, run_id: str, slurm_state: str | None = None) -> str:
    run_dir = RunDir.of(runs_dir, run_id)
    result = run_dir.read_result()
    if result is not None:
        return result["status"]
    if run_dir.failure.is_file():
        return "failed"
    if slurm_state:
        return SLURM_STATES.get(slurm_state.split()[0], "failed")
    log = run_dir.log
    if log.is_file() and time.time() - log.stat().st_mtime < 600:
        return "running"
    return "started" if log.is_file() else "pending"


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """job id -> SLURM state: sacct when the cluster keeps accounting, else squeue (queued
    and running jobs; finished ones are judged from their run folders); {} when SLURM
    cannot be asked."""
    return query_slurm(job_ids) or {}


def query_slurm(job_ids: list[str]) -> dict[str, str] | None:
    """As `slurm_states`, but None when SLURM cannot be asked: a waiting loop must not read
    a failed query as "every job has left the queue"."""
    if not job_ids:
        return {}
    # -j fails on ids that have left the queue, so squeue lists them all (-r: array tasks)
    cmds = [["squeue", "-h", "-r", "-o", "%i|%T"]]
    if slurm_accounting():  # without it sacct only says so on stderr, at every call
        cmds.insert(0, ["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(job_ids)])
    for cmd in cmds:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                                 check=True).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        states = {}
        for line in out.splitlines():
            jid, _, state = line.partition("|")
            states[jid.strip()] = state.strip()
        return {j: states[j] for j in job_ids if j in states}
    return None


@functools.cache
def slurm_accounting() -> bool:
    """Whether the cluster keeps job accounting (sacct knows finished jobs); asked once."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    kind = re.search(r"^AccountingStorageType\s*=\s*(\S+)", out, re.MULTILINE)
    return bool(kind) and not kind.group(1).endswith("/none")


def live_state(runs_dir: Path, run_id: str, slurm_state: str | None) -> str:
    """The state of a run whose SLURM job was just submitted (`--wait`): its result, else
    what SLURM says, else failed (it left the queue without a result). SLURM comes before
    the run's failure record: a failed cell submitted again still has its old one."""
    result = RunDir.of(runs_dir, run_id).read_result()
    if result is not None:
        return result["status"]
    if slurm_state:
        return SLURM_STATES.get(slurm_state.split()[0], "failed")
    return "failed"


def log_tail(runs_dir: Path, run_id: str, job: dict | None, n: int = 5) -> list[str]:
    run_dir = RunDir.of(runs_dir, run_id)
    failure = run_dir.read_failure()
    if failure is not None:
        return failure["traceback"].strip().splitlines()[-n:]
    for path in (job or {}).get("log"), str(run_dir.log):
        if path and Path(path).is_file():
            return Path(path).read_text(errors="replace").strip().splitlines()[-n:]
    return []


def grid_status(runs_dir: Path, manifest: dict) -> list[tuple[str, str, str]]:
    """(run id, state, label) for every run of the grid, pretraining runs included."""
    slurm_ids = [j["job_id"] for j in manifest["jobs"].values() if j["launcher"] == "slurm"]
    states = slurm_states(slurm_ids)
    rows = []
    cells = dict(mf.ordered_cells(manifest))
    pre = [rid for rid, j in manifest["jobs"].items() if j["what"] == "pretrain"]
    for rid in dict.fromkeys([*sorted(pre), *cells]):
        job = manifest["jobs"].get(rid)
        cell = cells.get(rid)
        label = (" ".join(f"{k}={v}" for k, v in cell["labels"].items()) + f" seed={cell['seed']}"
                 if cell else f"({job['what']})")
        slurm_state = states.get(job["job_id"]) if job and job["launcher"] == "slurm" else None
        rows.append((rid, run_state(runs_dir, rid, slurm_state), label))
    return rows
