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
