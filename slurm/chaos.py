"""Run a grid on SLURM while requeueing and killing its jobs, then count what was lost.

    python slurm/chaos.py ard_prm --scale tiny --requeues 3 --kills 1 \
        --reference runs [hydra overrides...]

Submits the grid (profile `cpu`), requeues `--requeues` running jobs at random moments
(`scontrol requeue`) and kills `--kills` hard (`scancel --signal=KILL`), waits, re-runs the
grid (which resubmits what was killed), and prints: cells submitted, requeues survived,
results lost, and cells whose numbers differ from the uninterrupted runs in --reference.
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

from ablations.grid import manifest as mf
from ablations.grid.cells import expand
from ablations.questions import get
from ablations.run import main as run_main
from core.infra.rundir import RunDir


def running_jobs(job_ids: dict[str, str]) -> dict[str, str]:
    """run id -> job id of the grid's jobs SLURM reports as RUNNING."""
    out = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-o", "%i"], capture_output=True,
                         text=True).stdout.split()
    return {rid: jid for rid, jid in job_ids.items() if jid in out}


def queued(job_ids: dict[str, str]) -> bool:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True,
                         text=True).stdout  # -r: one line per array task
    return any(jid in out.split() for jid in job_ids.values())


def steps_saved(run_dir: RunDir) -> int:
    import torch

    try:
        return torch.load(run_dir.checkpoint, weights_only=True)["progress"]["step"]
    except Exception:  # not written yet, or being replaced
        return 0


def metrics(run_dir: RunDir) -> dict | None:
    r = run_dir.read_result()
    return None if r is None else {k: r[k] for k in r["metrics"] if k.endswith("_acc")}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--scale", default="tiny")
    p.add_argument("--requeues", type=int, default=3)
    p.add_argument("--kills", type=int, default=1)
    p.add_argument("--reference", default="runs", help="runs folder of uninterrupted runs")
    p.add_argument("--runs-dir", default="runs_chaos")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_intermixed_args(argv)
    rng = random.Random(a.seed)
    runs = Path(a.runs_dir)

    def at(rid: str, where: Path = runs) -> RunDir:
        return RunDir.of(where, rid)

    common = [a.name, "--scale", a.scale, "--launcher", "slurm", "--profile", "cpu",
              *a.overrides, f"runs_dir={runs}"]
    cells = expand(get(a.name), a.scale, 1, [*a.overrides, f"runs_dir={runs}"])
    t0 = time.time()
    run_main(common)
    job_ids = {rid: j["job_id"] for rid, j in mf.load(runs, a.name, a.scale)["jobs"].items()}
    cell_ids = {c.run_id for c in cells}
    requeued, killed = [], []
    while queued(job_ids):
        time.sleep(rng.uniform(2, 8))
        live = {rid: jid for rid, jid in running_jobs(job_ids).items()
                if rid in cell_ids and rid not in requeued + killed
                and steps_saved(at(rid)) > 0}
        if not live:
            continue
        rid = rng.choice(sorted(live))
        if len(requeued) < a.requeues:
            subprocess.run(["scontrol", "requeue", live[rid]], check=True)
            requeued.append(rid)
            print(f"requeued {rid} (job {live[rid]}) at step {steps_saved(at(rid))}")
        elif len(killed) < a.kills:
            subprocess.run(["scancel", "--signal=KILL", "--full", live[rid]], check=True)
            killed.append(rid)
            print(f"killed {rid} (job {live[rid]}) at step {steps_saved(at(rid))}")
    print("queue drained; re-running the grid to resume what was killed")
    run_main([*common, "--wait"])
    lost = [c.run_id for c in cells if metrics(at(c.run_id)) is None]
    ref = Path(a.reference)
    compared = [c for c in cells if metrics(at(c.run_id, ref)) is not None]
    differ = [c.run_id for c in compared
              if metrics(at(c.run_id)) != metrics(at(c.run_id, ref))]
    survived = [r for r in requeued if metrics(at(r)) is not None
                and "resumed from step" in at(r).log.read_text()]
    print(f"cells submitted: {len(cells)}")
    print(f"requeues: {len(requeued)}, survived: {len(survived)}")
    print(f"hard kills: {len(killed)}, resumed: "
          f"{sum('resumed from step' in at(r).log.read_text() for r in killed)}")
    print(f"results lost: {len(lost)}")
    print(f"cells compared with uninterrupted runs: {len(compared)}, numbers differ: "
          f"{len(differ)}")
    print(f"wall time: {(time.time() - t0) / 60:.1f} min")
    return 0 if not lost and not differ else 1


if __name__ == "__main__":
    sys.exit(main())
