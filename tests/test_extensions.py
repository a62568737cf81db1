"""A new evaluation attack and a new objective are one registry entry each: registered here,
inside the test only, they flow through validation, the dry-run cost, a grid on the debug
launcher, the CSV columns, the figure and the main table, with no other file touched."""
from __future__ import annotations

import functools

import pandas as pd
import pytest
import torch

from ablations.grid import manifest as mf
from ablations.grid.cells import expand
from ablations.launch.jobs import jobs_for
from ablations.launch.launchers import LAUNCHERS, LaunchOptions
from ablations.questions import load_all
from ablations.report import main as report_main
from ablations.run import main as run_main
from core.attacks import cross_entropy
from core.evaluation import EVAL_ATTACKS, EvalAttack, pgd_correct
from core.infra.errors import ConfigError
from core.runs.checks import validate
from core.runs.cost import forward_flops, job_flops, passes_per_image
from core.training.objectives import OBJECTIVES, Objective

SHRINK = ["epochs=1", "data.train_subset=64", "batch_size=32", "attack.steps=1", "eval.n=16",
          "eval.n_aa=4", "eval.curve_n=8", "eval.batch_size=16", "pretrain.epochs=1",
          "pretrain.train_subset=64", "pretrain.batch_size=32", "warmup_epochs=0.5",
          "optim.decay_before_end=[0.5]", "progress=false"]
FGSM = EvalAttack("fgsm", "FGSM", functools.partial(
    pgd_correct, name="fgsm", steps=1, loss=lambda ctx: cross_entropy), passes=3)


def _blend(model, x, target, make_adv, gamma: float):
    """gamma * CE(adversarial) + (1 - gamma) * CE(clean): an objective with its own knob."""
    logits_adv = model(make_adv(cross_entropy, target, "uniform"))
    logits_nat = model(x)
    loss = gamma * cross_entropy(logits_adv, target) + (1 - gamma) * cross_entropy(logits_nat,
                                                                                  target)
    return loss.mean(), logits_adv


def _gamma_in_unit(hparams) -> None:
    if not 0 <= hparams["gamma"] <= 1:
        raise ConfigError(f"method.gamma={hparams['gamma']} must be in [0, 1]")


BLEND = Objective(_blend, hparams=("gamma",), extra_passes=3, check=_gamma_in_unit)
OVERRIDES = ["method.name=blend", "+method.gamma=0.5", "eval.attacks=[clean,pgd20,fgsm,aa]"]


@pytest.fixture
def extended():
    with EVAL_ATTACKS.scoped("fgsm", FGSM), OBJECTIVES.scoped("blend", BLEND):
        yield
    assert "fgsm" not in EVAL_ATTACKS and "blend" not in OBJECTIVES


def test_validation_reads_the_entries(extended, fast_cfg):
    validate(fast_cfg(*OVERRIDES))
    with pytest.raises(ConfigError, match="needs method.gamma"):
        validate(fast_cfg("method.name=blend"))
    with pytest.raises(ConfigError, match=r"method.gamma=2.0 must be in \[0, 1\]"):
        validate(fast_cfg("method.name=blend", "+method.gamma=2.0"))
    with pytest.raises(ConfigError, match="method.beta is not a hyper-parameter of 'blend'"):
        validate(fast_cfg("method.name=blend", "+method.gamma=0.5", "+method.beta=6"))
    with pytest.raises(ConfigError, match="valid: aa, clean, cw20, fgsm, pgd100, pgd20"):
        validate(fast_cfg("eval.attacks=[fgsm,nosuch]"))


def test_cost_reads_the_entries(extended, fast_cfg):
    base, ours = fast_cfg("method=at"), fast_cfg(*OVERRIDES)
    # the objective adds a clean forward and backward per image (3 passes) on top of AT's
    assert passes_per_image(ours) == passes_per_image(base) + 3
    without = fast_cfg(*OVERRIDES[:2], "eval.attacks=[clean,pgd20,aa]")
    f = forward_flops(ours.model.arch, 16, ours.model.patch_size, ours.model.window_size)
    assert job_flops(ours) - job_flops(without) == pytest.approx(3 * 48 * f)  # 48 points


@pytest.mark.slow
def test_a_grid_with_them_reaches_the_tables_and_the_figure(extended, tmp_path, capsys,
                                                            monkeypatch):
    over = [*SHRINK, *OVERRIDES, f"runs_dir={tmp_path}"]
    assert run_main(["main_table", "--scale", "tiny", "--dry-run", *over[:-1],
                     "--runs-dir", str(tmp_path)]) == 0
    dry = capsys.readouterr().out
    assert "problems: 0" in dry and "minutes on this CPU" in dry
    ab = load_all().get("main_table")
    cells = expand(ab, "tiny", 1, over)[:2]
    manifest = mf.load(tmp_path, ab.name, "tiny")
    mf.record_cells(manifest, cells)
    jobs = jobs_for(cells)
    group = mf.Group({ab.name: manifest}, {j.run_id: {ab.name} for j in jobs})
    out = LAUNCHERS.get("debug")(jobs, group, LaunchOptions(runs_dir=str(tmp_path)))
    assert not out.failed
    drawn = []
    import ablations.tables.figures as figures

    real = figures.metric_bars
    monkeypatch.setattr(figures, "metric_bars",
                        lambda ax, s, axis, metrics: drawn.append(metrics) or real(ax, s, axis,
                                                                                   metrics))
    results = tmp_path / "results"
    assert report_main(["main_table", "--runs-dir", str(tmp_path), "--out", str(results)]) == 0
    df = pd.read_csv(results / "main_table.csv")
    assert df["fgsm_acc"].notna().all() and (df["fgsm_acc"] <= df["clean_acc"]).all()
    assert list(df.columns[-9:]) == ["clean_acc", "pgd20_acc", "cw20_acc", "pgd100_acc",
                                     "aa_acc", "pgd20x5_acc", "fgsm_acc", "robust_acc", "flags"]
    assert drawn == [["clean_acc", "pgd20_acc", "aa_acc", "fgsm_acc", "robust_acc"]]
    table = (results / "main_table.md").read_text()
    assert table.startswith("# main_table: How accurate and robust is each model")  # its own
    assert "| model | natural | PGD-20 | AutoAttack | FGSM | worst case | seeds |" in table
    assert "natural, PGD-20 and FGSM on 16 test points; AutoAttack on the first 4" in table
    result = next(r for r in map(lambda j: j.run_dir.read_result(), jobs)
                  if r["config"]["method"]["name"] == "blend")
    assert result["config"]["method"] == {"name": "blend", "gamma": 0.5}
    assert result["n_fgsm"] == 16 and result["n_aa"] == 4
    assert result["robust_acc"] <= min(result["fgsm_acc"], result["pgd20_acc"])


def test_the_new_objective_trains(extended, fast_cfg):
    from core.runs.run import run

    result = run(fast_cfg("method.name=blend", "+method.gamma=1.0", "epochs=1"))
    assert result["status"] == "done" and torch.isfinite(torch.tensor(result["clean_acc"]))
