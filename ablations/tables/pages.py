"""results/index.html: the results as plain static pages (no server, no network, no script).

index.html lists every question with its claims' verdicts; <name>.html shows the question's
figure, its summary table, each claim with its verdict and the seeds it would take, the
flagged runs, and every run with its curve, config, provenance and log (copied under
runs/<run-id>/, so the pages work wherever results/ is copied).
"""
from __future__ import annotations

import html
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ablations.grid.spec import Ablation
from ablations.tables.verdicts import Verdict, seeds_to_decide
from core.evaluation import metric_label
from core.infra.atomic import write_text
from core.infra.rundir import RunDir

STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 6px;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:
left}.flag{color:#b00}.ok{color:#070}img{max-width:100%}nav a{margin-right:1em}
.supported{color:#070;font-weight:bold}.inconclusive{color:#a60}.notsupported{color:#b00;
font-weight:bold}"""


@dataclass
class Page:
    ab: Ablation
    rows: pd.DataFrame
    summary: pd.DataFrame
    verdicts: list[Verdict]


def _doc(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<nav><a href=\"index.html\">all questions</a><a href=\"claims.md\">claims.md</a>"
            f"<a href=\"README.md\">where each file comes from</a></nav>{body}</body></html>\n")


def _verdict_class(v: Verdict) -> str:
    return v.verdict.replace(" ", "")


def _verdict_rows(verdicts: list[Verdict]) -> str:
    rows = []
    for v in verdicts:
        c = v.claim
        fmt = lambda x: "–" if x is None else f"{x:+.2f}"  # noqa: E731
        rows.append(
            f"<tr><td>{html.escape(c.id)}: {html.escape(c.text)}</td><td>{v.scale}</td>"
            f"<td>{html.escape(metric_label(c.metric))}</td><td>{fmt(v.effect)}</td>"
            f"<td>{'–' if v.se is None else f'{v.se:.2f}'}</td><td>{v.n_pairs}</td>"
            f"<td>{v.seeds}</td><td class=\"{_verdict_class(v)}\">{v.verdict}</td>"
            f"<td>{seeds_to_decide(v)}</td><td>{html.escape(v.note)}</td></tr>")
    return ("<table><tr><th>claim</th><th>scale</th><th>metric</th><th>effect (pts)</th>"
            "<th>SE</th><th>pairs</th><th>seeds</th><th>verdict</th><th title=\"seeds for 2 SE "
            "at the target effect: with these test points / with unlimited ones\">seeds to "
            "decide</th><th>notes</th></tr>"
            + "".join(rows) + "</table>")


def _run_table(p: Page, out: Path) -> str:
    axes = p.ab.all_axes()
    metrics = [c for c in p.rows.columns if c.endswith("_acc") and p.rows[c].notna().any()]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["run", "scale", *axes, "seed", "status", *map(metric_label, metrics),
                    "flags", "files"])
    body = []
    for _, r in p.rows.iterrows():
        rid = r["run_id"]
        cells = [f"<a id=\"{rid}\">{rid}</a>", r["scale"], *(r[a] for a in axes), r["seed"],
                 r["status"], *(("–" if pd.isna(r[m]) else f"{100 * r[m]:.1f}") for m in metrics)]
        flags = r.get("flags") if isinstance(r.get("flags"), str) else ""
        files = " ".join(f"<a href=\"runs/{rid}/{f}\">{label}</a>" for f, label in RUN_FILES
                         if (out / "runs" / rid / f).is_file())
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c)) if i else c}</td>"
                                     for i, c in enumerate(cells))
                    + f"<td class=\"flag\">{html.escape(flags)}</td><td>{files}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


CURVE_PNG = "curve.png"
RUN_FILES = ((CURVE_PNG, "curve"), (RunDir.config.name, "config"),
             (RunDir.result.name, "provenance"), (RunDir.log.name, "log"))


def ablation_page(p: Page, out: Path) -> str:
    name = p.ab.name
    flagged = p.rows[p.rows.get("flags", pd.Series(dtype=str)).fillna("") != ""]
    flag_html = ("<p class=\"ok\">No run is flagged.</p>" if flagged.empty else
                 "<ul>" + "".join(f"<li><a href=\"#{r['run_id']}\">{r['run_id']}</a>: "
                                  f"<span class=\"flag\">{html.escape(r['flags'])}</span></li>"
                                  for _, r in flagged.iterrows()) + "</ul>")
    summary = p.summary.to_html(index=False, float_format=lambda x: f"{x:.4f}", na_rep="–",
                                border=0)
    body = (f"<h1>{html.escape(name)}</h1><p>{html.escape(p.ab.question)}</p>"
            f"<img src=\"figures/{name}.png\" alt=\"figure of {html.escape(name)}\">"
            f"<h2>Claims</h2>{_verdict_rows(p.verdicts)}"
            f"<h2>Flags</h2>{flag_html}<h2>Summary over seeds</h2>"
            f"<div style=\"overflow-x:auto\">{summary}</div>"
            f"<p>CSV: <a href=\"{name}.csv\">{name}.csv</a>, "
            f"<a href=\"{name}_summary.csv\">{name}_summary.csv</a></p>"
            f"<h2>Runs</h2>{_run_table(p, out)}")
    return _doc(name, body)


def index_page(pages: list[Page], warnings: list[str]) -> str:
    items = []
    for p in pages:
        counts: dict[str, int] = {}
        for v in p.verdicts:
            counts[v.verdict] = counts.get(v.verdict, 0) + 1
        n_flagged = int((p.rows.get("flags", pd.Series(dtype=str)).fillna("") != "").sum())
        items.append(f"<tr><td><a href=\"{p.ab.name}.html\">{html.escape(p.ab.name)}</a></td>"
                     f"<td>{html.escape(p.ab.question)}</td><td>{len(p.rows)}</td>"
                     f"<td>{', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}</td>"
                     f"<td class=\"{'flag' if n_flagged else 'ok'}\">{n_flagged}</td></tr>")
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    body = ("<h1>vitadv results</h1><p>Every table, figure and verdict here was written by "
            "<code>python -m ablations.report</code> from the run folders.</p>"
            + (f"<h2>Warnings</h2><ul>{warn}</ul>" if warn else "")
            + "<table><tr><th>question</th><th></th><th>runs</th><th>claims</th>"
              "<th>flagged runs</th></tr>" + "".join(items) + "</table>")
    return _doc("vitadv results", body)


def copy_run_files(runs_dir: Path, out: Path, run_ids: list[str]) -> None:
    """Each run's curve (drawn), config, result and log under out/runs/<id>/."""
    for rid in run_ids:
        src, dst = RunDir.of(runs_dir, rid), out / "runs" / rid
        if not src.result.is_file():
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for path in (src.config, src.result, src.log):
            if path.is_file():
                shutil.copyfile(path, dst / path.name)
        _curve_png(src, dst / CURVE_PNG)


def _curve_png(run_dir: RunDir, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.6))
    if run_dir.curve.is_file():
        curve = pd.read_csv(run_dir.curve)
        for col, label in (("test_clean_acc", "natural"), ("test_robust_acc", "robust"),
                           ("train_acc", "train")):
            if col in curve:
                ax.plot(curve["epoch"], 100 * curve[col], marker="o", markersize=2, label=label)
        ax.legend(fontsize=6)
    ax.set_xlabel("epoch", fontsize=7)
    ax.set_ylabel("accuracy (%)", fontsize=7)
    ax.set_title(run_dir.name, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_site(out: Path, runs_dir: Path, pages: list[Page], warnings: list[str],
               pages_for: list[str]) -> None:
    """index.html over every question; the pages (and run files) of `pages_for`."""
    for p in pages:
        if p.ab.name in pages_for:
            copy_run_files(runs_dir, out, list(p.rows["run_id"]))
            write_text(out / f"{p.ab.name}.html", ablation_page(p, out))
    write_text(out / "index.html", index_page(pages, warnings))
