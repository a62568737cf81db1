"""What a report carries of its runs, so that it stands on its own wherever it is copied.

Under <report>/runs/ it keeps each reported run's files that a table, figure, flag or page
reads (result, config, log, curve, the per-point flags of each finished attack) and the grid
records of the reported questions (without their jobs: where a scheduler put a log on the
machine that ran it means nothing elsewhere). So a report is rebuilt from its own copy,

    python -m ablations.report --runs-dir REPORT/runs --out REPORT

gives the same files, byte for byte. With --weights it also carries each run's final weights,
so that every run of the report can be attacked again:

    python -m core.evaluate model.source=run:<run-id> runs_dir=REPORT/runs

A run fine-tuned from another run of this project (a clean pretraining run, `run:<id>` in its
result) brings that run along, so every run id a carried result names is there too.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ablations.grid import manifest as mf
from core.evaluation import EVAL_ATTACKS
from core.infra.atomic import write_json
from core.infra.rundir import RunDir
from core.models.sources import split_source


def carry_run(src: RunDir, dst: RunDir, weights: bool) -> None:
    """The run's files a report reads (and its weights, if asked) from `src` into `dst`."""
    dst.path.mkdir(parents=True, exist_ok=True)
    for name in ("config", "result", "log", "curve", "failure"):
        _copy(getattr(src, name), getattr(dst, name))
    for attack in EVAL_ATTACKS.names():  # finished attacks' flags; not an attack's state
        if src.eval_flags(attack).is_file():
            dst.eval_flags(attack).parent.mkdir(exist_ok=True)
            _copy(src.eval_flags(attack), dst.eval_flags(attack))
    if weights:
        _link_or_copy(src.weights, dst.weights)


def with_sources(runs_dir: Path, run_ids: list[str]) -> list[str]:
    """`run_ids` and, after them, the runs of this project whose weights they started from
    (found in `runs_dir`), to any depth, each once."""
    out, todo = list(dict.fromkeys(run_ids)), list(run_ids)
    while todo:
        result = RunDir.of(runs_dir, todo.pop()).read_result() or {}
        kind, arg = split_source((result.get("pretrained") or {}).get("source") or "none")
        if kind == "run" and arg not in out and RunDir.of(runs_dir, arg).result.is_file():
            out.append(arg)
            todo.append(arg)
    return out


def carry_grids(runs_dir: Path, dst_runs: Path, ablations: list[str]) -> None:
    """The grid records of `ablations`, cells only, under dst_runs/_grids/."""
    for m in mf.all_manifests(runs_dir):
        if m["ablation"] in ablations:
            carried = {**m, "jobs": {}}
            key = (m["ablation"], m["scale"], mf.ran_with(m))
            write_json(mf.path(dst_runs, *key), carried)
            decision = mf.read_decision(runs_dir, *key)
            if decision is not None:
                write_json(mf.decision_path(dst_runs, *key), decision)


def _copy(src: Path, dst: Path) -> None:
    if src.is_file() and src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link where both sit on one file system (weights are the large part), else a
    copy; weights are never written again, so sharing their bytes is safe. A `dst` that is
    already `src` (by path or by hard link) is left as it is."""
    if not src.is_file() or (dst.exists() and os.path.samefile(src, dst)):
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
