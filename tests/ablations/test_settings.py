"""A grid launched with overrides is kept apart from the grid's own cells and labelled "ran
with ..." in status, tables, claims and pages; relaunching with other overrides works."""
from __future__ import annotations

import pandas as pd

from ablations.grid import manifest as mf
from ablations.launch.launchers import LAUNCHERS, Launched
from ablations.report import main as report
from ablations.run import main as run_main
from ablations.status import main as status_main
from tests.ablations.tables.test_report import _write_run


def _finish_every_job(jobs, group, opts) -> Launched:
    """A launcher that 'trains' in no time: every job gets a finished result."""
    out = Launched()
    for j in jobs:
        if j.run_dir.result.is_file():
            out.skipped.append(j.run_id)
            continue
        group.record_job(j.run_id, "debug", "in-process", None, j.what)
        _write_run(j.run_dir, 0.4 + 0.1 * (j.cfg.epochs % 3))
        out.submitted.append(j.run_id)
    return out


def test_relaunching_with_other_overrides_keeps_the_cells_apart_and_labelled(
        tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    with LAUNCHERS.scoped("instant", _finish_every_job):
        grid = ["gradient_clipping", "--scale", "tiny", "--launcher", "instant"]
        assert run_main([*grid, "--runs-dir", str(runs), "threads=1"]) == 0  # runtime only: own
        assert run_main([*grid, "epochs=1", "eval=quick", "--runs-dir", str(runs)]) == 0
        assert run_main([*grid, "eval=quick", "epochs=2", "--runs-dir", str(runs)]) == 0
        assert run_main([*grid, "epochs=1", "eval=quick", "--runs-dir", str(runs)]) == 0  # again
    out = capsys.readouterr().out
    assert "gradient_clipping (tiny, ran with epochs=1 eval=quick): 6 cells" in out
    assert len(list((runs / mf.GRIDS).glob("*.json"))) == 3

    assert status_main(["gradient_clipping", "--runs-dir", str(runs)]) == 0
    heads = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith(" ")]
    assert heads == ["gradient_clipping (tiny): 9 done",  # 6 cells, 3 pretrainings they share
                     "gradient_clipping (tiny, ran with epochs=1 eval=quick): 6 done",
                     "gradient_clipping (tiny, ran with eval=quick epochs=2): 6 done"]

    site = tmp_path / "report"
    assert report(["gradient_clipping", "--runs-dir", str(runs), "--out", str(site)]) == 0
    table = pd.read_csv(site / "gradient_clipping.csv")
    assert table["ran_with"].fillna("").value_counts().to_dict() == {
        "": 6, "epochs=1 eval=quick": 6, "eval=quick epochs=2": 6}
    assert table.groupby(table["ran_with"].fillna(""))["run_id"].nunique().eq(6).all()
    summary = pd.read_csv(site / "gradient_clipping_summary.csv")
    assert len(summary) == 3 * 6  # each setting its own 6 cells (3 models x clipping on/off)
    claims = (site / "claims.md").read_text()
    for where in ("| tiny |", "| tiny, ran with epochs=1 eval=quick |",
                  "| tiny, ran with eval=quick epochs=2 |"):
        assert where in claims
    assert "tiny, ran with epochs=1 eval=quick" in (site / "gradient_clipping.html").read_text()
    assert "<td>tiny; tiny, ran with epochs=1 eval=quick; tiny, ran with eval=quick epochs=2</td>" \
        in (site / "index.html").read_text()
