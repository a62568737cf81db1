"""Rebuild tables, figures and claim verdicts from the run folders.

    python -m ablations.report [NAME ...] [--runs-dir runs] [--out DIR] [--replace] [--weights]

Writes into --out (default: <runs-dir>/_report), built aside and moved in only once all of it
is built: <name>.csv (one row per launched run), <name>_summary.csv (mean, std, n over seeds),
figures/<name>.png, <name>.md and .tex for a table question (the main table), claims.md,
index.html, a README saying where each table comes from, and under runs/ what of each run and
grid it read, so `--runs-dir <out>/runs --out <out>` rebuilds it byte for byte (--weights: each
run's weights too, to evaluate it again). It refuses (exit 2, nothing written) a folder it did
not build from these runs, such as the shipped results/, and one whose files were edited since,
unless --replace.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ablations.questions import load_all
from core.infra.cli import Parser, runs_dir_flag  # the rest once the help is not asked
from core.infra.errors import UserError


def parser() -> Parser:
    p = Parser(prog="python -m ablations.report", description=__doc__)
    p.add_argument("names", nargs="*", help="questions to rebuild (default: every one)")
    runs_dir_flag(p, "the folder the grids were launched into", "runs")
    p.add_argument("--out", default=None, help="default: <runs-dir>/_report")
    p.add_argument("--replace", action="store_true",
                   help="write over a folder built from other runs, or edited since")
    p.add_argument("--weights", action="store_true",
                   help="carry each run's weights.pth into <out>/runs/ (hard links where "
                        "possible), so `core.evaluate model.source=run:ID runs_dir=<out>/runs` "
                        "can attack it again")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ablations.tables import output  # deferred: fast --help

    registry = load_all()
    for n in a.names:
        if n not in registry:
            print(f"error: unknown ablation '{n}'; valid: {', '.join(registry.names())}",
                  file=sys.stderr)
            return 2
    names = a.names or registry.names()
    runs_dir = Path(a.runs_dir)
    out = Path(a.out) if a.out else output.default_out(runs_dir)
    try:
        output.check(out, runs_dir, a.replace)
        if not _launched(runs_dir):
            print(f"nothing to report: no launched grids under {runs_dir}")
            return 0
        with output.building(out, runs_dir) as aside:
            return _report(registry, names, runs_dir, aside, out, a.weights)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _launched(runs_dir: Path) -> bool:
    from ablations.grid.manifest import all_manifests  # deferred: fast --help
    from core.runs.evaluations import evaluations  # deferred: fast --help

    return bool(all_manifests(runs_dir)) or next(evaluations(runs_dir), None) is not None


def _report(registry, names: list[str], runs_dir: Path, aside: Path, out: Path,
            weights: bool) -> int:
    """Build every document in `aside`; `out` names where they will be (for the messages)."""
    from ablations.grid import manifest as mf  # deferred: fast --help
    from ablations.tables.documents import (  # deferred: fast --help
        claims_md,
        readme,
        report_evaluations,
        report_one,
        verdicts_only,
    )
    from ablations.tables.pages import write_site  # deferred: fast --help
    from ablations.tables.sequential import apply_decision  # deferred: fast --help
    from ablations.tables.verdicts import mark_shared  # deferred: fast --help
    from core.infra.atomic import write_text  # deferred: fast --help

    pages, warnings = {}, []
    for name in registry.names():  # claims.md and index.html always cover every question
        ab = registry.get(name)
        page, w = (report_one(ab, runs_dir, aside) if name in names
                   else verdicts_only(ab, runs_dir))
        warnings += w
        if page is not None:
            pages[name] = page
    verdicts = {name: p.verdicts for name, p in pages.items()}
    for name, vs in verdicts.items():
        for scale in ("tiny", "paper"):
            apply_decision(vs, mf.read_decision(runs_dir, name, scale), scale)
    mark_shared(verdicts)
    reported = list(pages)
    n_evals = report_evaluations(runs_dir, aside)
    if n_evals:
        print(f"{n_evals} checkpoint evaluation(s) -> {out / 'evaluations.csv'}")
    if not reported:
        return 0
    write_text(aside / "claims.md", claims_md(verdicts, warnings))
    write_text(aside / "README.md", readme(reported, n_evals > 0))
    write_site(aside, runs_dir, list(pages.values()), warnings,
               pages_for=[n for n in reported if n in names], weights=weights)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for name, vs in verdicts.items():
        for v in vs:
            eff = "n/a" if v.effect is None else f"{v.effect:+.2f} pts"
            print(f"{name} {v.claim.id} ({v.setting}): {eff} -> {v.verdict}")
    print(f"report of {runs_dir} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
