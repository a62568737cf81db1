"""Rebuild tables, figures and claim verdicts from the run folders.

    python -m ablations.report [NAME ...] [--runs-dir runs] [--out results]

Writes, each atomically: results/<name>.csv (one row per launched run), <name>_summary.csv
(mean, std, n over seeds), figures/<name>.png, <name>.md and .tex for a table question (the
main table), claims.md, and a README saying where each table comes from. Only this command
writes results/.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ablations.questions import load_all
from ablations.tables.documents import (
    claims_md,
    readme,
    report_evaluations,
    report_one,
    verdicts_only,
)
from ablations.tables.pages import write_site
from core.infra.atomic import write_text
from core.infra.cli import Parser


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m ablations.report", description=__doc__)
    p.add_argument("names", nargs="*")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--out", default="results")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    registry = load_all()
    for n in a.names:
        if n not in registry:
            print(f"error: unknown ablation '{n}'; valid: {', '.join(registry.names())}",
                  file=sys.stderr)
            return 2
    names = a.names or registry.names()
    out, runs_dir = Path(a.out), Path(a.runs_dir)
    pages, warnings = {}, []
    for name in registry.names():  # claims.md and index.html always cover every question
        ab = registry.get(name)
        page, w = (report_one(ab, runs_dir, out) if name in names
                   else verdicts_only(ab, runs_dir))
        warnings += w
        if page is not None:
            pages[name] = page
    verdicts = {name: p.verdicts for name, p in pages.items()}
    reported = list(pages)
    n_evals = report_evaluations(runs_dir, out)
    if n_evals:
        print(f"{n_evals} checkpoint evaluation(s) -> {out / 'evaluations.csv'}")
    if not reported:
        if not n_evals:
            print(f"nothing to report: no launched grids under {runs_dir}")
        return 0
    write_text(out / "claims.md", claims_md(verdicts, warnings))
    write_text(out / "README.md", readme(reported, n_evals > 0))
    write_site(out, runs_dir, list(pages.values()), warnings,
               pages_for=[n for n in reported if n in names])
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for name, vs in verdicts.items():
        for v in vs:
            eff = "n/a" if v.effect is None else f"{v.effect:+.2f} pts"
            print(f"{name} {v.claim.id} ({v.scale}): {eff} -> {v.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
