"""The shipped results/ as a reader meets it: every CSV read with plain pandas, no dtype."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.infra.rundir import RunDir

RESULTS = Path(__file__).resolve().parents[3] / "results"
IDENTIFIERS = ("run_id", "git_sha", "eval_id", "sha256", "machine")


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.csv")), ids=lambda p: p.name)
def test_every_shipped_csv_reads_its_identifiers_as_strings(path):
    """A 10-digit sha such as 6167e38934 read as a float is inf: the full 40 are written."""
    table = pd.read_csv(path)
    assert "scale" in table and "ran_with" in table
    for column in IDENTIFIERS:
        if column in table:
            assert all(isinstance(v, str) for v in table[column]), (column, table[column][:3])
    if "git_sha" in table:
        assert table["git_sha"].str.fullmatch("[0-9a-f]{40}").all()
        assert RunDir.of(RESULTS / "runs", table["run_id"][0]).result.is_file()


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_the_shipped_results_rebuild_byte_for_byte_from_the_runs_they_carry(tmp_path, capsys):
    """`python -m ablations.report --runs-dir results/runs --out results` gives every shipped
    file back unchanged (on a copy: the checkout is not written)."""
    import shutil

    from ablations.report import main as report

    copy = tmp_path / "results"
    shutil.copytree(RESULTS, copy)
    before = _tree(copy)
    assert report(["--runs-dir", str(copy / "runs"), "--out", str(copy)]) == 0
    after = _tree(copy)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []
    capsys.readouterr()


def _shipped_runs() -> list[RunDir]:
    return [RunDir.of(RESULTS / "runs", p.name) for p in sorted((RESULTS / "runs").iterdir())
            if not p.name.startswith("_")]


def test_every_shipped_run_carries_its_weights_and_the_runs_it_started_from():
    """So `core.evaluate model.source=run:ID runs_dir=results/runs` works for every id a
    shipped table or result names, a fine-tuned run's pretraining run included."""
    from core.models.sources import split_source

    runs = _shipped_runs()
    assert len(runs) > 100
    for run in runs:
        assert run.weights.is_file() and run.result.is_file(), run.name
        kind, arg = split_source((run.read_result().get("pretrained") or {}).get("source")
                                 or "none")
        if kind == "run":
            assert RunDir.of(RESULTS / "runs", arg).weights.is_file(), (run.name, arg)


@pytest.mark.slow
def test_a_shipped_run_attacked_again_gives_its_shipped_numbers(tmp_path, capsys):
    """The README's `python -m core.evaluate model.source=run:ID runs_dir=results/runs`, on a
    copy (it writes an evaluation under the runs folder). The same to the point on the kind
    of machine that made the run; on another CPU, float rounding may move a few of the 360
    points, so there at most 1%."""
    import json
    import shutil

    from core.evaluate import main as evaluate
    from core.infra.provenance import machine_kind

    rid = pd.read_csv(RESULTS / "gradient_clipping.csv").query("status == 'done'")["run_id"].iloc[0]
    shutil.copytree(RESULTS / "runs" / rid, tmp_path / rid)
    assert evaluate([f"model.source=run:{rid}", f"runs_dir={tmp_path}",
                     "eval.attacks=[clean,pgd20]"]) == 0
    shipped = RunDir.of(RESULTS / "runs", rid).read_result()
    again = json.loads(next((tmp_path / "_evals").glob("*/result.json")).read_text())
    same_kind = machine_kind(again["machine"]) == machine_kind(shipped["machine"])
    for metric in ("clean_acc", "pgd20_acc"):
        assert abs(again[metric] - shipped[metric]) <= (1e-6 if same_kind else 0.01), metric
    capsys.readouterr()
