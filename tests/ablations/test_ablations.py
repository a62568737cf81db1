"""Ablations: every grid expands and runs; re-runs submit nothing; the report and verdicts."""
from __future__ import annotations

import json

import pytest

from ablations.grid import manifest as mf
from ablations.grid.cells import expand
from ablations.launch.jobs import jobs_for
from ablations.launch.launchers import LAUNCHERS, LaunchOptions
from ablations.questions import load_all
from core.infra.rundir import RunDir

NAMES = load_all().names()
SHRINK = ["epochs=1", "data.train_subset=64", "batch_size=32", "attack.steps=1", "eval.n=16",
          "eval.n_aa=4", "eval.curve_n=8", "eval.batch_size=16", "pretrain.epochs=1",
          "pretrain.train_subset=64", "pretrain.batch_size=32", "warmup_epochs=0.5",
          "optim.decay_before_end=[0.5]", "progress=false"]


def test_there_is_one_ablation_per_question():
    assert NAMES == sorted(["pretraining", "gradient_clipping", "epochs", "augmentation",
                            "optimizer", "ard_prm", "methods", "warmup", "main_table", "imagenet"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", ["tiny", "paper"])
def test_grid_expands_with_unique_ids_and_measurable_claims(name, scale):
    ab = load_all().get(name)
    cells = expand(ab, scale, seeds=2)
    ids = [c.run_id for c in cells]
    assert len(set(ids)) == len(ids) == len(cells) > 1
    assert {c.seed for c in cells} == {0, 1}
    produced = {f"{a}_acc" for a in cells[0].cfg.eval.attacks} | {"robust_acc"}
    claims = [c for c in ab.claims if scale in c.scales]
    assert claims, "every ablation tests a claim at both scales"
    axes = ab.axes_for(scale)
    for claim in claims:
        assert claim.metric in produced, (claim.id, claim.metric)
        assert claim.control in axes[claim.axis]
        assert all(t in axes[claim.axis] for t in claim.treatment), claim.id
    assert all(c.cfg.scale_name == scale for c in cells)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_one_cell_runs_through_the_debug_launcher(name, tmp_path):
    ab = load_all().get(name)
    cells = expand(ab, "tiny", 1, [*SHRINK, f"runs_dir={tmp_path}"])[:1]
    jobs = jobs_for(cells)
    manifest = mf.load(tmp_path, name, "tiny")
    mf.record_cells(manifest, cells)
    group = mf.Group({name: manifest}, {j.run_id: {name} for j in jobs})
    out = LAUNCHERS.get("debug")(jobs, group, LaunchOptions(runs_dir=str(tmp_path)))
    assert not out.failed and len(out.submitted) == len(jobs)
    result = RunDir.of(tmp_path, cells[0].run_id).read_result()
    assert result["status"] in ("done", "diverged")
    assert all(c.metric in result for c in ab.claims if "tiny" in c.scales)
    again = LAUNCHERS.get("debug")(jobs, group, LaunchOptions(runs_dir=str(tmp_path)))
    assert again.submitted == [] and sorted(again.skipped) == sorted(j.run_id for j in jobs)


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory):
    """One cell of the first ablation, finished through the debug launcher."""
    runs, name = tmp_path_factory.mktemp("runs"), NAMES[0]
    cells = expand(load_all().get(name), "tiny", 1, [*SHRINK, f"runs_dir={runs}"])[:1]
    jobs, manifest = jobs_for(cells), mf.load(runs, name, "tiny")
    mf.record_cells(manifest, cells)
    group = mf.Group({name: manifest}, {j.run_id: {name} for j in jobs})
    assert LAUNCHERS.get("debug")(jobs, group, LaunchOptions(runs_dir=str(runs))).submitted
    return jobs, group, runs


@pytest.mark.slow
@pytest.mark.parametrize("name", LAUNCHERS.names())
def test_every_launcher_relaunching_a_finished_grid_submits_nothing(name, finished_grid,
                                                                    request):
    if name == "slurm":
        request.getfixturevalue("cluster")  # a real one (or the skip that says why not)
    jobs, group, runs = finished_grid
    out = LAUNCHERS.get(name)(jobs, group, LaunchOptions(runs_dir=str(runs)))
    assert out.submitted == out.failed == []
    assert sorted(out.skipped) == sorted(j.run_id for j in jobs)


def test_pretraining_is_a_dependency_trained_once(tmp_path):
    shrink = [o for o in SHRINK if not o.startswith("pretrain.train_subset")]
    cells = expand(load_all().get("pretraining"), "tiny", 2, [*shrink, f"runs_dir={tmp_path}"])
    jobs = jobs_for(cells)
    pre = [j for j in jobs if j.what == "pretrain"]
    assert len(pre) == 2  # small and large source sets, shared by both seeds
    assert jobs[:2] == pre and all(j.deps for j in jobs[2:] if j.cfg.model.source == "pretrain")


def test_cli_bad_input_is_one_line(tmp_path, capsys, monkeypatch):
    from ablations.run import main as run_main

    assert run_main(["nosuch", "--scale", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "give one of ard_prm, augmentation" in err
    assert err.endswith(", or all")
    with pytest.raises(SystemExit) as e:  # argparse's own errors are one line too
        run_main(["epochs", "--gpu", "nosuch"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0 and "invalid choice: 'nosuch'" in err
    assert run_main(["epochs", "--scale", "tiny", "nokey=1"]) == 2
    assert "No such key" in capsys.readouterr().err
    monkeypatch.setattr("ablations.launch.launchers.shutil.which", lambda name: None)
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm",
                     "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no `sbatch` on PATH" in err
    assert list(tmp_path.rglob("*")) == []  # a refused launch records nothing: no grid pending


@pytest.mark.slow
def test_dry_run_lists_cells_cost_and_problems(tmp_path, capsys):
    from ablations.run import main as run_main

    assert run_main(["gradient_clipping", "--dry-run", "--runs-dir", str(tmp_path),
                     f"data.root={tmp_path / 'nocifar'}"]) == 2  # a script can gate on it
    out = capsys.readouterr().out
    assert "6 cells" in out and "gradient_clipping: model=Swin-B clipping=off seed=0" in out
    # one problem of six runs is one line with its count and fix; each run points at it
    assert out.count("CIFAR-10 not found") == 1 and "PROBLEM P1 (6 runs): CIFAR-10" in out
    assert out.count("[P1 ") + out.count("[P1]") == 6
    assert "GPU-hours on one h100" in out and "problems: 6 (1 distinct" in out
    assert run_main(["warmup", "--scale", "tiny", "--dry-run", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "minutes on this CPU" in out and "problems: 0" in out
    assert not list(tmp_path.glob("*/result.json"))  # nothing ran


@pytest.mark.slow
def test_status_shows_failures_with_their_log(tmp_path, capsys):
    from ablations.status import main as status_main

    cells = expand(load_all().get("gradient_clipping"), "tiny", 1,
                   [*SHRINK, f"runs_dir={tmp_path}", "optim.name=nosuch"])
    manifest = mf.load(tmp_path, "gradient_clipping", "tiny")
    mf.record_cells(manifest, cells)
    jobs = jobs_for(cells)
    group = mf.Group({"gradient_clipping": manifest}, {j.run_id: {"gradient_clipping"}
                                                       for j in jobs})
    out = LAUNCHERS.get("debug")(jobs, group, LaunchOptions(runs_dir=str(tmp_path),
                                                            on_event=lambda s: None))
    assert len(out.failed) == 6  # the pretraining runs do not use the optimizer: done
    assert status_main(["gradient_clipping", "--runs-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "3 done, 6 failed" in text
    refused = "| core.infra.errors.ConfigError: optim.name: unknown optimizer 'nosuch'"
    assert text.count(refused) == 6


@pytest.mark.slow
def test_a_run_shared_by_grids_gets_every_attack_they_ask_for(tmp_path):
    """The main table's cell is also an ablation's cell (one run id): it must get AutoAttack
    even when the ablation, which does not ask for it, ran it first."""
    from ablations.launch.launchers import todo

    main = expand(load_all().get("main_table"), "tiny", 1, [*SHRINK, f"runs_dir={tmp_path}"])
    abl = expand(load_all().get("ard_prm"), "tiny", 1,
                  [*SHRINK, f"runs_dir={tmp_path}"])
    shared = {c.run_id for c in main} & {c.run_id for c in abl}
    assert shared
    rid = sorted(shared)[0]
    job = next(j for j in jobs_for([*abl, *main]) if j.run_id == rid)
    assert "aa" in job.cfg.eval.attacks and "aa" not in abl[0].cfg.eval.attacks
    RunDir.of(tmp_path, rid).mkdir().result.write_text(json.dumps(
        {"status": "done", "n_eval": 32, "metrics": {"clean_acc": 0.9, "pgd20_acc": 0.5}}))
    left, done = todo([job])
    assert [j.run_id for j in left] == [rid] and done == []


@pytest.mark.slow
def test_a_relaunch_records_the_attacks_the_grid_asks_for_now(tmp_path):
    """A grid whose evaluation changed (here: AutoAttack dropped) is reported with the attacks
    it asks for now, not those of its first launch, while its cells keep their places."""
    ab = load_all().get("main_table")
    first = expand(ab, "tiny", 2, [f"runs_dir={tmp_path}"])
    manifest = mf.load(tmp_path, ab.name, "tiny")
    mf.record_cells(manifest, first)
    order = {rid: c["order"] for rid, c in manifest["cells"].items()}
    assert all("aa" in c["attacks"] for c in manifest["cells"].values())
    now = expand(ab, "tiny", 2, [f"runs_dir={tmp_path}", "eval.attacks=[clean,pgd20]"])
    assert [c.run_id for c in now] == [c.run_id for c in first]
    mf.record_cells(manifest, now)
    assert all(c["attacks"] == ["clean", "pgd20"] for c in manifest["cells"].values())
    assert {rid: c["order"] for rid, c in manifest["cells"].items()} == order


def test_a_relaunch_after_the_grid_changed_records_the_grid_as_it_is_now(tmp_path):
    """A cell whose config changed (here the Swin momentum, as a changed preset would) comes
    back under a new run id in the old one's place; a label combination the grid no longer
    has (the epochs grid's old lengths) is dropped; seeds beyond the relaunch's stay."""
    ab = load_all().get("gradient_clipping")
    old = expand(ab, "tiny", 3, [f"runs_dir={tmp_path}", "optim.momentum=0.9"])
    manifest = mf.load(tmp_path, ab.name, "tiny")
    mf.record_cells(manifest, old)
    order = [(c["labels"], c["seed"]) for _, c in mf.ordered_cells(manifest)]
    now = expand(ab, "tiny", 2, [f"runs_dir={tmp_path}"])
    gone = mf.record_cells(manifest, now)
    swin_old = {c.run_id for c in old if c.label("model") == "Swin" and c.seed < 2}
    assert set(gone) == swin_old and len(gone) == 4  # ViT/ConViT: 0.9 is their preset's
    cells = mf.ordered_cells(manifest)
    assert [(c["labels"], c["seed"]) for _, c in cells] == order  # same places, seed 2 kept
    assert {c.run_id for c in now} <= {rid for rid, _ in cells}
    epochs = load_all().get("epochs")
    m2 = mf.load(tmp_path, "epochs", "tiny")
    mf.record_cells(m2, expand(epochs, "tiny", 1, [f"runs_dir={tmp_path}", "epochs=24"])[:1])
    stale = dict(next(iter(m2["cells"].values()))["labels"])
    m2["cells"] = {f"x{rid}": {**c, "labels": [["epochs", "24"]]}
                   for rid, c in m2["cells"].items()}
    assert stale == {"epochs": "40"}
    assert mf.record_cells(m2, expand(epochs, "tiny", 1, [f"runs_dir={tmp_path}"])) != []
    assert {dict(c["labels"])["epochs"] for c in m2["cells"].values()} == {"40", "80"}
