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
