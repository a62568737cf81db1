"""The unit of work the launchers submit: one run (a grid cell or a pretraining it needs)."""
from __future__ import annotations

import os
import signal
import threading
import traceback
from dataclasses import dataclass

import submitit

from ablations.grid.cells import Cell
from core.config import RunConfig, changed, from_dict, normalise, run_id, to_dict
from core.evaluation import EVAL_ATTACKS
from core.infra.distributed import init_from_env
from core.infra.rundir import RunDir
from core.models.sources import source_of
from core.runs.run import choose_kernels, resolve_device, run
from core.training import loop


@dataclass(frozen=True)
class Job:
    """One run to do: its config, and the run ids it must wait for."""

    cfg: RunConfig
    deps: tuple[str, ...] = ()
    what: str = "cell"                  # cell | pretrain

    @property
    def run_id(self) -> str:
        return run_id(self.cfg)

    @property
    def run_dir(self) -> RunDir:
        return RunDir.of(self.cfg.runs_dir, self.run_id)


def jobs_for(cells: list[Cell]) -> list[Job]:
    """The runs a grid needs, each once: the runs their weight sources need first (the
    clean pretraining of `pretrain`), then the cells."""
    pre: dict[str, Job] = {}
    out: dict[str, Job] = {}
    for cell in cells:
        deps: tuple[str, ...] = ()
        needed = source_of(cell.cfg.model.source).needs(cell.cfg)
        if needed is not None:
            pcfg = normalise(needed)
            pre.setdefault(run_id(pcfg), Job(pcfg, what="pretrain"))
            deps = (run_id(pcfg),)
        seen = out.get(cell.run_id)
        out[cell.run_id] = Job(_union_of_evaluations(seen.cfg, cell.cfg) if seen else cell.cfg,
                               deps)
    return [*pre.values(), *out.values()]


def _union_of_evaluations(a: RunConfig, b: RunConfig) -> RunConfig:
    """One run shared by cells of several grids (same run id) is evaluated with every attack
    any of them asks for, e.g. AutoAttack for the main table on an ablation's cell."""
    attacks = list(dict.fromkeys([*a.eval.attacks, *b.eval.attacks]))
    changes = {"eval.attacks": attacks}
    for limit in {EVAL_ATTACKS.get(x).limit for x in attacks} - {None}:
        caps = (getattr(a.eval, limit), getattr(b.eval, limit))
        changes[f"eval.{limit}"] = None if None in caps else max(caps)
    return changed(a, **changes)


class RunJob(submitit.helpers.Checkpointable):
    """Runs one config in a submitit job. On preemption or time-out submitit calls
    `checkpoint()`, which requeues this same call; the run then resumes from its checkpoint.
    A failure leaves its record (with the traceback) in the run folder, and re-raises."""

    def __init__(self, cfg: dict, threads: int | None = None) -> None:
        self.cfg = cfg
        self.threads = threads

    def __call__(self) -> dict:
        _exit_on_sigterm()
        cfg = from_dict(self.cfg)
        choose_kernels(cfg)
        # one rank per task when the cell spans several devices
        w = init_from_env(cuda=resolve_device(cfg.device).type == "cuda")
        # a config that pins its threads (tiny scale: 1, for identical numbers) keeps them
        cfg = changed(cfg, progress=False, threads=cfg.threads or self.threads)
        run_dir = RunDir.of(cfg.runs_dir, run_id(cfg))
        try:
            result = run(cfg)
        except Exception as e:  # an interruption (requeue, kill) is not a failure
            if w.main:
                run_dir.record_failure(f"{type(e).__name__}: {e}",
                                       traceback.format_exc()[-4000:])
            raise
        if w.main:
            run_dir.clear_failure()
        return {"run_id": result["run_id"], "status": result["status"]}

    def checkpoint(self, *args, **kwargs):
        """submitit calls this on rank 0 alone before a time-out or preemption: ask every
        rank to save at the next step boundary (the loop shares the request), then requeue."""

        loop.request_save()
        return super().checkpoint(*args, **kwargs)


def _exit_on_sigterm() -> None:
    """SLURM ends a job (scontrol requeue, scancel, preemption) with SIGTERM, then SIGKILL.
    submitit ignores SIGTERM; exiting instead lets the training loop save its step first."""
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signal.Signals(signum).name}")

    in_job = "SUBMITIT_EXECUTOR" in os.environ  # not for the in-process debug launcher
    if in_job and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def job_callable(job: Job, threads: int | None = None) -> RunJob:
    return RunJob(to_dict(job.cfg), threads)
