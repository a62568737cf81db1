"""The record of a launched grid: cell -> run id -> job id -> log path.

One file per (ablation, scale, ran-with overrides) under <runs_dir>/_grids/, written only by
the launching process (atomically), never by jobs. Launching again with the same overrides
merges into it; a launch with other overrides (`epochs=1 eval=quick`) gets a record of its
own, so its cells are kept apart from the grid's and labelled "ran with ..." wherever they
appear.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from ablations.grid.cells import Cell
from core.infra.atomic import write_json
from core.infra.errors import UserError

GRIDS = "_grids"


def path(runs_dir: str | Path, ablation: str, scale: str, ran_with: Sequence[str] = ()) -> Path:
    tag = ""
    if ran_with:  # the same overrides in any order are the same setting
        tag = "__" + hashlib.sha256(" ".join(sorted(ran_with)).encode()).hexdigest()[:8]
    return Path(runs_dir) / GRIDS / f"{ablation}__{scale}{tag}.json"


def decision_path(runs_dir: str | Path, ablation: str, scale: str,
                  ran_with: Sequence[str] = ()) -> Path:
    """What `ablations.run NAME --decide` ran and decided (ablations/tables/decide.py)."""
    grid = path(runs_dir, ablation, scale, ran_with)
    return grid.parent / "decisions" / grid.name


def read_decision(runs_dir: str | Path, ablation: str, scale: str,
                  ran_with: Sequence[str] = ()) -> dict | None:
    p = decision_path(runs_dir, ablation, scale, ran_with)
    return _read(p) if p.is_file() else None


def load(runs_dir: str | Path, ablation: str, scale: str,
         ran_with: Sequence[str] = ()) -> dict:
    p = path(runs_dir, ablation, scale, ran_with)
    if p.is_file():
        return _read(p)
    return {"ablation": ablation, "scale": scale, "ran_with": list(ran_with), "cells": {},
            "jobs": {}}


def save(runs_dir: str | Path, manifest: dict) -> None:
    write_json(path(runs_dir, manifest["ablation"], manifest["scale"], ran_with(manifest)),
               manifest)


def ran_with(manifest: dict) -> list[str]:
    """The overrides the grid was launched with that change what its cells are."""
    return manifest.get("ran_with", [])


def ran_with_note(manifest: dict) -> str:
    """", ran with epochs=1 eval=quick" for a grid launched with overrides, else ""."""
    return f", ran with {' '.join(ran_with(manifest))}" if ran_with(manifest) else ""


def record_cells(manifest: dict, cells: list[Cell]) -> list[str]:
    """Add the cells (a re-launch with more seeds adds the new ones after the old); a cell
    already there takes the overrides and attacks its grid asks for now. The record is the
    grid as the code defines it now: a cell whose labels and seed come back with another run
    id (its config changed: a preset, a default, the code) is replaced in place, and a label
    combination the grid no longer has is dropped; their runs stay on disk. Returns the run
    ids no longer recorded."""
    combos = {_labels(c.labels) for c in cells}
    now = {(_labels(c.labels), c.seed): c.run_id for c in cells}
    gone = []
    for rid, cell in list(manifest["cells"].items()):
        key = (_labels(cell["labels"]), cell["seed"])
        if key[0] not in combos or now.get(key, rid) != rid:
            gone.append(rid)
            manifest.get("jobs", {}).pop(rid, None)
            order = manifest["cells"].pop(rid)["order"]
            if key in now and now[key] not in manifest["cells"]:
                manifest["cells"][now[key]] = {"order": order, "labels": cell["labels"],
                                               "seed": cell["seed"]}
    for c in cells:
        if c.run_id not in manifest["cells"]:
            manifest["cells"][c.run_id] = {"order": len(manifest["cells"]),
                                           "labels": [list(kv) for kv in c.labels],
                                           "seed": c.seed}
        manifest["cells"][c.run_id].update(overrides=list(c.overrides),
                                           attacks=list(c.cfg.eval.attacks))
    return gone


def _labels(labels) -> tuple:
    return tuple(tuple(kv) for kv in labels)


def ordered_cells(manifest: dict) -> list[tuple[str, dict]]:
    """(run id, cell) in grid order; a cell's labels as an {axis: value} dict in axis order."""
    cells = sorted(manifest["cells"].items(), key=lambda kv: (kv[1]["seed"], kv[1]["order"]))
    cells = sorted(cells, key=lambda kv: _combo_order(manifest, kv[1]))
    return [(rid, {**c, "labels": dict(c["labels"])}) for rid, c in cells]


def _combo_order(manifest: dict, cell: dict) -> int:
    """Grid position of the cell's label combination (its first seed's order)."""
    labels = [list(kv) for kv in cell["labels"]]
    return min(c["order"] for c in manifest["cells"].values() if c["labels"] == labels)


def record_job(manifest: dict, run_id: str, launcher: str, job_id: str, log: str | None,
               what: str) -> None:
    manifest["jobs"][run_id] = {"launcher": launcher, "job_id": job_id, "log": log,
                                "what": what}


class Group:
    """The manifests of the grids launched together; a run is recorded in each grid it serves
    (cells shared by several grids run once)."""

    def __init__(self, manifests: dict[str, dict], owners: dict[str, set[str]]) -> None:
        self.manifests, self.owners = manifests, owners

    def record_job(self, run_id: str, launcher: str, job_id: str, log: str | None,
                   what: str) -> None:
        for name in self.owners.get(run_id, ()):
            record_job(self.manifests[name], run_id, launcher, job_id, log, what)

    def save(self, runs_dir: str | Path) -> None:
        for m in self.manifests.values():
            save(runs_dir, m)

    def job_ids(self) -> dict[str, str]:
        return {rid: j["job_id"] for m in self.manifests.values() for rid, j in m["jobs"].items()}


def all_manifests(runs_dir: str | Path) -> list[dict]:
    """Every grid record, by ablation, scale, then the grid's own before those ran with
    overrides."""
    folder = Path(runs_dir) / GRIDS
    found = [_read(p) for p in sorted(folder.glob("*__*.json"))]
    return sorted(found, key=lambda m: (m["ablation"], m["scale"], ran_with(m)))


def of_ablation(runs_dir: str | Path, ablation: str) -> list[dict]:
    """The grid records of `ablation`: tiny then paper, each the grid's own first."""
    order = {"tiny": 0, "paper": 1}
    found = [m for m in all_manifests(runs_dir) if m["ablation"] == ablation]
    return sorted(found, key=lambda m: (order.get(m["scale"], 2), ran_with(m)))


def _read(p: Path) -> dict:
    try:
        return json.loads(p.read_text())
    except ValueError as e:  # a truncated or hand-broken record: say which, never a traceback
        raise UserError(f"the grid record {p} cannot be read ({e}): restore it, or remove it "
                        "and launch the grid again (finished runs are not redone)") from None
