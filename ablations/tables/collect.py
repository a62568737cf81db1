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
from core.infra.errors import UserError
from core.infra.provenance import machine_kind
from core.infra.rundir import RunDir
from core.runs.evaluations import evaluations

STATUSES = ("done", "diverged", "failed", "missing")
FINISHED = ("done", "diverged")


def metrics() -> list[str]:
    return metric_columns()


def id_columns() -> list[str]:
    subsets = [a.count_column for a in EVAL_ATTACKS.values() if a.limit]
    return ["seed", "status", "run_id", "git_sha", "dirty", "machine", "data", "n_eval", *subsets,
            "train_seconds", "images_per_s"]


SETTING = ["scale", "ran_with"]  # a grid's own cells, or those launched with overrides


def rows(ab: Ablation, runs_dir: Path) -> pd.DataFrame:
    """Every cell of every launched grid of `ab` (all scales; the cells launched with
    overrides apart, their `ran_with` column naming them), in grid order."""
    out = []
    for m in mf.of_ablation(runs_dir, ab.name):
        scale, axes = m["scale"], list(ab.axes_for(m["scale"]))
        for order, (rid, cell) in enumerate(mf.ordered_cells(m)):
            row = {"scale": scale, "ran_with": " ".join(mf.ran_with(m)), "order": order,
                   **{a: cell["labels"].get(a) for a in axes},
                   "seed": cell["seed"], "run_id": rid}
            row.update(_result_fields(RunDir.of(runs_dir, rid), cell.get("attacks")))
            out.append(row)
    df = pd.DataFrame(out)
    if df.empty:
        return df
    _one_run_a_cell(ab, df, runs_dir)
    cols = [*SETTING, *ab.all_axes(), *id_columns(), *metrics(), "flags"]
    df = df.sort_values([*SETTING, "order"], kind="stable")
    return df.reindex(columns=cols).reset_index(drop=True)


def _one_run_a_cell(ab: Ablation, df: pd.DataFrame, runs_dir: Path) -> None:
    """A grid record written before a relaunch replaced changed cells (older code) may hold
    two runs for one cell; say which, and how to refresh it, rather than pick one."""
    keys = [*SETTING, *[a for a in ab.all_axes() if a in df], "seed"]
    twice = df[df.duplicated(keys, keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        cell = " ".join(f"{k}={first[k]}" for k in keys[2:] if not pd.isna(first[k]))
        raise UserError(
            f"the grid record of {ab.name} ({first['scale']}) holds {len(twice)} runs for "
            f"cells that should have one (e.g. {cell}: {', '.join(twice['run_id'][:2])}): "
            f"launch it again (`python -m ablations.run {ab.name} --scale {first['scale']} "
            f"--seeds {int(df['seed'].max()) + 1} --runs-dir {runs_dir}`), which records the "
            "grid as it is now and redoes no finished run")


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
    fields = {"status": r["status"], "git_sha": r["code"]["git_sha"],
              "dirty": r["code"]["dirty"], "machine": machine_kind(r.get("machine") or {}),
              "data": (r["config"].get("data") or {}).get("name"), "n_eval": r["n_eval"],
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
               "git_sha": r["code"]["git_sha"], "dirty": r["code"]["dirty"]}
        row.update({a.count_column: r.get(a.count_column) for a in EVAL_ATTACKS.values()
                    if a.limit})
        row.update({m: r.get(m) for m in metrics()})
        out.append(row)
    return pd.DataFrame(out)


def settings(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The (scale, ran_with) settings of a table, in its order."""
    return list(dict.fromkeys(zip(df["scale"], df["ran_with"], strict=True)))


def of_setting(df: pd.DataFrame, scale: str, ran_with: str) -> pd.DataFrame:
    return df[(df["scale"] == scale) & (df["ran_with"] == ran_with)]


def setting_name(scale: str, ran_with: str) -> str:
    """"tiny", or "tiny, ran with epochs=1 eval=quick" for cells launched with overrides."""
    return scale + (f", ran with {ran_with}" if ran_with else "")


def setting_label(scale: str, ran_with: str) -> str:
    """A heading: "tiny scale" or "tiny scale, ran with epochs=1 eval=quick"."""
    return f"{scale} scale" + (f", ran with {ran_with}" if ran_with else "")


def curves(run_dir: RunDir) -> pd.DataFrame | None:
    """The run's curve.csv (None: it has none); one that is not a curve is named, not drawn
    as an empty line."""
    if not run_dir.curve.is_file():
        return None
    try:
        curve = pd.read_csv(run_dir.curve)
    except (ValueError, pd.errors.ParserError) as e:
        curve, why = None, str(e).splitlines()[0]
    else:
        why = None if "epoch" in curve and len(curve) else "no epoch column or no rows"
        if why is None and not pd.api.types.is_numeric_dtype(curve["epoch"]):
            why = "its epoch column is not numbers"
    if why:
        raise UserError(f"{run_dir.curve} is not a learning curve ({why}): restore it, or "
                        "remove it (its run is then drawn without a curve)")
    return curve


def summary(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Mean, std and n over seeds per cell, with how many runs diverged, failed or are missing."""
    keys = [*SETTING, *axes]
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
