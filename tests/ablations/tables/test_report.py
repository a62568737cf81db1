"""The report on fixture run folders: stable CSVs, figures, verdicts, version warnings."""
from __future__ import annotations

import json

import pytest

from ablations.grid import manifest as mf
from ablations.grid.cells import expand
from ablations.questions import load_all
from ablations.report import main as report
from core.infra.rundir import RunDir

# gradient_clipping (tiny), PGD-20 by (model, clipping) and seed; None: the run is missing
PGD20 = {("ViT", "on"): [0.60, 0.62, 0.61], ("ViT", "off"): [0.10, 0.11, 0.12],
         ("ConViT", "on"): [0.50, 0.52, 0.51], ("ConViT", "off"): [0.30, 0.31, 0.29],
         ("Swin", "on"): [0.51, 0.50, 0.52], ("Swin", "off"): [0.50, 0.49, None]}
DIVERGED = {("ViT", "off", 0)}


def _write_run(run_dir, pgd20, status="done", sha="abc1234567"):
    run_dir.mkdir()
    metrics = {"clean_acc": pgd20 + 0.25, "pgd20_acc": pgd20, "cw20_acc": pgd20 - 0.01,
               "pgd100_acc": pgd20 - 0.005, "robust_acc": pgd20 - 0.01, "n_clean": 360,
               "n_pgd20": 360}
    result = {"run_id": run_dir.name, "status": status, "metrics": metrics, **metrics,
              "n_eval": 360, "code": {"git_sha": sha, "dirty": False},
              "config": {"eval": {"attacks": ["clean", "pgd20", "cw20", "pgd100"]}},
              "train_seconds": 10.0, "train_images_per_s": 100.0}
    run_dir.result.write_text(json.dumps(result))
    rows = ["epoch,test_clean_acc,test_robust_acc"] + [
        f"{e},{min(1, pgd20 + 0.2 + 0.01 * e):.3f},{pgd20 * e / 8:.3f}" for e in range(1, 9)]
    run_dir.curve.write_text("\n".join(rows) + "\n")


@pytest.fixture
def runs(tmp_path):
    runs_dir = tmp_path / "runs"
    ab = load_all().get("gradient_clipping")
    cells = expand(ab, "tiny", 3, [f"runs_dir={runs_dir}"])
    m = mf.load(runs_dir, ab.name, "tiny")
    mf.record_cells(m, cells)
    mf.save(runs_dir, m)
    for c in cells:
        key = (c.label("model"), c.label("clipping"))
        value = PGD20[key][c.seed]
        if value is not None:
            status = "diverged" if (*key, c.seed) in DIVERGED else "done"
            _write_run(RunDir.of(runs_dir, c.run_id), value, status)
    return runs_dir


def _report(runs_dir, out):
    assert report(["--runs-dir", str(runs_dir), "--out", str(out)]) == 0


@pytest.mark.slow
def test_report_writes_stable_tables_and_a_figure(runs, tmp_path):
    out = tmp_path / "results"
    _report(runs, out)
    first = (out / "gradient_clipping.csv").read_bytes()
    summary = (out / "gradient_clipping_summary.csv").read_text()
    _report(runs, out)
    assert (out / "gradient_clipping.csv").read_bytes() == first
    lines = first.decode().splitlines()
    assert lines[0].startswith("scale,ran_with,model,clipping,seed,status,run_id")
    assert len(lines) == 1 + 18
    assert sum(",diverged," in ln for ln in lines) == 1
    missing = [ln for ln in lines if ",missing," in ln]
    assert len(missing) == 1 and missing[0].startswith("tiny,,Swin,off,2,missing")
    # mean, std, n of the natural (0.85, 0.87, 0.86) and PGD-20 accuracies over 3 seeds
    assert "tiny,,ViT,on,0.860000,0.010000,3,0.610000,0.010000,3," in summary
    assert "tiny,,Swin,off,0.745000,0.007071,2,0.495000,0.007071,2," in summary
    png = (out / "figures" / "gradient_clipping.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "gradient_clipping" in (out / "README.md").read_text()


@pytest.mark.slow
def test_verdicts_count_diverged_and_name_missing(runs, tmp_path):
    out = tmp_path / "results"
    _report(runs, out)
    claims = (out / "claims.md").read_text()
    vit = next(ln for ln in claims.splitlines() if ln.startswith("| 2a"))
    swin = next(ln for ln in claims.splitlines() if ln.startswith("| 2b"))
    assert "**supported**" in vit and "+50.0 [" in vit and "1 diverged run" in vit
    # Swin: one seed's pair incomplete leaves 2 seeds, below the procedure's 3
    assert "**too few seeds**" in swin and "1 pair(s) incomplete" in swin and "| 1 x 2 |" in swin


@pytest.mark.slow
def test_a_run_lacking_an_attack_its_grid_asks_for_is_not_counted(runs, tmp_path):
    """A run shared with another grid, finished there but not yet extended with this grid's
    attack (a main-table cell waiting for AutoAttack), is missing here, not a row without it."""
    m = mf.load(runs, "gradient_clipping", "tiny")
    rid = next(r for r, c in m["cells"].items() if c["seed"] == 0
               and dict(c["labels"]) == {"model": "ViT", "clipping": "on"})
    m["cells"][rid]["attacks"] = ["clean", "pgd20", "aa"]
    mf.save(runs, m)
    out = tmp_path / "results"
    _report(runs, out)
    row = next(ln for ln in (out / "gradient_clipping.csv").read_text().splitlines()
               if rid in ln)
    assert row.startswith(f"tiny,,ViT,on,0,missing,{rid},,")
    assert "tiny,,ViT,on,0.865000,0.007071,2,0.615000,0.007071,2," in (
        out / "gradient_clipping_summary.csv").read_text()


@pytest.mark.slow
def test_mixed_code_versions_are_reported(runs, tmp_path):
    result = next(d.result for d in map(RunDir, sorted(runs.iterdir())) if d.result.is_file())
    data = json.loads(result.read_text())
    data["code"]["git_sha"] = "fffffff000"
    result.write_text(json.dumps(data))
    out = tmp_path / "results"
    _report(runs, out)
    assert "mixes code versions: abc1234567 (16 runs), fffffff000 (1 runs)" in (
        out / "claims.md").read_text()


@pytest.mark.slow
def test_runs_from_two_cpu_models_pinned_alike_are_reported_as_mixed(runs, tmp_path):
    """Pinned to AVX2, an AMD EPYC and an Intel Xeon gave one run different numbers (README):
    the CPU model is part of the machine kind, so such a table is never mixed silently."""
    pinned = {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    for i, d in enumerate(d for d in map(RunDir, sorted(runs.iterdir())) if d.result.is_file()):
        data = json.loads(d.result.read_text())
        cpu = "AMD EPYC 7B13" if i else "Intel(R) Xeon(R) Processor"
        data["machine"] = {"device": "cpu", "cpu": cpu, "cpu_capability": "AVX2",
                           "threads": 1, "cpu_kernels": pinned}
        d.result.write_text(json.dumps(data))
    out = tmp_path / "results"
    _report(runs, out)
    assert ("mixes machine kinds: CPU AVX2 on AMD EPYC 7B13, 1 thread(s) (16 runs), "
            "CPU AVX2 on Intel(R) Xeon(R) Processor, 1 thread(s) (1 runs)") in (
        out / "claims.md").read_text()


def test_report_with_nothing_launched(tmp_path, capsys):
    assert report(["--runs-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    assert "nothing to report" in capsys.readouterr().out


def _flags_run(tmp_path, flags: dict) -> RunDir:
    run_dir = RunDir(tmp_path / "flagged").mkdir()
    for name, values in flags.items():
        run_dir.eval_flags(name).parent.mkdir(parents=True, exist_ok=True)
        run_dir.eval_flags(name).write_text(json.dumps({"correct": values}))
    return run_dir


def test_weak_or_masked_evaluations_are_flagged(tmp_path):
    from ablations.tables.flags import run_flags

    t, f = True, False
    clean = [t] * 10
    pgd20 = [t] * 5 + [f] * 5
    run_dir = _flags_run(tmp_path, {
        "clean": clean, "pgd20": pgd20, "pgd100": [t] * 4 + [f] * 6,
        "aa": [t] * 6 + [f] * 4,                                # 60 > PGD-20's 50
        "pgd20x5": [[t, t, t, t, t]] * 4 + [[t, f, f, f, f]] + [[f] * 5] * 5})
    flags = run_flags(run_dir, ["clean", "pgd20", "pgd100", "aa", "pgd20x5"])
    assert "AutoAttack 60.0 > PGD-20 50.0 on 10 points" in flags
    assert "AutoAttack 60.0 > PGD-100 40.0 on 10 points" in flags
    assert "PGD-20 x5 restarts: restarts 10.0 points apart" in flags  # 50 vs 40
    assert not any("PGD-100" in fl and fl.startswith("PGD-100") for fl in flags)
    sound = _flags_run(tmp_path / "b", {"clean": clean, "pgd20": pgd20,
                                        "aa": [t] * 5 + [f] * 5})
    assert run_flags(sound, ["clean", "pgd20", "aa"]) == []
    above = _flags_run(tmp_path / "c", {"clean": [t] * 4 + [f] * 6, "pgd20": pgd20})
    assert run_flags(above, ["clean", "pgd20"]) == ["PGD-20 above natural accuracy"]


def test_seeds_needed_by_hand():
    """The smallest n (3 and up) with t_{0.975, B(n-1)} sqrt(mean s_b^2 / (n B) + V_t) below
    the target effect: here one block, s^2 = 2, V_t = 0, target 1 point."""
    from scipy import stats

    from ablations.grid.spec import Claim
    from ablations.tables.verdicts import _seeds_needed

    claim = Claim(id="x", text="t", metric="pgd20_acc", axis="a", treatment=("t",),
                  control="c", direction="+", reference="r", size=1.0)
    n = _seeds_needed(claim, {("m",): [1.0, 3.0, 2.0]}, 0.0)  # s^2 = 1
    want = next(k for k in range(3, 200) if stats.t.ppf(0.975, k - 1) * (1 / k) ** 0.5 < 1)
    assert n == want == 7
    assert _seeds_needed(claim, {("m",): [1.0, 3.0, 2.0]}, 1.0) is None  # test points alone


def _tree(folder) -> dict:
    """Every file under `folder` with its bytes (what a report must not change)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_report_goes_with_its_runs_and_never_over_what_it_did_not_build(
        runs, tmp_path, monkeypatch, capsys):
    """A shrunk grid then `ablations.report`: the shipped results/ (here a stand-in in the
    working folder) is left byte for byte; the report goes to <runs-dir>/_report."""
    shipped = tmp_path / "results"
    (shipped / "figures").mkdir(parents=True)
    (shipped / "claims.md").write_text("# 94 lines of shipped claims\n")
    (shipped / "figures" / "epochs.png").write_bytes(b"\x89PNG shipped")
    before = _tree(shipped)
    monkeypatch.chdir(tmp_path)
    assert report(["gradient_clipping", "--runs-dir", str(runs)]) == 0
    assert _tree(shipped) == before
    assert (runs / "_report" / "gradient_clipping.csv").is_file()
    assert not list((runs / "_report").glob(".building-*"))
    assert report(["gradient_clipping", "--runs-dir", str(runs), "--out", str(shipped)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did not build" in err and "--replace" in err
    assert _tree(shipped) == before


def test_a_report_refuses_other_runs_and_edited_files_and_fails_without_a_trace(
        runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "mine"
    assert report(["gradient_clipping", "--runs-dir", str(runs), "--out", str(out)]) == 0
    other = tmp_path / "other_runs"
    other.mkdir()
    assert report(["--runs-dir", str(other), "--out", str(out)]) == 2
    assert "holds the report of" in capsys.readouterr().err
    csv = out / "gradient_clipping.csv"
    csv.write_text(csv.read_text().replace("done", "DONE", 1))  # a hand edit
    before = _tree(out)
    assert report(["gradient_clipping", "--runs-dir", str(runs), "--out", str(out)]) == 2
    assert "gradient_clipping.csv was changed since the report wrote it" in \
        capsys.readouterr().err
    assert _tree(out) == before

    import ablations.report as command
    import ablations.tables.pages as pages

    def broken(*args, **kwargs):
        raise RuntimeError("the disk filled up half-way")

    monkeypatch.setattr(pages, "write_site", broken)  # the report imports it when it runs
    with pytest.raises(RuntimeError):
        command.main(["gradient_clipping", "--runs-dir", str(runs), "--out", str(out),
                      "--replace"])
    assert _tree(out) == before  # nothing half-written, no aside folder left
    monkeypatch.undo()
    assert report(["gradient_clipping", "--runs-dir", str(runs), "--out", str(out),
                   "--replace"]) == 0
    assert "DONE" not in csv.read_text()


@pytest.mark.parametrize("case, expected", [
    ("out_file", "--out {x} is a file: give a folder"),
    ("out_unwritable", "cannot write the report into /sys/vitadv-report"),
    ("runs_file", "--runs-dir {x} is a file: give the folder the runs were launched into"),
    ("runs_missing", "--runs-dir {x} does not exist"),
])
def test_a_report_that_cannot_be_written_says_so_in_one_line(runs, tmp_path, capsys, case,
                                                              expected):
    x = tmp_path / "x"
    args = {"out_file": ["--runs-dir", str(runs), "--out", str(x)],
            "out_unwritable": ["--runs-dir", str(runs), "--out", "/sys/vitadv-report"],
            "runs_file": ["--runs-dir", str(x), "--out", str(tmp_path / "o")],
            "runs_missing": ["--runs-dir", str(x), "--out", str(tmp_path / "o")]}[case]
    if case.endswith("file"):
        x.write_text("not a folder")
    assert report(["gradient_clipping", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {err[7:]}" and err.count("\n") == 0
    assert expected.format(x=x) in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_index_answers_what_the_paper_claimed_and_what_we_found(runs, tmp_path):
    """Every claim with the paper's words, ours with its uncertainty, the verdict and its
    rule; what ran (scale, data set, n, code); percent everywhere, never raw fractions."""
    out = tmp_path / "results"
    _report(runs, out)
    index = (out / "index.html").read_text()
    assert "ViT and DeiT collapse without clipping (to about 10%)" in index
    # 2a by hand: ViT pairs 60-10, 62-11, 61-12 points: mean 50, V_s = 1 / 3; test points
    # (no flags: unpaired bound on the means 0.61, 0.11) V_t = 1e4 (0.61 0.39 + 0.11 0.89) /
    # 360 = 9.328; SE = 3.108, df = 2 (V_s + V_t)^2 / V_s^2 = 1680, t = 1.9613: +-6.10
    assert "+50.0 [+43.9, +56.1] pts, 95% CI (1 x 3 pairs)" in index
    assert "one-sided t test: gain &gt; 0, p &lt; 0.025" in index
    assert "<td>360</td>" in index and "abc1234 (date unknown)" in index
    assert "95% interval" in index and "† marks a run a sanity check" in index
    page = (out / "gradient_clipping.html").read_text()
    assert "61.0 ± 1.0 (3)" in page  # ViT, clipping on: PGD-20 60, 62, 61 percent
    assert "0.6100" not in page and "0.61" not in page.split("<h2>Runs</h2>")[0]


@pytest.mark.slow
def test_a_report_is_rebuilt_byte_for_byte_from_the_runs_it_carries(runs, tmp_path, capsys):
    """What the shipped results/ must do: `--runs-dir REPORT/runs --out REPORT` (in place, or
    on a copy moved elsewhere) gives every file back unchanged; --weights carries what
    `model.source=run:ID runs_dir=REPORT/runs` loads; an attack's resumable state is not
    carried; a failed run stays failed."""
    import shutil

    ab = load_all().get("gradient_clipping")
    cells = expand(ab, "tiny", 3, [f"runs_dir={runs}"])
    first = RunDir.of(runs, cells[0].run_id)
    first.weights.write_bytes(b"weights of the first run")
    first.eval_flags("pgd20").parent.mkdir()
    first.eval_flags("pgd20").write_text(json.dumps({"correct": [True, False, True]}))
    first.eval_state("aa").write_text("{}")
    missing = next(c for c in cells if not RunDir.of(runs, c.run_id).result.is_file())
    RunDir.of(runs, missing.run_id).path.mkdir()
    RunDir.of(runs, missing.run_id).failure.write_text('{"error": "out of memory"}')
    out = tmp_path / "report"
    assert report(["--runs-dir", str(runs), "--out", str(out), "--weights"]) == 0
    carried = RunDir.of(out / "runs", first.name)
    assert carried.weights.read_bytes() == b"weights of the first run"
    assert carried.eval_flags("pgd20").is_file() and not carried.eval_state("aa").exists()
    assert ",failed," in (out / "gradient_clipping.csv").read_text()
    grid = json.loads(mf.path(out / "runs", ab.name, "tiny").read_text())
    assert len(grid["cells"]) == 18 and grid["jobs"] == {}
    before = _tree(out)
    assert report(["--runs-dir", str(out / "runs"), "--out", str(out), "--weights"]) == 0
    assert _tree(out) == before
    moved = tmp_path / "elsewhere" / "report"
    shutil.copytree(out, moved)
    shutil.rmtree(runs)  # the runs it was first built from are gone
    assert report(["--runs-dir", str(moved / "runs"), "--out", str(moved), "--weights"]) == 0
    assert _tree(moved) == before
    capsys.readouterr()


@pytest.mark.slow
def test_a_report_carries_no_weights_unless_asked(runs, tmp_path):
    ab = load_all().get("gradient_clipping")
    rid = expand(ab, "tiny", 3, [f"runs_dir={runs}"])[0].run_id
    RunDir.of(runs, rid).weights.write_bytes(b"w")
    out = tmp_path / "report"
    _report(runs, out)
    assert RunDir.of(out / "runs", rid).result.is_file()
    assert not RunDir.of(out / "runs", rid).weights.exists()


def test_a_record_with_two_runs_for_a_cell_is_one_line_with_the_fix(runs, tmp_path, capsys):
    """Records written before relaunches replaced changed cells can hold a stale run beside
    the current one for the same cell: the report names it and the relaunch that fixes it."""
    m = mf.load(runs, "gradient_clipping", "tiny")
    rid, cell = next(iter(m["cells"].items()))
    m["cells"]["0123456789ab"] = {**cell, "order": len(m["cells"])}
    mf.save(runs, m)
    assert report(["--runs-dir", str(runs), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds 2 runs for cells that should have one" in err
    assert "0123456789ab" in err and rid in err and "--seeds 3" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_report_carries_the_runs_its_runs_started_from(runs, tmp_path):
    """A fine-tuned run names its clean pretraining run (`run:<id>` in its result); that run
    (and the one it started from in turn) comes along, with its weights when asked, so the
    id the carried result names can be evaluated again. A source not in the runs is skipped."""
    ab = load_all().get("gradient_clipping")
    cells = expand(ab, "tiny", 3, [f"runs_dir={runs}"])
    tuned = RunDir.of(runs, cells[0].run_id)
    chain = {tuned: "aaaaaaaaaaaa", RunDir.of(runs, "aaaaaaaaaaaa"): "bbbbbbbbbbbb",
             RunDir.of(runs, cells[1].run_id): "cccccccccccc"}  # ccc… is not in the runs
    for run in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        _write_run(RunDir.of(runs, run), 0.2)
        RunDir.of(runs, run).weights.write_bytes(run.encode())
    for run, source in chain.items():
        result = json.loads(run.result.read_text())
        run.result.write_text(json.dumps({**result, "pretrained": {"source": f"run:{source}"}}))
    out = tmp_path / "report"
    assert report(["--runs-dir", str(runs), "--out", str(out), "--weights"]) == 0
    for run in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        assert RunDir.of(out / "runs", run).weights.read_bytes() == run.encode()
        assert RunDir.of(out / "runs", run).result.is_file()
    assert not RunDir.of(out / "runs", "cccccccccccc").path.exists()
    assert "aaaaaaaaaaaa" not in (out / "gradient_clipping.csv").read_text()  # not a row


@pytest.mark.slow
def test_a_run_two_questions_share_carries_its_weights_once(runs, tmp_path):
    """The clipping grid's clipped cells are ard_prm's cells without plugins (3 models, 3
    seeds): both questions' pages name them, and their weights are carried once, not a second
    time onto their own hard link, a SameFileError that ended the report (the shipped rebuild
    met it)."""
    ab = load_all().get("ard_prm")
    cells = expand(ab, "tiny", 3, [f"runs_dir={runs}"])
    m = mf.load(runs, ab.name, "tiny")
    mf.record_cells(m, cells)
    mf.save(runs, m)
    shared = [c.run_id for c in cells if RunDir.of(runs, c.run_id).result.is_file()]
    assert len(shared) == 9
    for rid in shared:
        RunDir.of(runs, rid).weights.write_bytes(rid.encode())
    out = tmp_path / "report"
    assert report(["--runs-dir", str(runs), "--out", str(out), "--weights"]) == 0
    for rid in shared:
        assert RunDir.of(out / "runs", rid).weights.read_bytes() == rid.encode()
