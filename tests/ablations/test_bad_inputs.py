"""Bad input to the grid commands: one line naming the problem and the fix, exit code 2,
nothing changed (each case a researcher met one step off the README's path)."""
from __future__ import annotations

import json
import urllib.error

import pytest

from ablations.export import main as export_main
from ablations.grid import manifest as mf
from ablations.report import main as report
from ablations.run import main as run_main
from ablations.status import main as status_main
from core.infra.rundir import RunDir
from core.prefetch import main as prefetch_main
from tests.ablations.tables.test_report import _tree, runs  # noqa: F401 - the fixture grid


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0, err
    return err


@pytest.mark.parametrize("command, argv, words", [
    (run_main, [], "name a grid: one of ard_prm, augmentation"),
    (export_main, [], "the following arguments are required: run_id, --robustbench, --out"),
    (status_main, ["--scale", "huge"], "invalid choice: 'huge'"),
])
def test_a_command_without_what_it_needs_is_one_line(command, argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        command(argv)
    assert e.value.code == 2 and words in _one_line(capsys)


def test_export_of_a_run_on_a_data_set_without_a_leaderboard(tmp_path, capsys):
    """It used to say data=, which export does not take."""
    run_dir = RunDir.of(tmp_path, "0123456789ab").mkdir()
    run_dir.result.write_text(json.dumps({"status": "done", "config": {"data": {"name":
                                                                              "digits"}}}))
    run_dir.weights.write_bytes(b"")
    assert export_main(["0123456789ab", "--robustbench", "X", "--out", str(tmp_path / "rb"),
                        "--runs-dir", str(tmp_path)]) == 2
    err = _one_line(capsys)
    assert "trained on digits, and digits has no RobustBench leaderboard" in err
    assert "data=" not in err
    assert not (tmp_path / "rb").exists()


def test_a_runs_dir_that_is_a_file(tmp_path, capsys):
    file = tmp_path / "runs"
    file.write_text("a file, not a folder")
    assert run_main(["warmup", "--scale", "tiny", "--dry-run", "--runs-dir", str(file)]) == 2
    assert "is not a writable folder); give a folder you can write" in capsys.readouterr().out
    assert status_main(["--runs-dir", str(file)]) == 2
    assert "--runs-dir" in _one_line(capsys)
    assert report(["--runs-dir", str(file), "--out", str(tmp_path / "o")]) == 2
    assert "is a file: give the folder the runs were launched into" in _one_line(capsys)
    assert file.read_text() == "a file, not a folder" and not (tmp_path / "o").exists()


def _first_run(runs_dir) -> RunDir:
    cells = mf.ordered_cells(mf.load(runs_dir, "gradient_clipping", "tiny"))
    return RunDir.of(runs_dir, cells[0][0])


DAMAGE = {  # what is damaged -> (how, the words of the line)
    "grid record": (lambda d: mf.path(d, "gradient_clipping", "tiny"),
                    "the grid record .* cannot be read .*: restore it, or remove it"),
    "result": (lambda d: _first_run(d).result, r"result.json cannot be read .*: remove it"),
    "curve": (lambda d: _first_run(d).curve, r"curve.csv is not a learning curve"),
}


@pytest.mark.parametrize("damaged", list(DAMAGE))
def test_a_damaged_file_is_named_in_one_line_and_nothing_is_written(
        runs, tmp_path, capsys, damaged):  # noqa: F811 - the fixture
    import re

    where, words = DAMAGE[damaged]
    where(runs).write_text('{"status": "do' if damaged != "curve" else "\x00garbage,\n;;\n")
    before = _tree(runs)
    out = tmp_path / "report"
    assert report(["gradient_clipping", "--runs-dir", str(runs), "--out", str(out)]) == 2
    assert re.search(words, _one_line(capsys))
    if damaged != "curve":  # status reads no curve
        assert status_main(["--runs-dir", str(runs)]) == 2
        assert re.search(words, _one_line(capsys))
    assert _tree(runs) == before and not out.exists()


def test_prefetch_offline_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    assert prefetch_main(["robustbench-ids", "--root", str(tmp_path)]) == 2
    err = _one_line(capsys)
    assert "robustbench-ids could not be fetched ([Errno -2] Name or service not known)" in err
    assert "on a machine with internet" in err and list(tmp_path.iterdir()) == []
