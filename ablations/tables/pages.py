"""results/index.html: the results as plain static pages (no server, no network, no script).

index.html answers "what did the paper claim and what did we find" at a glance: what ran
(scale, data set, test points, code and its date, machine), every claim with the paper's
number, ours with its uncertainty, the verdict and the rule behind it, and a legend; then each
question's counts. <name>.html shows the question's
figure, its summary table, each claim with its verdict and the seeds it would take, the
flagged runs, and every run with its curve, config, provenance and log (copied under
runs/<run-id>/, so the pages work wherever results/ is copied).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ablations.grid.spec import Ablation
from ablations.tables.carried import carry_grids, carry_run, with_sources
from ablations.tables.collect import curves, of_setting, setting_name, settings
from ablations.tables.verdicts import Verdict, interval, seeds_to_decide
from core.data.sets import DATASETS
from core.evaluation import metric_label
from core.infra.atomic import write_text
from core.infra.provenance import commit_date
from core.infra.rundir import RunDir

STYLE = """body{font-family:sans-serif;max-width:1360px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 6px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.num{text-align:right;white-space:nowrap}td.text{max-width:26em}
.flag{color:#b00;max-width:22em}.ok{color:#070}img{max-width:100%}nav a{margin-right:1em}
.supported{color:#070;font-weight:bold}.inconclusive{color:#a60}
.notsupported{color:#b00;font-weight:bold}.toofewseeds,.nottestablehere{color:#666}.legend{font-size:13px;color:#444;max-width:60em}
figcaption{font-size:13px;color:#444}"""
LEGEND = ("<p class=\"legend\">Accuracies are percent of the n test points named. An effect is "
          "treatment minus control in percentage points: the mean over blocks (models, methods) "
          "of the paired differences of runs that share every other setting and the seed, with "
          "its 95% interval (Student's t over the seed spread plus the test points' sampling "
          "error; ablations/tables/verdicts.py). No verdict below 3 seeds a block; a grid's "
          "claims are adjusted together (Holm). Each verdict says the rule that decided it. "
          "† marks a run a sanity check "
          "flagged (a stronger attack above a weaker one, robust above natural accuracy, or "
          "random restarts more than 2 points apart): a sign of a weak or masked evaluation. "
          "In the figures, bars are means over seeds and error bars one standard deviation "
          "over the seeds (n = seeds).</p>")


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
        rows.append(
            f"<tr><td class=\"text\">{html.escape(c.id)}: {html.escape(c.text)}</td>"
            f"<td>{html.escape(v.setting)}</td>"
            f"<td>{html.escape(metric_label(c.metric))}</td><td>{interval(v)}</td>"
            f"<td>{'–' if v.se is None else f'{v.se:.2f}'}</td><td>{v.n_pairs}</td>"
            f"<td>{v.seeds}</td><td class=\"{_verdict_class(v)}\">{v.verdict}</td>"
            f"<td>{seeds_to_decide(v)}</td><td class=\"text\">{html.escape(v.rule)}"
            f"</td><td class=\"text\">{html.escape(v.note)}</td></tr>")
    return ("<table><tr><th>claim</th><th>scale</th><th>metric</th><th>effect [95% CI] (pts)</th>"
            "<th>SE</th><th>pairs</th><th>seeds</th><th>verdict</th><th title=\"seeds a block "
            "at which the interval would resolve the paper's effect (else the margin)\">seeds "
            "to decide</th><th>rule</th><th>notes</th></tr>"
            + "".join(rows) + "</table>")


def _run_table(p: Page, out: Path) -> str:
    axes = p.ab.all_axes()
    metrics = [c for c in p.rows.columns if c.endswith("_acc") and p.rows[c].notna().any()]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["run", "scale", *axes, "seed", "status",
                    *(f"{metric_label(m)} %" for m in metrics),
                    "flags", "files"])
    body = []
    for _, r in p.rows.iterrows():
        rid = r["run_id"]
        cells = [f"<a id=\"{rid}\">{rid}</a>", setting_name(r["scale"], r["ran_with"]),
                 *(r[a] for a in axes), r["seed"], r["status"],
                 *(("–" if pd.isna(r[m]) else f"{100 * r[m]:.1f}") for m in metrics)]
        flags = r.get("flags") if isinstance(r.get("flags"), str) else ""
        files = " ".join(f"<a href=\"runs/{rid}/{f}\">{label}</a>" for f, label in RUN_FILES
                         if (out / "runs" / rid / f).is_file())
        first_metric = len(cells) - len(metrics)
        body.append("<tr>" + "".join((NUM if i >= first_metric else "<td>")
                                     + f"{html.escape(str(c)) if i else c}</td>"
                                     for i, c in enumerate(cells))
                    + f"<td class=\"flag\">{html.escape(flags)}</td><td>{files}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


NUM = "<td class=\"num\">"
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
    summary = _percent_summary(p.summary).to_html(index=False, na_rep="–", border=0)
    body = (f"<h1>{html.escape(name)}</h1><p>{html.escape(p.ab.question)}</p>"
            f"<figure><img src=\"figures/{name}.png\" alt=\"figure of {html.escape(name)}\">"
            "<figcaption>Bars: mean over seeds; error bars: one standard deviation over the "
            "seeds; red †: a run a sanity check flagged (Flags, below).</figcaption></figure>"
            f"<h2>Claims</h2>{_verdict_rows(p.verdicts)}"
            f"{LEGEND}<h2>Flags</h2>{flag_html}<h2>Summary over seeds</h2>"
            f"<div style=\"overflow-x:auto\">{summary}</div>"
            f"<p>CSV: <a href=\"{name}.csv\">{name}.csv</a>, "
            f"<a href=\"{name}_summary.csv\">{name}_summary.csv</a></p>"
            f"<h2>Runs</h2>{_run_table(p, out)}")
    return _doc(name, body)


def _percent_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Each metric a grid asked for as one column 'mean ± std (seeds)' in percent; the
    settings first, the run counts last."""
    means = [c for c in summary.columns if c.endswith("_acc_mean")]
    metric_cols = {c for m in means for c in (m, m.replace("_mean", "_std"),
                                               m.replace("_mean", "_n"))}
    keys = [c for c in summary.columns if c not in metric_cols and not c.startswith("n_")]
    out = summary[keys].copy()
    for m in means:
        col, mean = m[:-len("_mean")], summary[m]
        if mean.isna().all():  # an attack this grid does not ask for
            continue
        std, n = summary[f"{col}_std"], summary[f"{col}_n"]
        out[f"{metric_label(col)} %, mean ± std (seeds)"] = [
            "–" if pd.isna(a) else f"{100 * a:.1f}" + ("" if pd.isna(d) else f" ± {100 * d:.1f}")
            + f" ({int(k)})" for a, d, k in zip(mean, std, n, strict=True)]
    for c in summary.columns:
        if c.startswith("n_") and c not in metric_cols:
            out[c] = summary[c]
    return out


def _facts(pages: list[Page]) -> str:
    """What ran: per setting its data set, test points, code (and its date) and machines."""
    rows = pd.concat([p.rows for p in pages if not p.rows.empty], ignore_index=True)
    done = rows[rows["status"].isin(["done", "diverged"])]
    lines = []
    for scale, ran_with in settings(done):
        d = of_setting(done, scale, ran_with)
        runs = d.drop_duplicates("run_id")
        data = ", ".join(_data_label(n) for n in sorted(runs["data"].dropna().unique()))
        n_eval = "/".join(str(int(n)) for n in sorted(runs["n_eval"].dropna().unique()))
        shas = sorted(runs["git_sha"].dropna().unique())
        code = ", ".join(f"{sha[:7]} ({commit_date(sha) or 'date unknown'})" for sha in shas)
        dirty = " (some from modified code)" if runs["dirty"].astype(str).eq("True").any() else ""
        machines = "; ".join(sorted(runs["machine"].dropna().unique()))
        lines.append(f"<tr><td>{html.escape(setting_name(scale, ran_with))}</td>"
                     f"<td>{html.escape(data)}</td><td>{html.escape(n_eval)}</td>"
                     f"<td>{len(runs)}</td><td>{html.escape(code + dirty)}</td>"
                     f"<td>{html.escape(machines)}</td></tr>")
    return ("<table class=\"facts\"><tr><th>scale</th><th>data set</th><th>test points n</th>"
            "<th>finished runs</th><th>code (commit date)</th><th>machine</th></tr>"
            + "".join(lines) + "</table>")


def _data_label(name: str) -> str:
    sizes = DATASETS.get(name).sizes if name in DATASETS else None
    return name if sizes is None else f"{name} ({sizes[0]:,} train / {sizes[1]:,} test images)"


def _paper_says(v: Verdict) -> str:
    c = v.claim
    size = "" if c.size is None else f" ({'-' if c.direction == '-' else '+'}{c.size:g} pts)"
    return f"{c.text}{size}"


def _ours(v: Verdict) -> str:
    if v.effect is None:
        return "no complete pair"
    if v.se is None:
        return f"{v.effect:+.1f} pts ({v.n_pairs} pairs, {v.seeds} seed(s) a block)"
    return f"{interval(v)} pts, 95% CI ({v.blocks} x {v.seeds} pairs)"


def _claims_at_a_glance(pages: list[Page]) -> str:
    rows, also = [], {}
    for p in pages:  # a measurement two claims share is one row, naming both
        for v in p.verdicts:
            if v.shared_with:
                also.setdefault((v.shared_with, v.setting), []).append(f"{p.ab.name} {v.claim.id}")
    for p in pages:
        for v in p.verdicts:
            if v.shared_with:
                continue
            same = also.get((f"{p.ab.name} {v.claim.id}", v.setting), [])
            shared = f" (the same measurement as {', '.join(same)})" if same else ""
            rows.append(f"<tr><td><a href=\"{p.ab.name}.html\">{html.escape(p.ab.name)}</a> "
                        f"{html.escape(v.claim.id + shared)}</td><td>{html.escape(v.setting)}</td>"
                        f"<td class=\"text\">{html.escape(_paper_says(v))}</td>"
                        f"<td>{html.escape(metric_label(v.claim.metric))}</td>"
                        f"<td class=\"num\">{html.escape(_ours(v))}</td>"
                        f"<td class=\"{_verdict_class(v)}\">{v.verdict}</td>"
                        f"<td class=\"text\">{html.escape(v.rule)}</td></tr>")
    return ("<table><tr><th>claim</th><th>scale</th><th>the paper</th><th>metric</th>"
            "<th>ours: effect [95% CI]</th><th>verdict</th><th>rule</th></tr>" + "".join(rows)
            + "</table>")


def index_page(pages: list[Page], warnings: list[str]) -> str:
    items = []
    for p in pages:
        counts: dict[str, int] = {}
        for v in p.verdicts:
            counts[v.verdict] = counts.get(v.verdict, 0) + 1
        n_flagged = int((p.rows.get("flags", pd.Series(dtype=str)).fillna("") != "").sum())
        where = "; ".join(setting_name(*s) for s in settings(p.rows))
        items.append(f"<tr><td><a href=\"{p.ab.name}.html\">{html.escape(p.ab.name)}</a></td>"
                     f"<td class=\"text\">{html.escape(p.ab.question)}</td>"
                     f"<td>{html.escape(where)}</td><td>{len(p.rows)}</td>"
                     f"<td>{', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}</td>"
                     f"<td class=\"{'flag' if n_flagged else 'ok'}\">{n_flagged}</td></tr>")
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    body = ("<h1>vitadv results</h1><p>Mo et al. 2022, <i>When Adversarial Training Meets "
            "Vision Transformers</i>, asked again. Every table, figure and verdict here was "
            "written by <code>python -m ablations.report</code> from the run folders.</p>"
            f"<h2>What ran</h2>{_facts(pages)}"
            + (f"<h2>Warnings</h2><ul>{warn}</ul>" if warn else "")
            + f"<h2>The paper's claims and what we found</h2>{LEGEND}{_claims_at_a_glance(pages)}"
            + "<h2>Questions</h2><table><tr><th>question</th><th></th><th>scale</th><th>runs"
              "</th><th>claims</th><th>flagged runs</th></tr>" + "".join(items) + "</table>")
    return _doc("vitadv results", body)


def copy_run_files(runs_dir: Path, out: Path, run_ids: list[str], weights: bool) -> None:
    """Each finished or failed run's files, and those of the runs it started from, under
    out/runs/<id>/ (ablations.tables.carried), a finished one's curve drawn."""
    for rid in with_sources(runs_dir, run_ids):
        src, dst = RunDir.of(runs_dir, rid), RunDir.of(out / "runs", rid)
        if src.result.is_file() or src.failure.is_file():  # a failed run stays failed
            carry_run(src, dst, weights)
        if src.result.is_file():
            _curve_png(src, dst.path / CURVE_PNG)


def _curve_png(run_dir: RunDir, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.6))
    curve = curves(run_dir)
    if curve is not None:
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
               pages_for: list[str], weights: bool = False) -> None:
    """index.html over every question; the pages, run files and grid records of `pages_for`
    (so the report can be rebuilt from out/runs)."""
    built = [p for p in pages if p.ab.name in pages_for]
    # once over every page's runs: questions share runs (ard_prm's cells without plugins are
    # the clipping grid's clipped cells), each copied and drawn once
    copy_run_files(runs_dir, out, [rid for p in built for rid in p.rows["run_id"]], weights)
    for p in built:
        write_text(out / f"{p.ab.name}.html", ablation_page(p, out))
    carry_grids(runs_dir, out / "runs", pages_for)
    write_text(out / "index.html", index_page(pages, warnings))
