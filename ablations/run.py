"""Run one ablation grid: python -m ablations.run NAME [options] [hydra overrides...]

    python -m ablations.run gradient_clipping --scale tiny          # local, minutes
    python -m ablations.run pretraining --launcher slurm             # paper scale, returns
    python -m ablations.run ard_prm --dry-run                        # cells, cost, problems
    python -m ablations.run all --scale tiny --seeds 3               # every grid, one pool

Cells whose run already finished are never redone; failed ones are submitted again.
"""
from __future__ import annotations

import argparse
import os
import sys

from ablations import manifest as mf
from ablations.grid import expand
from ablations.jobs import jobs_for
from ablations.launchers import LAUNCHERS, LaunchOptions
from ablations.spec import get, load_all
from core.errors import UserError
from core.registry import UnknownNameError


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ablations.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help=f"one of: {', '.join(load_all().names())}, or all")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every cell")
    p.add_argument("--scale", default="paper", choices=["paper", "tiny"])
    p.add_argument("--launcher", default="local", choices=LAUNCHERS.names())
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: the "
                   "ablation's own, 1)")
    p.add_argument("--dry-run", action="store_true", help="list cells, cost and problems")
    p.add_argument("--wait", action="store_true", help="slurm: block until the grid is done")
    p.add_argument("--workers", type=int, default=None,
                   help="local: runs at once (default: one per GPU, else one per CPU core)")
    p.add_argument("--profile", default="default", help="slurm: a slurm/profiles/ name")
    p.add_argument("--gpu-tflops", type=float, default=300.0,
                   help="dry-run: sustained GPU TFLOP/s for the GPU-hour estimate")
    return p.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args)
    except (UserError, UnknownNameError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    names = load_all().names() if args.name == "all" else [get(args.name).name]
    grids = {}
    for name in names:
        ab = get(name)
        grids[name] = expand(ab, args.scale, args.seeds or ab.seeds, args.overrides)
    cells = [c for g in grids.values() for c in g]
    jobs = jobs_for(cells)
    runs_dir = cells[0].cfg.runs_dir
    if args.dry_run:
        from ablations.dry_run import report

        return report(args.name, args.scale, cells, jobs, args)
    _reject_invalid(jobs)
    manifests, owners = {}, {}
    for name, grid in grids.items():
        manifests[name] = mf.load(runs_dir, name, args.scale)
        mf.record_cells(manifests[name], grid)
        mf.save(runs_dir, manifests[name])
        for j in jobs_for(grid):
            owners.setdefault(j.run_id, set()).add(name)
    workers = args.workers or _default_workers()
    opts = LaunchOptions(runs_dir=runs_dir, workers=workers, profile=args.profile,
                         wait=args.wait)
    print(f"{args.name} ({args.scale}): {len(cells)} cells, {len(jobs)} runs, "
          f"launcher {args.launcher}")
    out = LAUNCHERS.get(args.launcher)(jobs, mf.Group(manifests, owners), opts)
    print(f"submitted {len(out.submitted)}, already finished {len(out.skipped)}, "
          f"failed {len(out.failed)}; `python -m ablations.status {args.name} --scale "
          f"{args.scale}` shows progress")
    return 1 if out.failed else 0


def _reject_invalid(jobs) -> None:
    from core.validate import validate

    for j in jobs:
        validate(j.cfg)


def _default_workers() -> int:
    import torch

    return torch.cuda.device_count() or os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
