"""--dry-run: the grid's runs with their state, the cost per grid, and the problems that would
stop a launch, each distinct one once with the runs it hits and its fix; exit code 2 when
there is a problem (as the launch itself would), else 0.

One grid lists every run; `all` lists each grid's subtotal instead (name a grid for its runs).
"""
from __future__ import annotations

from collections.abc import Callable

from ablations.grid.cells import Cell
from ablations.launch.checks import JobCheck, check
from ablations.launch.jobs import Job, jobs_for
from ablations.launch.launchers import todo
from ablations.questions import get
from core.runs.cost import cpu_flops_per_s, gpu_seconds, job_flops
from core.runs.gpus import describe


def report(name: str, scale: str, cells: list[Cell], jobs: list[Job], args) -> int:
    left, done = todo(jobs)
    checks = {j.run_id: check(j) for j in jobs}
    problems = _distinct(checks, "problems")
    notes = _distinct(checks, "warnings")
    print(f"{name} ({scale})" + ("" if name == "all" else f": {get(name).question}"))
    print(f"{len(cells)} cells, {len(jobs)} runs ({len(done)} finished, {len(left)} to run)")
    if name != "all":
        for j in jobs:
            tags = [f"P{problems[p][0]}" for p in checks[j.run_id].problems]
            tags += [f"N{notes[w][0]}" for w in checks[j.run_id].warnings]
            state = "finished" if j.run_id in done else "to run"
            print(f"  {j.run_id}  {state:8}  {_label(j, cells)}"
                  + (f"  [{' '.join(tags)}]" if tags else ""))
    seconds, unit = _pricing(scale, args)
    todo_ids = {j.run_id for j in left}
    print(f"cost of the runs to run, {unit}:")
    for grid in dict.fromkeys(c.ablation for c in cells):
        own = [c for c in cells if c.ablation == grid]
        grid_jobs = [j for j in jobs_for(own) if j.run_id in todo_ids]
        print(f"  {grid:18} {len(own):4} cells {len(grid_jobs):4} runs  "
              f"{_amount([seconds(j) for j in grid_jobs], scale)}")
    if name == "all":  # a run two grids share is in both subtotals, once in the total
        print(f"  {'all, each run once':18} {len(cells):4} cells {len(left):4} runs  "
              f"{_amount([seconds(j) for j in left], scale)}")
    _list("PROBLEM", "P", problems)
    _list("note", "N", notes)
    n = sum(len(c.problems) for c in checks.values())
    print(f"problems: {n}" + (f" ({len(problems)} distinct; exit code 2: the launch would "
                              "refuse)" if n else ""))
    return 2 if n else 0  # a script can gate a launch on it


def _distinct(checks: dict[str, JobCheck], kind: str) -> dict[str, tuple[int, list[str]]]:
    """Each distinct message -> (its number, the runs it hits), in order of first sight."""
    out: dict[str, tuple[int, list[str]]] = {}
    for rid, c in checks.items():
        for text in getattr(c, kind):
            out.setdefault(text, (len(out) + 1, []))[1].append(rid)
    return out


def _list(kind: str, tag: str, found: dict[str, tuple[int, list[str]]]) -> None:
    for text, (i, rids) in found.items():
        print(f"{kind} {tag}{i} ({len(rids)} run{'s' * (len(rids) != 1)}): {text}")


def _pricing(scale: str, args) -> tuple[Callable[[Job], tuple[float, float]], str]:
    """((training, evaluation) seconds of one job, what they are measured in) at this scale."""
    if scale == "tiny":
        workers = args.workers or 1
        rate = cpu_flops_per_s() * workers
        return (lambda j: (job_flops(j.cfg) / rate, 0.0),
                f"minutes on this CPU with {workers} worker(s)\n  (at {rate / 1e9:.0f} "
                "GFLOP/s, measured now)")
    gpu = describe(args.gpu, args.utilisation)
    return (lambda j: gpu_seconds(j.cfg, args.gpu, args.utilisation),
            f"GPU-hours on one {args.gpu} (--gpu, --utilisation)\n  ({gpu}; training at "
            "its precision, evaluation in FP32)")


def _amount(seconds: list[tuple[float, float]], scale: str) -> str:
    if scale == "tiny":
        return f"{sum(map(sum, seconds)) / 60:7.0f} minutes"
    train, evaluation = (sum(s[i] for s in seconds) / 3600 for i in (0, 1))
    return (f"{train + evaluation:9.1f} GPU-hours (training {train:.1f}, evaluation "
            f"{evaluation:.1f})")


def _label(job: Job, cells: list[Cell]) -> str:
    names = [f"{c.ablation}: {c.name}" for c in cells if c.run_id == job.run_id]
    return " | ".join(names) if names else f"(pretraining for {job.cfg.model.arch})"
