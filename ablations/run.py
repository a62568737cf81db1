"""Run one ablation grid: python -m ablations.run NAME [options] [hydra overrides...]

    python -m ablations.run gradient_clipping --scale tiny          # local, minutes
    python -m ablations.run pretraining --launcher slurm             # paper scale, returns
    python -m ablations.run ard_prm --dry-run                        # cells, cost, problems
    python -m ablations.run all --scale tiny --seeds 3               # every grid, one pool
    python -m ablations.run all --scale paper --preflight            # two steps of every run

Cells whose run already finished are never redone; failed ones are submitted again.
"""
from __future__ import annotations

import argparse
import os
import sys

from ablations.grid import manifest as mf
from ablations.grid.cells import expand
from ablations.launch import preflight
from ablations.launch.dry_run import report
from ablations.launch.jobs import jobs_for
from ablations.launch.launchers import LAUNCHERS, LaunchOptions
from ablations.questions import get, load_all
from core.infra.cli import Parser
from core.infra.errors import UserError
from core.infra.registry import UnknownNameError
from core.runs.checks import check_inputs, validate


def parse(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="python -m ablations.run", description=__doc__)
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
    p.add_argument("--profile", default=None,
                   help="slurm: a slurm/profiles/ name or a .yaml path (default: the scale's "
                        "resources.profile: tiny cpu, paper default)")
    p.add_argument("--gpu-tflops", type=float, default=300.0,
                   help="dry-run: sustained GPU TFLOP/s for the GPU-hour estimate")
    p.add_argument("--preflight", action="store_true",
                   help="every run of the grid for two steps on a few images and a two-point "
                        "evaluation, in a scratch folder: ok or why not, time and memory")
    p.add_argument("--preflight-batch", type=int, default=None,
                   help="preflight: images per optimizer step (default: the config's batch "
                        "on a GPU, 4 on a CPU)")
    args = p.parse_intermixed_args(argv)
    for flag in ("seeds", "workers", "preflight_batch"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            p.error(f"--{flag.replace('_', '-')}={value}: give at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args)
    except (UserError, UnknownNameError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _grid_names(name: str) -> list[str]:
    """`all` is every grid; any other name must be one of them."""
    names = load_all().names()
    if name == "all":
        return names
    if name not in names:
        raise UserError(f"no grid named {name!r}: give one of {', '.join(names)}, or all")
    return [name]


def _main(args: argparse.Namespace) -> int:
    grids = {}
    for name in _grid_names(args.name):
        ab = get(name)
        grids[name] = expand(ab, args.scale, args.seeds or ab.seeds, args.overrides)
    cells = [c for g in grids.values() for c in g]
    jobs = jobs_for(cells)
    runs_dir = cells[0].cfg.runs_dir
    if args.dry_run:
        return report(args.name, args.scale, cells, jobs, args)
    _reject_invalid(jobs, device=args.launcher != "slurm")
    if args.preflight:
        return _preflight(args, cells, runs_dir)
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


def _reject_invalid(jobs, device: bool) -> None:
    """Every run's config, data, weights (and device, where the jobs run here) before any
    job starts."""

    for j in jobs:
        validate(j.cfg)
        check_inputs(j.cfg, device=device)


def _preflight(args: argparse.Namespace, cells, runs_dir: str) -> int:
    batch = args.preflight_batch or preflight.default_batch(cells)
    jobs, fulls = preflight.plan(cells, runs_dir, batch)
    opts = LaunchOptions(runs_dir=str(preflight.scratch(runs_dir)),
                         workers=args.workers or _default_workers(), profile=args.profile,
                         wait=True, on_event=lambda line: None,
                         make_job=preflight.job_factory(fulls))
    print(f"pre-flight of {args.name} ({args.scale}): {len(jobs)} runs, {batch} images a step, "
          f"launcher {args.launcher}, scratch {opts.runs_dir}")
    LAUNCHERS.get(args.launcher)(jobs, preflight.group(runs_dir, jobs), opts)
    return preflight.report(jobs, fulls, cells)


def _default_workers() -> int:
    import torch

    return torch.cuda.device_count() or os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
