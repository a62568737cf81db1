"""Figures in the paper's style: grouped bars with error bars, learning curves, all attacks.

Diverged cells are drawn hatched and labelled; failed or missing cells are marked where
their bar would be, so nothing is silently dropped.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ablations.collect import curves  # noqa: E402
from ablations.spec import Ablation  # noqa: E402

LABELS = {"clean_acc": "natural", "pgd20_acc": "PGD-20", "cw20_acc": "CW-20",
          "pgd100_acc": "PGD-100", "aa_acc": "AutoAttack", "robust_acc": "worst case"}
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


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


def _axis_style(ax, metric: str) -> None:
    ax.set_ylabel(f"{LABELS.get(metric, metric)} accuracy (%)")
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
    incomplete = int(r.get("n_failed", 0)) + int(r.get("n_missing", 0))
    if incomplete:
        ax.text(x, 100 * mean + 2, f"{incomplete} missing", rotation=90, ha="center",
                va="bottom", fontsize=6, color="0.4")


def learning_curves(ax, rows: pd.DataFrame, axes: list[str], runs_dir: Path, column: str) -> None:
    """One line per cell (mean over seeds) of a curve.csv column against the epoch."""
    for j, (key, g) in enumerate(rows.groupby(axes, sort=False, dropna=False)):
        frames = [c for rid in g["run_id"] if (c := curves(runs_dir / rid)) is not None]
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
    """', first N points' when AutoAttack saw fewer test points than the other attacks."""
    if metric != "aa_acc" or "n_aa" not in rows or rows["n_aa"].dropna().empty:
        return ""
    n_aa, n_eval = int(rows["n_aa"].max()), int(rows["n_eval"].max())
    return f", first {n_aa} points" if n_aa < n_eval else ""


def ablation_figure(ab: Ablation, rows: pd.DataFrame, summary: pd.DataFrame, runs_dir: Path,
                    path: Path) -> None:
    scales = list(dict.fromkeys(rows["scale"]))
    panels = _panels(ab)
    fig, axs = plt.subplots(len(scales), len(panels), squeeze=False,
                            figsize=(4.2 * len(panels) + 1.6, 3.6 * len(scales)))
    for i, scale in enumerate(scales):
        axes = list(ab.axes_for(scale))
        legend = False
        for k, (kind, metric) in enumerate(panels):
            ax = axs[i][k]
            if kind == "curve":
                learning_curves(ax, rows[rows["scale"] == scale], axes, runs_dir, metric)
                ax.set_ylabel(f"test {'PGD-20' if 'robust' in metric else 'natural'} "
                              "accuracy (%)")
                legend = legend or k == 0
            else:
                legend = bars(ax, summary[summary["scale"] == scale], axes, metric) or legend
            name = "PGD-20" if metric == "test_robust_acc" else "natural" \
                if metric == "test_clean_acc" else LABELS.get(metric, metric)
            ax.set_title(f"{name} ({scale} scale{_subset(rows[rows['scale'] == scale], metric)})",
                         fontsize=10)
        handles, labels = next((ax.get_legend_handles_labels() for ax in axs[i]
                                if ax.get_legend_handles_labels()[0]), ([], []))
        if legend and handles:
            axs[i][-1].legend(handles, labels, fontsize=7, loc="upper left",
                              bbox_to_anchor=(1.02, 1),
                              title=" / ".join(axes) if panels[0][0] == "curve" else axes[-1],
                              title_fontsize=7)
    fig.suptitle(ab.question, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=130)
    plt.close(fig)
    tmp.replace(path)


def _panels(ab: Ablation) -> list[tuple[str, str]]:
    if ab.figure == "curves":
        return [("curve", "test_robust_acc"), ("curve", "test_clean_acc"),
                ("bar", "pgd20_acc")]
    if ab.figure == "table":
        return [("bar", m) for m in ("clean_acc", "pgd20_acc", "aa_acc")]
    return [("bar", "clean_acc"), ("bar", "pgd20_acc")]
