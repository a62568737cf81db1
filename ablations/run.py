"""Run one ablation grid: python -m ablations.run NAME [options] [hydra overrides...]

    python -m ablations.run gradient_clipping --scale tiny          # local, minutes
    python -m ablations.run pretraining --launcher slurm             # paper scale, returns
    python -m ablations.run ard_prm --dry-run --gpu a100             # cells, cost, problems
    python -m ablations.run all --scale tiny --seeds 3               # every grid, one pool
    python -m ablations.run all --scale paper --preflight            # two steps of every run
    python -m ablations.run warmup --scale tiny --runs-dir /scratch/me epochs=2
    python -m ablations.run ard_prm --scale tiny --decide --max-seeds 7   # seeds until decided

Cells whose run already finished are never redone; failed ones are submitted again.
Overrides after the name change every cell (and label the grid "ran with ...").
"""
from __future__ import annotations

import argparse
import os
import sys

# only what the help needs at the top: `--help` answers at once, without torch
from ablations.questions import get, load_all
from core.infra.cli import Parser, runs_dir_flag
from core.infra.errors import UserError
from core.infra.registry import UnknownNameError
from core.runs.gpus import DEFAULT_GPU, GPUS, UTILISATION

LAUNCHER_HELP = ("how the runs reach compute: local (this machine, submitit), slurm (job "
                 "arrays through submitit) or debug (in this process, one after the other)")


def parser() -> Parser:
    p = Parser(prog="python -m ablations.run", description=__doc__)
    p.add_argument("name", nargs="?", help=f"one of: {', '.join(load_all().names())}, or all")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every cell")
    p.add_argument("--scale", default="paper", choices=["paper", "tiny"],
                   help="paper: CIFAR-10/Imagenette/ImageNet and timm models on GPUs; tiny: "
                        "the embedded digits set and tiny ViTs on a CPU, minutes")
    p.add_argument("--launcher", default="local", help=LAUNCHER_HELP)
    runs_dir_flag(p, "where the runs go")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: the "
                   "ablation's own, 1)")
    p.add_argument("--dry-run", action="store_true", help="list cells, cost and problems")
    p.add_argument("--wait", action="store_true", help="slurm: block until the grid is done")
    p.add_argument("--workers", type=int, default=None,
                   help="local: runs at once (default: one per GPU, else one per CPU core)")
    p.add_argument("--profile", default=None,
                   help="slurm: a slurm/profiles/ name or a .yaml path (default: the scale's "
                        "resources.profile: tiny cpu, paper default)")
    p.add_argument("--gpu", default=DEFAULT_GPU, choices=GPUS.names(),
                   help="dry-run: the GPU the GPU-hours are for (datasheet peaks in "
                        "core/runs/gpus.py)")
    p.add_argument("--utilisation", type=float, default=UTILISATION,
                   help="dry-run: the fraction of the GPU's peak a run sustains")
    p.add_argument("--preflight", action="store_true",
                   help="every run of the grid for two steps on a few images and a two-point "
                        "evaluation, in a scratch folder: ok or why not, time and memory")
    p.add_argument("--decide", action="store_true",
                   help="add seeds a batch at a time until each claim is decided or the cap is "
                        "reached, by a group-sequential design (ablations/tables/sequential.py)")
    p.add_argument("--max-seeds", type=int, default=10, help="--decide: the cap on seeds")
    p.add_argument("--batch", type=int, default=2, help="--decide: seeds added a look")
    p.add_argument("--claims", default=None,
                   help="--decide: the claim ids to decide, comma-separated (default: all of "
                        "the grid's at this scale)")
    p.add_argument("--preflight-batch", type=int, default=None,
                   help="preflight: images per optimizer step (default: the config's batch "
                        "on a GPU, 4 on a CPU)")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line, with the checks argparse cannot declare."""
    p = parser()
    args = p.parse_intermixed_args(argv)
    if args.name is None:  # argparse would say the overrides are required too; they are not
        p.error(f"name a grid: one of {', '.join(load_all().names())}, or all")
    if not 0 < args.utilisation <= 1:
        p.error(f"--utilisation={args.utilisation}: give a fraction of peak in (0, 1]")
    if any(o.startswith("runs_dir=") for o in args.overrides):
        p.error("give the runs folder as --runs-dir DIR (as status, report and export take "
                "it), not runs_dir=")
    if args.runs_dir is not None:
        args.overrides.append(f"runs_dir={args.runs_dir}")
    if args.decide and (args.name == "all" or args.dry_run or args.preflight):
        p.error("--decide takes one grid's name, without --dry-run or --preflight")
    for flag in ("seeds", "workers", "preflight_batch", "max_seeds", "batch"):
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
    from ablations.grid.cells import expand  # deferred: fast --help
    from ablations.launch.dry_run import report  # deferred: fast --help
    from ablations.launch.jobs import jobs_for  # deferred: fast --help
    from ablations.launch.launchers import LAUNCHERS  # deferred: fast --help

    launch = LAUNCHERS.get(args.launcher)  # a bad name: one line, before any work
    if args.decide:
        from ablations.tables.decide import decide  # deferred: fast --help

        return decide(args, lambda seeds: _launch(args, launch, seeds))
    grids = {}
    for name in _grid_names(args.name):
        ab = get(name)
        grids[name] = expand(ab, args.scale, args.seeds or ab.seeds, args.overrides)
    cells = [c for g in grids.values() for c in g]
    if args.dry_run:
        return report(args.name, args.scale, cells, jobs_for(cells), args)
    if args.preflight:
        _reject_invalid(jobs_for(cells), device=args.launcher != "slurm")
        return _preflight(args, cells, cells[0].cfg.runs_dir)
    return 1 if _launch(args, launch, args.seeds).failed else 0


def _launch(args: argparse.Namespace, launch, seeds: int | None):
    """Launch the named grid(s) with seeds 0..seeds-1; what was submitted, skipped, failed."""
    from ablations.grid import manifest as mf  # deferred: fast --help
    from ablations.grid.cells import expand, ran_with  # deferred: fast --help
    from ablations.launch.jobs import jobs_for  # deferred: fast --help
    from ablations.launch.launchers import LaunchOptions  # deferred: fast --help

    grids = {name: expand(get(name), args.scale, seeds or get(name).seeds, args.overrides)
             for name in _grid_names(args.name)}
    cells = [c for g in grids.values() for c in g]
    jobs = jobs_for(cells)
    runs_dir = cells[0].cfg.runs_dir
    _reject_invalid(jobs, device=args.launcher != "slurm")
    manifests, owners = {}, {}
    for name, grid in grids.items():  # saved by the launcher once it submits (a refusal: never)
        manifests[name] = mf.load(runs_dir, name, args.scale, ran_with(grid, args.overrides))
        gone = mf.record_cells(manifests[name], grid)
        if gone:
            print(f"{name}: {len(gone)} recorded cell(s) replaced or dropped: the grid defines "
                  "them otherwise now (their runs stay in the runs folder)")
        for j in jobs_for(grid):
            owners.setdefault(j.run_id, set()).add(name)
    workers = args.workers or _default_workers()
    opts = LaunchOptions(runs_dir=runs_dir, workers=workers, profile=args.profile,
                         wait=args.wait or args.decide)
    note = mf.ran_with_note(next(iter(manifests.values())))
    print(f"{args.name} ({args.scale}{note}): {len(cells)} cells, {len(jobs)} runs, "
          f"launcher {args.launcher}")
    group = mf.Group(manifests, owners)
    out = launch(jobs, group, opts)
    group.save(runs_dir)  # the cells, also where every run had finished and nothing was submitted
    where = "" if args.runs_dir is None else f" --runs-dir {args.runs_dir}"
    print(f"submitted {len(out.submitted)}, already finished {len(out.skipped)}, "
          f"failed {len(out.failed)}; `python -m ablations.status {args.name} --scale "
          f"{args.scale}{where}` shows progress")
    return out


def _reject_invalid(jobs, device: bool) -> None:
    """Every run's config, data, weights (and device, where the jobs run here) before any
    job starts."""
    from core.runs.checks import check_inputs, validate  # deferred: fast --help

    for j in jobs:
        validate(j.cfg)
        check_inputs(j.cfg, device=device)


def _preflight(args: argparse.Namespace, cells, runs_dir: str) -> int:
    from ablations.launch import preflight  # deferred: fast --help
    from ablations.launch.launchers import LAUNCHERS, LaunchOptions  # deferred: fast --help

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
