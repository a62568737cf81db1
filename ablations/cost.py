"""Dry-run checks of a grid's jobs, without running them (the cost model is core.cost)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ablations.jobs import Job
from core.cost import data_facts, job_flops
from core.errors import UserError


@dataclass
class JobCheck:
    job: Job
    flops: float
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(job: Job) -> JobCheck:
    """Problems (the job cannot run) and warnings (it needs something first)."""
    from core.models.sources import source_of, weights_missing
    from core.validate import validate

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
    if source_of(job.cfg.model.source).needs(job.cfg) is None:  # else a job of the grid
        weights = weights_missing(job.cfg.model.source, job.cfg.runs_dir)
        if weights:
            out.warnings.append(weights)
    return out
