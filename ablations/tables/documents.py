"""The documents of a report: per ablation its CSV tables, main table (Markdown and LaTeX),
figure and verdicts; claims.md over every ablation; results/README.md."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ablations.grid.spec import Ablation
from ablations.questions import load_all
from ablations.tables.collect import (
    SETTING,
    evaluation_rows,
    metrics,
    of_setting,
    rows,
    setting_label,
    setting_name,
    settings,
    summary,
)
from ablations.tables.figures import ablation_figure, asked_metrics
from ablations.tables.pages import Page
from ablations.tables.verdicts import Verdict, adjust, interval, judge, seeds_to_decide
from core.evaluation import attack_of, metric_label
from core.infra.atomic import write_text

DECIMALS = 6


def csv_text(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format=f"%.{DECIMALS}f", lineterminator="\n")
    return buf.getvalue()


def report_one(ab: Ablation, runs_dir: Path, out: Path) -> tuple[Page | None, list[str]]:
    df = rows(ab, runs_dir)
    if df.empty:
        return None, []
    summ = summary(df, ab.all_axes())
    write_text(out / f"{ab.name}.csv", csv_text(df))
    write_text(out / f"{ab.name}_summary.csv", csv_text(summ))
    ablation_figure(ab, df, summ, runs_dir, out / "figures" / f"{ab.name}.png")
    if ab.figure == "table":
        md, tex = main_table(df, ab)
        write_text(out / f"{ab.name}.md", md)
        write_text(out / f"{ab.name}.tex", tex)
    return Page(ab, df, summ, _verdicts(ab, df, runs_dir)), _version_warnings(ab, df)


def _verdicts(ab: Ablation, df: pd.DataFrame, runs_dir: Path) -> list[Verdict]:
    """Each claim at each setting; a grid's claims at one setting are one Holm family."""
    return [v for scale, ran_with in settings(df) for v in adjust(
        [judge(c, df, ab, scale, ran_with, runs_dir) for c in ab.claims if scale in c.scales])]


def verdicts_only(ab: Ablation, runs_dir: Path) -> tuple[Page | None, list[str]]:
    df = rows(ab, runs_dir)
    if df.empty:
        return None, []
    page = Page(ab, df, summary(df, ab.all_axes()), _verdicts(ab, df, runs_dir))
    return page, _version_warnings(ab, df)


def _version_warnings(ab: Ablation, df: pd.DataFrame) -> list[str]:
    """Runs from several code versions in one table are reported, never mixed silently."""
    done = df[df["status"].isin(["done", "diverged"])]
    warnings = []
    for (scale, ran_with), g in done.groupby(SETTING):
        where = setting_name(scale, ran_with)
        versions = g["git_sha"].fillna("unknown").value_counts()
        dirty = int(g["dirty"].fillna(False).astype(bool).sum())
        if len(versions) > 1:
            listed = ", ".join(f"{v} ({n} runs)" for v, n in versions.items())
            warnings.append(f"{ab.name} ({where}) mixes code versions: {listed}")
        if dirty:
            warnings.append(f"{ab.name} ({where}): {dirty} run(s) from a checkout with "
                            "uncommitted changes")
        kinds = g["machine"].fillna("unknown").value_counts()
        if len(kinds) > 1:  # float rounding differs between them: not one measurement
            listed = ", ".join(f"{k} ({n} runs)" for k, n in kinds.items())
            warnings.append(f"{ab.name} ({where}) mixes machine kinds: {listed}")
    return warnings


def main_table(df_rows: pd.DataFrame, ab: Ablation) -> tuple[str, str]:
    """Markdown and LaTeX: model x every attack the grid asked for (and the worst case), mean
    +- std over seeds, in %."""
    summ = summary(df_rows, ab.all_axes())
    md, tex = [f"# {ab.name}: {ab.question}", "",
               "Mean ± std over seeds, in % of the test points; the seeds column says how many.",
               ""], []
    for (scale, ran_with), g in summ.groupby(SETTING, sort=False):
        scale_rows = of_setting(df_rows, scale, ran_with)
        cols, axis = asked_metrics(scale_rows), list(ab.axes_for(scale))[0]
        labels = [metric_label(c) for c in cols]
        heading = setting_label(scale, ran_with)
        md += [f"## {heading}", "", f"| {axis} | " + " | ".join(labels) + " | seeds |",
               "|---|" + "---:|" * (len(cols) + 1)]
        tex += [f"% {heading}", r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule",
                f"{axis.capitalize()} & " + " & ".join(labels) + r" \\", r"\midrule"]
        for _, r in g.iterrows():
            cells = [_pm(r, c) for c in cols]
            n = int(r[f"{cols[0]}_n"]) if cols else 0
            name = f"{r[axis]}{FLAG_MARK if r.get('n_flagged') else ''}"
            md.append(f"| {name} | " + " | ".join(cells) + f" | {n} |")
            tex.append(name.replace(FLAG_MARK, TEX_MARK) + " & "
                       + " & ".join(c.replace("±", r"$\pm$") for c in cells) + r" \\")
        tex += [r"\bottomrule", r"\end{tabular}", ""]
        md += ["", _points_note(scale_rows, cols), "", *_flag_notes(scale_rows, axis), ""]
    return "\n".join(md) + "\n", "\n".join(tex)


FLAG_MARK, TEX_MARK = "†", r"$^\dagger$"


def _flag_notes(rows: pd.DataFrame, axis: str) -> list[str]:
    """The flagged runs behind a † (signs of a weak or masked evaluation;
    ablations/tables/flags.py)."""
    flagged = rows[rows["flags"].fillna("") != ""]
    if flagged.empty:
        return ["No run is flagged for a weak or masked evaluation (ablations/tables/flags.py)."]
    return [f"{FLAG_MARK} flagged (ablations/tables/flags.py):", ""] + [
        f"- {r[axis]} seed {r['seed']} (run {r['run_id']}): {r['flags']}"
        for _, r in flagged.iterrows()]


def _points_note(rows: pd.DataFrame, cols: list[str]) -> str:
    """Which test points each column is measured on: an attack may see only a subset, so the
    comparable column is the worst case, taken point by point on that subset."""
    n_eval = rows["n_eval"].dropna()
    if n_eval.empty:
        return ""
    n = int(n_eval.max())
    attacks = [a for c in cols if (a := attack_of(c)) is not None]
    subsets = {a: int(rows[a.count_column].max()) for a in attacks
               if a.limit and a.count_column in rows and rows[a.count_column].notna().any()}
    subsets = {a: k for a, k in subsets.items() if k < n}
    full = [a.label for a in attacks if a not in subsets]
    note = f"{_join(full)} on {n} test points"
    for a, k in subsets.items():
        note += (f"; {a.label} on the first {k} of them, where 'worst case' is the point-wise "
                 f"minimum over all {len(attacks)} attacks (the column to compare {a.label} "
                 "with; on so few points its spread is large)")
    return note + ". Mean ± std over seeds, in %."


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _pm(r: pd.Series, metric: str) -> str:
    mean, std = r[f"{metric}_mean"], r[f"{metric}_std"]
    if pd.isna(mean):
        return "missing" if r["n_failed"] == 0 else "failed"
    flag = " (diverged)" if r["n_diverged"] else ""
    return (f"{100 * mean:.1f}" + ("" if pd.isna(std) else f" ± {100 * std:.1f}")) + flag


def report_evaluations(runs_dir: Path, out: Path) -> int:
    """results/evaluations.csv: one row per checkpoint evaluation (core.evaluate); how many."""
    df = evaluation_rows(runs_dir)
    if not df.empty:
        write_text(out / "evaluations.csv", csv_text(df))
    return len(df)


def claims_md(all_verdicts: dict[str, list[Verdict]], warnings: list[str]) -> str:
    lines = ["# Claims", "",
             "Each claim of the paper, measured by this project, decided by one procedure "
             "(stated in full in ablations/tables/verdicts.py): the effect is the mean over "
             "blocks (models, methods) of the paired differences by seed (treatment - control, "
             "accuracy points), with its 95% interval from Student's t (Welch-Satterthwaite "
             "df) over the seed spread plus the test points' sampling error; no verdict below "
             "3 seeds a block; 'no gain' claims by non-superiority against the margin; the "
             "claims of a grid at one setting adjusted by Holm; preconditions checked first. "
             "Each row names the rule that decided it. 'Seeds to decide': seeds a block at "
             "which the interval would resolve the paper's effect (else the margin). Rebuilt "
             "by `python -m ablations.report`.", ""]
    if warnings:
        lines += ["**Warnings**", "", *[f"- {w}" for w in warnings], ""]
    for name, verdicts in all_verdicts.items():
        if not verdicts:
            continue
        ab = load_all().get(name)
        lines += [f"## {name}", "", ab.question, "",
                  "| claim | scale | metric | effect [95% CI] (pts) | SE | df | p (Holm) | "
                  "blocks x seeds | verdict | rule | seeds to decide | notes |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---|"]
        for v in verdicts:
            c = v.claim
            se = "–" if v.se is None else f"{v.se:.2f}"
            dof = "–" if v.df is None else ("inf" if v.df == float("inf") else f"{v.df:.1f}")
            p = "–" if v.p is None else f"{v.p:.3g} ({v.p_holm:.3g})"
            lines.append(f"| {c.id}: {c.text} ({', '.join(c.treatment)} vs {c.control}, "
                         f"{c.direction}, margin {c.margin:g}) | {v.setting} | "
                         f"{metric_label(c.metric)} | {interval(v)} | {se} | {dof} | {p} | "
                         f"{v.blocks} x {v.seeds} | **{v.verdict}** | {v.rule} | "
                         f"{seeds_to_decide(v)} | {v.note} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def readme(names: list[str], evaluations: bool = False) -> str:
    lines = ["# results/", "",
             "Everything here is written by `python -m ablations.report` from the run folders "
             "(runs/<run-id>/result.json and curve.csv) of the grids launched with "
             "`python -m ablations.run NAME`. Do not edit by hand.", "",
             "| file | source |", "|---|---|"]
    for n in names:
        lines.append(f"| `{n}.csv`, `{n}_summary.csv`, `figures/{n}.png` | grid `{n}` "
                     f"(ablations/questions/{n}.py): one row per launched run; mean/std/n over "
                     "seeds |")
        if load_all().get(n).figure == "table":
            lines.append(f"| `{n}.md`, `{n}.tex` | grid `{n}`, every attack it asks for |")
    if evaluations:
        lines.append("| `evaluations.csv` | checkpoint evaluations (`python -m core.evaluate`, "
                     "runs/_evals/): one row each, with source and SHA-256 of the weights |")
    lines += ["| `claims.md` | every claim's paired effect, verdict and seeds to decide it "
              "(ablations/tables/verdicts.py) |",
              "| `index.html`, `<name>.html` | the same as pages: figure, summary, claims and "
              "flags per question; per run its curve, config, provenance and log, copied to "
              "`runs/<run-id>/` (ablations/tables/pages.py) |",
              "", "Columns: the grid's axes, `seed`, `status` (done / diverged / failed / "
              "missing), `run_id`, `git_sha`/`dirty` (code version of the run), `n_eval`, "
              f"the accuracies ({', '.join(metrics())}) as fractions, and `flags`: the signs "
              "of a weak or masked evaluation found on the run's points "
              "(ablations/tables/flags.py).",
              ""]
    return "\n".join(lines)
