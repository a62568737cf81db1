"""--dry-run: every cell with its state, the problems that would stop it, and the cost."""
from __future__ import annotations

from ablations.grid.cells import Cell
from ablations.launch.checks import check
from ablations.launch.jobs import Job
from ablations.launch.launchers import todo
from ablations.questions import get
from core.runs.cost import cpu_flops_per_s


def report(name: str, scale: str, cells: list[Cell], jobs: list[Job], args) -> int:
    left, done = todo(jobs)
    checks = {j.run_id: check(j) for j in jobs}
    print(f"{name} ({scale})" + ("" if name == "all" else f": {get(name).question}"))
    print(f"{len(cells)} cells, {len(jobs)} runs ({len(done)} finished, {len(left)} to run)")
    for j in jobs:
        c = checks[j.run_id]
        label = _label(j, cells)
        state = "finished" if j.run_id in done else "to run"
        print(f"  {j.run_id}  {state:8}  {label}")
        for p in c.problems:
            print(f"      PROBLEM: {p}")
        for w in c.warnings:
            print(f"      note: {w}")
    flops = sum(checks[j.run_id].flops for j in left)
    if scale == "tiny":
        workers = args.workers or 1
        rate = cpu_flops_per_s() * workers
        print(f"cost: {flops / 1e12:.1f} TFLOP, about {flops / rate / 60:.0f} minutes on this "
              f"CPU with {workers} worker(s) (measured {rate / 1e9:.0f} GFLOP/s)")
    else:
        hours = flops / (args.gpu_tflops * 1e12) / 3600
        print(f"cost: {flops / 1e15:.1f} PFLOP, about {hours:.1f} GPU-hours at "
              f"{args.gpu_tflops:g} TFLOP/s sustained (--gpu-tflops)")
    problems = sum(len(c.problems) for c in checks.values())
    print(f"problems: {problems}")
    return 0


def _label(job: Job, cells: list[Cell]) -> str:
    names = [f"{c.ablation}: {c.name}" for c in cells if c.run_id == job.run_id]
    return " | ".join(names) if names else f"(pretraining for {job.cfg.model.arch})"
