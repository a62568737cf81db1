"""Tidy rows from run folders: one per launched cell, finished or not (never dropped)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ablations import manifest as mf
from ablations.jobs import FAILURE
from ablations.spec import Ablation
from core.run import read_result

METRICS = ("clean_acc", "pgd20_acc", "cw20_acc", "pgd100_acc", "aa_acc", "robust_acc")
STATUSES = ("done", "diverged", "failed", "missing")
ID_COLUMNS = ("seed", "status", "run_id", "git_sha", "dirty", "n_eval", "n_aa",
              "train_seconds", "images_per_s")


def rows(ab: Ablation, runs_dir: Path) -> pd.DataFrame:
    """Every cell of every launched grid of `ab` (all scales), in grid order."""
    out = []
    for scale in ("tiny", "paper"):
        m = mf.load(runs_dir, ab.name, scale)
        axes = list(ab.axes_for(scale))
        for order, (rid, cell) in enumerate(mf.ordered_cells(m)):
            row = {"scale": scale, "order": order, **{a: cell["labels"].get(a) for a in axes},
                   "seed": cell["seed"], "run_id": rid}
            row.update(_result_fields(runs_dir / rid, cell.get("attacks")))
            out.append(row)
    df = pd.DataFrame(out)
    if df.empty:
        return df
    axis_cols = list(dict.fromkeys(a for s in ("tiny", "paper") for a in ab.axes_for(s)))
    cols = ["scale", *axis_cols, *ID_COLUMNS, *METRICS]
    df = df.sort_values(["scale", "order"], kind="stable")
    return df.reindex(columns=cols).reset_index(drop=True)


def _result_fields(run_dir: Path, attacks: list[str] | None) -> dict:
    """A run's fields for the table of a grid that asked for `attacks`: a run shared with
    another grid may hold more evaluations; only the asked-for ones count here, and the
    worst case is taken over those (from the per-example flags in eval/)."""
    r = read_result(run_dir)
    if r is None:
        return {"status": "failed" if (run_dir / FAILURE).is_file() else "missing"}
    attacks = attacks or r["config"]["eval"]["attacks"]
    accs = {f"{a}_acc": r.get(f"{a}_acc") for a in attacks}
    return {"status": r["status"], "git_sha": r["code"]["git_sha"][:10],
            "dirty": r["code"]["dirty"], "n_eval": r["n_eval"],
            "n_aa": r.get("n_aa") if "aa" in attacks else None,
            "train_seconds": r.get("train_seconds"), "images_per_s": r.get("train_images_per_s"),
            **accs, "robust_acc": _worst_case(run_dir, attacks, r)}


def _worst_case(run_dir: Path, attacks: list[str], result: dict) -> float | None:
    paths = [run_dir / "eval" / f"{a}.json" for a in attacks]
    if set(attacks) == set(result["config"]["eval"]["attacks"]) or not all(
            p.is_file() for p in paths):
        return result.get("robust_acc")
    flags = [json.loads(p.read_text())["correct"] for p in paths]
    n = min(len(f) for f in flags)
    return sum(all(f[i] for f in flags) for i in range(n)) / n


def curves(run_dir: Path) -> pd.DataFrame | None:
    path = run_dir / "curve.csv"
    return pd.read_csv(path) if path.is_file() else None


def summary(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Mean, std and n over seeds per cell, with how many runs diverged, failed or are missing."""
    keys = ["scale", *axes]
    out = []
    for key, group in df.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key, strict=True))
        finished = group[group["status"].isin(["done", "diverged"])]
        for m in METRICS:
            vals = finished[m].dropna().astype(float)
            row[f"{m}_mean"] = vals.mean() if len(vals) else float("nan")
            row[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else float("nan")
            row[f"{m}_n"] = len(vals)
        for status in STATUSES:
            row[f"n_{status}"] = int((group["status"] == status).sum())
        out.append(row)
    return pd.DataFrame(out)
