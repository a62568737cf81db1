"""Tidy rows from run folders: one per launched cell, finished or not (never dropped).

The metric columns are the registered evaluation attacks' (core.evaluation), in their order,
then the worst case; an attack that runs on a subset also gets its count column (n_<name>).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from ablations.grid import manifest as mf
from ablations.grid.spec import Ablation
from ablations.tables.flags import run_flags
from core.config import from_dict
from core.evaluation import EVAL_ATTACKS, WORST_CASE, covers, metric_columns, worst_case
from core.infra.provenance import machine_kind
from core.infra.rundir import RunDir
from core.runs.evaluations import evaluations

STATUSES = ("done", "diverged", "failed", "missing")
FINISHED = ("done", "diverged")


def metrics() -> list[str]:
    return metric_columns()


def id_columns() -> list[str]:
    subsets = [a.count_column for a in EVAL_ATTACKS.values() if a.limit]
    return ["seed", "status", "run_id", "git_sha", "dirty", "machine", "n_eval", *subsets,
            "train_seconds", "images_per_s"]


def rows(ab: Ablation, runs_dir: Path) -> pd.DataFrame:
    """Every cell of every launched grid of `ab` (all scales), in grid order."""
    out = []
    for scale in ("tiny", "paper"):
        m = mf.load(runs_dir, ab.name, scale)
        axes = list(ab.axes_for(scale))
        for order, (rid, cell) in enumerate(mf.ordered_cells(m)):
            row = {"scale": scale, "order": order, **{a: cell["labels"].get(a) for a in axes},
                   "seed": cell["seed"], "run_id": rid}
            row.update(_result_fields(RunDir.of(runs_dir, rid), cell.get("attacks")))
            out.append(row)
    df = pd.DataFrame(out)
    if df.empty:
        return df
    cols = ["scale", *ab.all_axes(), *id_columns(), *metrics(), "flags"]
    df = df.sort_values(["scale", "order"], kind="stable")
    return df.reindex(columns=cols).reset_index(drop=True)


def _result_fields(run_dir: RunDir, attacks: list[str] | None) -> dict:
    """A run's fields for the table of a grid that asked for `attacks`: a run shared with
    another grid may hold more evaluations; only the asked-for ones count here, and the
    worst case is taken over those (from the per-example flags the run keeps)."""
    r = run_dir.read_result()
    if r is None:
        return {"status": "failed" if run_dir.failure.is_file() else "missing"}
    asked = attacks or r["config"]["eval"]["attacks"]
    entries = [EVAL_ATTACKS.get(a) for a in asked if a in EVAL_ATTACKS]
    asked_eval = dataclasses.replace(from_dict(r["config"]).eval, attacks=[a.name for a in entries])
    if r["status"] in FINISHED and not covers(r["metrics"], asked_eval, r["n_eval"]):
        return {"status": "missing"}  # for this grid: its evaluation is not finished (yet)
    fields = {"status": r["status"], "git_sha": r["code"]["git_sha"][:10],
              "dirty": r["code"]["dirty"], "machine": machine_kind(r.get("machine") or {}),
              "n_eval": r["n_eval"],
              "train_seconds": r.get("train_seconds"),
              "images_per_s": r.get("train_images_per_s")}
    for a in entries:
        fields[a.column] = r.get(a.column)
        if a.limit:
            fields[a.count_column] = r.get(a.count_column)
    fields[WORST_CASE] = r.get(WORST_CASE)
    if set(asked) != set(r["config"]["eval"]["attacks"]):
        subset = worst_case(run_dir, asked)
        fields[WORST_CASE] = fields[WORST_CASE] if subset is None else subset
    fields["flags"] = "; ".join(run_flags(run_dir, asked))
    return fields


def evaluation_rows(runs_dir: Path) -> pd.DataFrame:
    """One row per evaluation of a checkpoint by `python -m core.evaluate` (<runs_dir>/_evals):
    what was evaluated (source, SHA-256 of the weights), on what, and every attack's column."""

    out = []
    for r in evaluations(runs_dir):
        cfg = r["config"]
        row = {"eval_id": r["eval_id"], "source": r["source"], "sha256": r["weights"]["sha256"],
               "arch": cfg["model"]["arch"], "data": cfg["data"]["name"],
               "eps": cfg["attack"]["eps"], "seed": cfg["seed"], "n_eval": r["n_eval"],
               "git_sha": r["code"]["git_sha"][:10], "dirty": r["code"]["dirty"]}
        row.update({a.count_column: r.get(a.count_column) for a in EVAL_ATTACKS.values()
                    if a.limit})
        row.update({m: r.get(m) for m in metrics()})
        out.append(row)
    return pd.DataFrame(out)


def curves(run_dir: RunDir) -> pd.DataFrame | None:
    return pd.read_csv(run_dir.curve) if run_dir.curve.is_file() else None


def summary(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Mean, std and n over seeds per cell, with how many runs diverged, failed or are missing."""
    keys = ["scale", *axes]
    out = []
    for key, group in df.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key, strict=True))
        finished = group[group["status"].isin(FINISHED)]
        for m in metrics():
            vals = finished[m].dropna().astype(float)
            row[f"{m}_mean"] = vals.mean() if len(vals) else float("nan")
            row[f"{m}_std"] = vals.std(ddof=1) if len(vals) > 1 else float("nan")
            row[f"{m}_n"] = len(vals)
        for status in STATUSES:
            row[f"n_{status}"] = int((group["status"] == status).sum())
        row["n_flagged"] = int((group["flags"].fillna("") != "").sum()) if "flags" in group else 0
        out.append(row)
    return pd.DataFrame(out)
