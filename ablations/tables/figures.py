"""Figures in the paper's style: grouped bars with error bars, learning curves, all attacks.

Diverged cells are drawn hatched and labelled; failed or missing cells are marked where
their bar would be, so nothing is silently dropped; a cell with a run flagged for a weak or
masked evaluation carries a red † (the flags are in the CSVs, the main table and index.html).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ablations.grid.spec import Ablation
from ablations.tables.collect import (  # noqa: E402
    curves,  # noqa: E402
    metrics,
    of_setting,
    setting_label,
    settings,
)
from core.evaluation import EVAL_ATTACKS, NATURAL, attack_of, metric_label  # noqa: E402
from core.infra.rundir import RunDir  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
CURVE_COLUMNS = ("test_robust_acc", "test_clean_acc")  # curve.csv: the curve attack, natural


def _cell_key(row: pd.Series, axes: list[str]) -> str:
    return " / ".join(str(row[a]) for a in axes)


def bars(ax, summary: pd.DataFrame, axes: list[str], metric: str) -> bool:
    """x: every axis but the last; one bar per value of the last axis (one axis: x labels).
    Returns whether the panel needs a legend."""
    if len(axes) == 1:
        for i, (_, r) in enumerate(summary.iterrows()):
            _bar(ax, i, 0.7, r, metric, COLORS[i % len(COLORS)], None)
        ax.set_xticks(range(len(summary)), summary[axes[0]], rotation=30 if len(summary) > 5
                      else 0, ha="right" if len(summary) > 5 else "center")
        _axis_style(ax, metric)
        return False
    inner, outer = axes[-1], axes[:-1]
    keys = pd.Series([_cell_key(r, outer) for _, r in summary.iterrows()], index=summary.index)
    groups = list(dict.fromkeys(keys))
    values = list(dict.fromkeys(summary[inner]))
    width = 0.8 / len(values)
    for j, v in enumerate(values):
        for i, g in enumerate(groups):
            sel = summary[(summary[inner] == v) & (keys == g)]
            if sel.empty:
                continue
            x = i + (j - (len(values) - 1) / 2) * width
            _bar(ax, x, width, sel.iloc[0], metric, COLORS[j % len(COLORS)], v if i == 0 else None)
    ax.set_xticks(range(len(groups)), groups)
    _axis_style(ax, metric)
    return True


def metric_bars(ax, summary: pd.DataFrame, axis: str, metrics: list[str]) -> None:
    """x: the values of `axis`; one bar per metric (the main table's figure)."""
    width = 0.8 / len(metrics)
    for j, m in enumerate(metrics):
        for i, (_, r) in enumerate(summary.iterrows()):
            x = i + (j - (len(metrics) - 1) / 2) * width
            _bar(ax, x, width, r, m, COLORS[j % len(COLORS)], metric_label(m) if i == 0 else None)
    ax.set_xticks(range(len(summary)), summary[axis], rotation=30 if len(summary) > 5 else 0,
                  ha="right" if len(summary) > 5 else "center")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)


def _axis_style(ax, metric: str) -> None:
    ax.set_ylabel(f"{metric_label(metric)} accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)


def _bar(ax, x: float, width: float, r: pd.Series, metric: str, color: str, label) -> None:
    mean, std = r[f"{metric}_mean"], r[f"{metric}_std"]
    if pd.isna(mean):
        status = "failed" if r.get("n_failed", 0) else "missing"
        ax.text(x, 2, status, rotation=90, ha="center", va="bottom", fontsize=7, color="0.4")
        ax.bar(x, 0, width, color=color, label=label)
        return
    hatch = "//" if r.get("n_diverged", 0) else None
    ax.bar(x, 100 * mean, width, yerr=None if pd.isna(std) else 100 * std, capsize=2,
           color=color, hatch=hatch, edgecolor="black" if hatch else None, linewidth=0.5,
           label=label)
    if hatch:
        ax.text(x, 100 * mean + 2, "diverged", rotation=90, ha="center", va="bottom",
                fontsize=7)
    if r.get("n_flagged", 0):  # a weak or masked evaluation suspected (ablations/tables/flags.py)
        ax.text(x, 100 * mean + 1, "†", ha="center", va="bottom", fontsize=9, color="#b00")
    incomplete = int(r.get("n_failed", 0)) + int(r.get("n_missing", 0))
    if incomplete:
        ax.text(x, 100 * mean + 2, f"{incomplete} missing", rotation=90, ha="center",
                va="bottom", fontsize=6, color="0.4")


def learning_curves(ax, rows: pd.DataFrame, axes: list[str], runs_dir: Path, column: str) -> None:
    """One line per cell (mean over seeds) of a curve.csv column against the epoch."""
    for j, (key, g) in enumerate(rows.groupby(axes, sort=False, dropna=False)):
        frames = [c for rid in g["run_id"] if (c := curves(RunDir.of(runs_dir, rid))) is not None]
        label = " / ".join(map(str, key if isinstance(key, tuple) else (key,)))
        if not frames:
            ax.plot([], [], label=f"{label} (missing)", color=COLORS[j % len(COLORS)])
            continue
        mean = pd.concat(frames).groupby("epoch")[column].mean()
        diverged = (g["status"] == "diverged").any()
        ax.plot(mean.index, 100 * mean.values, marker="o", markersize=3,
                color=COLORS[j % len(COLORS)], label=label + (" (diverged)" if diverged else ""))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def _subset(rows: pd.DataFrame, metric: str) -> str:
    """', first N points' when the metric's attack saw fewer test points than the others."""
    attack = attack_of(metric)
    col = attack.count_column if attack and attack.limit else None
    if col is None or col not in rows or rows[col].dropna().empty:
        return ""
    n, n_eval = int(rows[col].max()), int(rows["n_eval"].max())
    return f", first {n} points" if n < n_eval else ""


def asked_metrics(rows: pd.DataFrame) -> list[str]:
    """The metric columns some run of `rows` holds, in the registry's order."""

    return [m for m in metrics() if m in rows and rows[m].notna().any()]


def _curve_label(rows: pd.DataFrame, runs_dir: Path, column: str) -> str:
    """The attack behind a curve.csv column, as the runs' configs say."""
    if column != CURVE_COLUMNS[0]:
        return EVAL_ATTACKS.get(NATURAL).label
    for rid in rows["run_id"]:
        result = RunDir.of(runs_dir, rid).read_result()
        if result:
            return EVAL_ATTACKS.get(result["config"]["eval"]["curve_attack"]).label
    return column


def ablation_figure(ab: Ablation, rows: pd.DataFrame, summary: pd.DataFrame, runs_dir: Path,
                    path: Path) -> None:
    scales = settings(rows)
    panels = _panels(ab, rows)
    fig, axs = plt.subplots(len(scales), len(panels), squeeze=False,
                            figsize=(4.2 * len(panels) + 1.6 + 2.5 * (ab.figure == "table"),
                                     3.6 * len(scales)))
    for i, (scale, ran_with) in enumerate(scales):
        axes, scale_rows = list(ab.axes_for(scale)), of_setting(rows, scale, ran_with)
        scale_summary = of_setting(summary, scale, ran_with)
        # a setting's overrides go on lines of their own: long ones would run into the next panel
        where = "\n".join(textwrap.wrap(setting_label(scale, ran_with), 48))
        sep = "\n" if ran_with else " "
        legend = False
        for k, (kind, metric) in enumerate(panels):
            ax = axs[i][k]
            if kind == "table":
                metric_bars(ax, scale_summary, axes[0], asked_metrics(scale_rows))
                ax.set_title(f"{where}{_subsets(scale_rows)}", fontsize=10)
                legend = True
                continue
            if kind == "curve":
                learning_curves(ax, scale_rows, axes, runs_dir, metric)
                name = _curve_label(scale_rows, runs_dir, metric)
                ax.set_ylabel(f"test {name} accuracy (%)")
                legend = legend or k == 0
            else:
                legend = bars(ax, scale_summary, axes, metric) or legend
                name = metric_label(metric)
            ax.set_title(f"{name}{sep}({where}{_subset(scale_rows, metric)})", fontsize=10)
        handles, labels = next((ax.get_legend_handles_labels() for ax in axs[i]
                                if ax.get_legend_handles_labels()[0]), ([], []))
        if legend and handles:
            title = {"curve": " / ".join(axes), "table": "attack"}.get(panels[0][0], axes[-1])
            axs[i][-1].legend(handles, labels, fontsize=7, loc="upper left",
                              bbox_to_anchor=(1.02, 1), title=title, title_fontsize=7)
    fig.suptitle(ab.question, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=130)
    plt.close(fig)
    tmp.replace(path)


def _subsets(rows: pd.DataFrame) -> str:
    """'; AutoAttack: first N points' for every metric measured on a subset."""
    notes = [f"{metric_label(m)}: {_subset(rows, m).removeprefix(', ')}"
             for m in asked_metrics(rows) if _subset(rows, m)]
    return "".join(f"; {n}" for n in notes)


def _panels(ab: Ablation, rows: pd.DataFrame) -> list[tuple[str, str]]:
    """The main table: one grouped panel of every metric; a question: natural accuracy and
    its claims' metrics (as learning curves too, for `curves`)."""
    if ab.figure == "table":
        return [("table", "")]
    natural = EVAL_ATTACKS.get(NATURAL).column
    claimed = [m for m in asked_metrics(rows) if m in {c.metric for c in ab.claims}]
    bars_ = [("bar", m) for m in dict.fromkeys([natural, *claimed])]
    if ab.figure == "curves":
        return [("curve", c) for c in CURVE_COLUMNS] + [b for b in bars_ if b[1] != natural]
    return bars_
