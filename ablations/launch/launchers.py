"""Launchers: how a grid's runs reach compute. All go through submitit except `debug`.

- debug: in this process, one after the other (tests, debugging).
- local: submitit local jobs on this machine, at most `workers` at once (one GPU each on a
  GPU machine); blocks until the grid is done.
- slurm: submitit job arrays with a concurrency cap, pretraining runs first and the cells
  that need them after (SLURM dependency); returns at once unless --wait. Each job asks for
  what its profile says (--profile, else the scale's `resources.profile`) with the run's
  own `resources` on top (nodes, GPUs per node).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ablations.grid import manifest as mf
from ablations.launch.jobs import Job, job_callable
from ablations.launch.states import live_state, query_slurm, slurm_accounting
from core.config import RunConfig
from core.infra.errors import UserError
from core.infra.registry import Registry
from core.runs.run import answers

SLURM_PROFILES = Path(__file__).resolve().parents[2] / "slurm" / "profiles"
SUBMITIT = "_submitit"


@dataclass
class LaunchOptions:
    runs_dir: str
    workers: int = 1
    profile: str | None = None  # slurm: a profile name or .yaml (None: the runs' own)
    wait: bool = False
    threads: int | None = None   # debug: torch threads (None: torch's default)
    on_event: Callable[[str], None] = print
    # what a job runs (a run; the pre-flight swaps in its own probe)
    make_job: Callable[[Job, int | None], Callable] = job_callable


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
        group.save(opts.runs_dir)
        out.submitted.append(j.run_id)
        try:
            opts.make_job(j, opts.threads)()
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
    _check_fits(left, gpus)
    running: dict[str, tuple[submitit.Job, list[int]]] = {}
    pending = list(left)
    while pending or running:
        busy = {g for _, slots in running.values() for g in slots}
        free_gpus = [g for g in range(gpus) if g not in busy]
        for j in [j for j in pending if all(d in finished for d in j.deps)]:
            if len(running) >= workers:
                break
            tasks = tasks_of(j.cfg, gpus)
            if len(running) and gpus and tasks > len(free_gpus):
                break  # it waits for GPUs to free up
            slots = free_gpus[:tasks] if gpus else []
            del free_gpus[:len(slots)]
            gpu_params = ({"gpus_per_node": tasks, "local_visible_gpus": slots} if gpus else {})
            executor.update_parameters(timeout_min=7 * 24 * 60, tasks_per_node=tasks,
                                       **gpu_params)
            job = executor.submit(opts.make_job(j, None if gpus else _threads_per_worker(workers)))
            running[j.run_id] = (job, slots)
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


def tasks_of(cfg: RunConfig, gpus: int) -> int:
    """Processes (ranks) a run asks for on a node: its tasks_per_node, else one per GPU it
    asks for where there are GPUs, else one."""
    if cfg.resources.tasks_per_node:
        return cfg.resources.tasks_per_node
    return max(cfg.resources.gpus_per_node or 1, 1) if gpus else 1


def _check_fits(jobs: list[Job], gpus: int) -> None:
    for j in jobs:
        if gpus and tasks_of(j.cfg, gpus) > gpus:
            raise UserError(f"run {j.run_id} asks for {tasks_of(j.cfg, gpus)} GPUs and this "
                            f"machine has {gpus}; set resources.gpus_per_node={gpus} (the "
                            "global batch stays the config's, split over fewer ranks) or use "
                            "--launcher slurm")


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


def launch_profile(jobs: list[Job], name: str | None) -> str:
    """The SLURM profile of a launch: --profile when given, else the one its runs' scale
    names (`resources.profile`); one submission has one profile, so they must agree."""
    if name:
        return name
    asked = Counter(j.cfg.resources.profile for j in jobs)
    if len(asked) > 1:
        which = ", ".join(f"{p} ({n} runs)" for p, n in sorted(asked.items()))
        raise UserError(f"the runs of this launch ask for different SLURM profiles: {which}; "
                        "launch them separately or name one with --profile")
    return next(iter(asked), "default")


def profile_params(profile: dict) -> dict:
    """submitit parameters a profile gives every job."""
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
    return params


def job_params(base: dict, cfg: RunConfig) -> dict:
    """The profile's parameters with what the run asks for itself on top (its scale's
    `resources`): nodes, GPUs per node unless None, and one core per thread it pins (the
    tiny scale's single thread leaves any further core idle)."""
    params = {**base, "nodes": cfg.resources.nodes}
    if cfg.resources.gpus_per_node is not None:
        params["gpus_per_node"] = cfg.resources.gpus_per_node
    if cfg.threads:
        params["cpus_per_task"] = cfg.threads
    params["tasks_per_node"] = tasks_of(cfg, params["gpus_per_node"])
    if params["tasks_per_node"] * params["nodes"] > 1:  # one rank dead: the whole step ends
        params["slurm_srun_args"] = ["--kill-on-bad-exit=1"]
    return params


def slurm_executor(runs_dir: str, profile: dict):
    import submitit

    return submitit.AutoExecutor(folder=Path(runs_dir) / SUBMITIT / "%j", cluster="slurm",
                                 slurm_max_num_timeout=int(profile.get("requeue", 3)))


@LAUNCHERS.register("slurm")
def slurm(jobs: list[Job], group: mf.Group, opts: LaunchOptions) -> Launched:
    reason = slurm_available()
    if reason:
        raise UserError(f"--launcher slurm: {reason}")
    left, done = todo(jobs)
    out = Launched(skipped=done)
    profile = load_profile(launch_profile(jobs, opts.profile))
    executor = slurm_executor(opts.runs_dir, profile)
    submitted: dict[str, str] = {}
    for stage in ("pretrain", "cell"):
        for params, batch in _arrays([j for j in left if j.what == stage], profile):
            handles = _submit_array(executor, params, batch, submitted, opts.make_job)
            for j, h in zip(batch, handles, strict=True):
                submitted[j.run_id] = str(h.job_id)
                out.submitted.append(j.run_id)
                group.record_job(j.run_id, "slurm", str(h.job_id), str(h.paths.stdout), j.what)
            group.save(opts.runs_dir)
    if opts.wait:
        _wait_slurm(group, out, opts)
    return out


def _arrays(batch: list[Job], profile: dict) -> list[tuple[dict, list[Job]]]:
    """The jobs grouped by what they ask for: an array's jobs share their parameters."""
    base = profile_params(profile)
    arrays: dict[str, tuple[dict, list[Job]]] = {}
    for j in batch:
        params = job_params(base, j.cfg)
        arrays.setdefault(repr(sorted(params.items())), (params, []))[1].append(j)
    return list(arrays.values())


def _submit_array(executor, params: dict, batch: list[Job], submitted: dict[str, str],
                  make_job: Callable[[Job, int | None], Callable] = job_callable) -> list:
    deps = sorted({submitted[d] for j in batch for d in j.deps if d in submitted})
    # a cell whose pretraining failed can never start: SLURM cancels it rather than keep it
    # pending forever (a --wait would never end); launching the grid again resubmits it
    extra = {"dependency": f"afterok:{':'.join(deps)}", "kill-on-invalid-dep": "yes"}
    executor.update_parameters(**params, slurm_additional_parameters=extra if deps else {})
    echoed = io.StringIO()  # submitit echoes sbatch's stderr; we say it once, in one line
    try:
        with contextlib.redirect_stderr(echoed):
            return executor.submit_array([make_job(j, params["cpus_per_task"]) for j in batch])
    except Exception as e:  # sbatch's refusal, e.g. GPUs on a CPU-only partition
        lines = (str(e) or echoed.getvalue()).strip().splitlines()
        raise UserError(refusal(_sbatch_error(lines), params, batch[0].cfg)) from None


def _sbatch_error(lines: list[str]) -> str:
    useful = [ln for ln in lines if "error" in ln.lower()] or lines or ["unknown error"]
    return useful[-1].strip()


# --- a refusal in one line: what was asked, what the cluster has, the option that fixes it

def refusal(error: str, params: dict, cfg: RunConfig) -> str:
    parts = cluster_partitions()
    has = "; ".join(_describe(p) for p in parts) if parts else "(sinfo did not answer)"
    return f"SLURM refused the submission ({error}): asked for {_asked(params)}; " \
           f"the cluster has: {has}; {_fix(params, cfg, parts)}"


def _fix(params: dict, cfg: RunConfig, parts: list[dict]) -> str:
    """The option that fixes it: the profiles that fit this cluster, or the run's own GPU
    request when that is what no profile can meet."""
    fits = [n for n, prof in _profiles() if parts and _fits(job_params(prof, cfg), parts)]
    if fits:
        fix = f"use --profile {' or --profile '.join(fits)} or a slurm/profiles/*.yaml that fits"
    else:
        fix = "use --profile with a slurm/profiles/*.yaml that fits"
    if params["gpus_per_node"] and cfg.resources.gpus_per_node and not fits:
        return (f"the runs ask for {_n(cfg.resources.gpus_per_node, 'GPU')} themselves: "
                f"resources.gpus_per_node=0 for CPU jobs, or {fix}")
    return fix + (" (resources.gpus_per_node=0 for CPU jobs)" if params["gpus_per_node"] else "")


def _n(count: float, word: str) -> str:
    return f"{count:g} {word}{'' if count == 1 else 's'}"


def _asked(params: dict) -> str:
    where = f"partition {params['slurm_partition']}" if params.get("slurm_partition") \
        else "the default partition"
    nodes = f" on each of {params['nodes']} nodes" if params["nodes"] > 1 else ""
    gpus = _n(params["gpus_per_node"], "GPU") if params["gpus_per_node"] else "no GPU"
    return (f"{gpus} per job{nodes} on {where}, {_n(params['cpus_per_task'], 'CPU')}, "
            f"{params['mem_gb']:g} GB, {params['timeout_min']} min")


def cluster_partitions() -> list[dict]:
    """The partitions sinfo lists, each with the most any of its nodes has; [] if sinfo
    cannot be asked."""
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P|%c|%m|%G|%l"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    parts: dict[str, dict] = {}
    for line in out.splitlines():
        name, cpus, mem, gres, limit = line.strip().split("|")
        p = parts.setdefault(name.rstrip("*"), dict(
            name=name.rstrip("*"), default=name.endswith("*"), cpus=0, mem_mb=0, gpus=0,
            limit_min=_minutes(limit)))
        p["cpus"] = max(p["cpus"], _int(cpus))  # "4+": nodes differ, 4 the fewest
        p["mem_mb"] = max(p["mem_mb"], _int(mem))
        p["gpus"] = max(p["gpus"], sum(int(n) for n in re.findall(r"gpu(?::[^:,(]+)?:(\d+)",
                                                                   gres)))
    return list(parts.values())


def _int(text: str) -> int:
    digits = re.match(r"\d+", text)
    return int(digits.group()) if digits else 0


def _minutes(limit: str) -> float | None:
    """sinfo's time limit ([days-]hours:minutes:seconds, or minutes:seconds) in minutes;
    None: no limit."""
    if not re.fullmatch(r"[\d:-]+", limit):  # infinite, n/a
        return None
    days, _, clock = limit.rpartition("-")
    fields = [int(x) for x in clock.split(":")]
    h, m, s = ([0] * (3 - len(fields)) + fields) if len(fields) > 1 else (0, fields[0], 0)
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def _describe(p: dict) -> str:
    limit = "no time limit" if p["limit_min"] is None else f"at most {p['limit_min']:g} min"
    return (f"{p['name']} ({'default, ' if p['default'] else ''}{p['cpus']} CPUs, "
            f"{p['mem_mb']} MB, {_n(p['gpus'], 'GPU') if p['gpus'] else 'no GPUs'}, {limit})")


def _profiles() -> list[tuple[str, dict]]:
    return [(p.stem, profile_params(load_profile(p.stem)))
            for p in sorted(SLURM_PROFILES.glob("*.yaml"))]


def _fits(params: dict, parts: list[dict]) -> bool:
    want = params.get("slurm_partition")
    return any((p["name"] == want if want else p["default"])
               and params["gpus_per_node"] <= p["gpus"] and params["cpus_per_task"] <= p["cpus"]
               and params["mem_gb"] * 1024 <= p["mem_mb"]
               and (p["limit_min"] is None or params["timeout_min"] <= p["limit_min"])
               for p in parts)


# --- --wait: progress lines from the run folders and the queue

POLL_S = 2.0        # one squeue a poll: cheap, and the end of the grid is seen at once
STEPS = 3           # a line each time another third of the jobs has finished, ...
HEARTBEAT_S = 600   # ... or, when the counts changed, after 10 minutes without a line


def _wait_slurm(group: mf.Group, out: Launched, opts: LaunchOptions) -> None:
    ids = {rid: jid for rid, jid in group.job_ids().items() if rid in out.submitted}
    if not ids:
        return
    # Progress comes from squeue (stderr captured) and the run folders, not from submitit's
    # job watcher, whose sacct calls print "accounting storage is disabled" at every poll.
    if not slurm_accounting():
        opts.on_event("SLURM keeps no accounting here: progress is read from the run folders "
                      "and squeue")
    progress = _Progress(opts.on_event, len(ids))
    while True:
        states = query_slurm(list(ids.values()))  # before the run folders: see live_state
        if states is None:
            progress.say_once("squeue does not answer; asking again")
            time.sleep(POLL_S)
            continue
        now = {rid: live_state(Path(opts.runs_dir), rid, states.get(jid))
               for rid, jid in ids.items()}
        counts = Counter(now.values())
        finished = counts["running"] + counts["pending"] == 0
        progress.show(counts, final=finished)
        if finished:
            break
        time.sleep(POLL_S)
    out.failed += [rid for rid, state in now.items() if state == "failed"]


class _Progress:
    """Progress in a few lines whatever the grid's size or length: the first counts, a line
    each time another 1/STEPS of the jobs has finished, one after HEARTBEAT_S without a line
    if the counts changed (hours in a queue or in training), and the last."""

    def __init__(self, say: Callable[[str], None], total: int) -> None:
        self.say, self.total, self.said = say, max(total, 1), set()
        self.last, self.at, self.step = "", 0.0, 0

    def show(self, counts: Counter, final: bool) -> None:
        line = ", ".join(f"{counts[k]} {k}" for k in ("done", "running", "pending", "failed"))
        line += f", {counts['diverged']} diverged" if counts["diverged"] else ""
        finished = sum(counts.values()) - counts["running"] - counts["pending"]
        step = STEPS * finished // self.total
        due = not self.last or step > self.step or time.monotonic() - self.at >= HEARTBEAT_S
        if line != self.last and (due or final):
            self.say(f"{'finished' if final else 'waiting'}: {line}")
            self.last, self.at, self.step = line, time.monotonic(), step

    def say_once(self, text: str) -> None:
        if text not in self.said:
            self.said.add(text)
            self.say(text)
