"""Dry-run checks of a grid's jobs, without running them (the cost model is core.runs.cost)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ablations.launch.jobs import Job
from core.infra.errors import UserError
from core.models.sources import source_of, weights_missing
from core.runs.checks import check_writable, validate
from core.runs.cost import data_facts, job_flops


@dataclass
class JobCheck:
    job: Job
    flops: float
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(job: Job) -> JobCheck:
    """Problems (the job cannot run) and warnings (it needs something first)."""

    out = JobCheck(job, 0.0)
    try:
        validate(job.cfg)
        out.flops = job_flops(job.cfg)
    except UserError as e:
        out.problems.append(str(e))
        return out
    data = data_facts(job.cfg.data.name, job.cfg.data.root, job.cfg.data.img_size)[0]
    if data:
        out.problems.append(data)
    try:
        check_writable(job.cfg.runs_dir)
    except UserError as e:
        out.problems.append(str(e))
    if source_of(job.cfg.model.source).needs(job.cfg) is None:  # else a job of the grid
        weights = weights_missing(job.cfg.model.source, job.cfg.runs_dir)
        if weights:
            out.warnings.append(weights)
    return out
