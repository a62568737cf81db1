"""Where a launched grid stands: python -m ablations.status [NAME ...] [--scale S]

Each run is done, diverged, failed (with the tail of its log), running or pending. SLURM
jobs are asked about with sacct (squeue on clusters that keep no accounting); local ones are
judged from their run folders.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ablations.grid import manifest as mf
from ablations.launch.states import grid_status, log_tail
from ablations.questions import load_all
from core.infra.cli import Parser, runs_dir_flag
from core.infra.errors import UserError


def parser() -> Parser:
    p = Parser(prog="python -m ablations.status", description=__doc__)
    p.add_argument("names", nargs="*", help="grids (default: every launched one)")
    p.add_argument("--scale", default=None, choices=["paper", "tiny"],
                   help="only this scale (default: both)")
    runs_dir_flag(p, "the folder the grids were launched into", "runs")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return _status(a)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _status(a: argparse.Namespace) -> int:
    known = load_all()
    a.names = [] if a.names == ["all"] else a.names  # `all`, as ablations.run takes it
    for n in a.names:
        if n not in known:
            print(f"error: unknown ablation '{n}'; valid: {', '.join(known.names())}",
                  file=sys.stderr)
            return 2
    runs_dir = Path(a.runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise UserError(f"--runs-dir {runs_dir} is a file: give the folder the runs were "
                        "launched into (their --runs-dir)")
    manifests = [m for m in mf.all_manifests(runs_dir)
                 if (not a.names or m["ablation"] in a.names)
                 and (a.scale is None or m["scale"] == a.scale)]
    if not manifests:
        print(f"no launched grids under {runs_dir} (python -m ablations.run NAME starts one)")
        return 0
    for m in manifests:
        rows = grid_status(runs_dir, m)
        counts = Counter(state for _, state, _ in rows)
        listed = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        print(f"{m['ablation']} ({m['scale']}{mf.ran_with_note(m)}): {listed}")
        for rid, state, label in rows:
            print(f"  {rid}  {state:9} {label}")
            if state == "failed":
                for line in log_tail(runs_dir, rid, m["jobs"].get(rid)):
                    print(f"      | {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
