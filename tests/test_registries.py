"""Every registry entry is tested for being one: objectives, evaluation attacks, families,
weight sources, data sets and questions, parametrised over the registries (as timm tests
every model it lists), so a new entry is tested the moment it is registered."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import timm
import torch
import yaml

from ablations.spec import load_all
from core.compose import compose
from core.data.sets import DATASETS
from core.evaluation import EVAL_ATTACKS, NATURAL, EvalContext, evaluate, robust
from core.models.families import FAMILIES, family_of
from core.models.sources import SOURCES
from core.rundir import RunDir
from core.training.objectives import OBJECTIVES, objective_of

ROOT = Path(__file__).resolve().parent.parent
METHOD_PRESETS = ROOT / "core" / "conf" / "method"


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_every_objective_has_a_preset_and_trains_a_step(name):
    """Its preset composes and passes its own check; one loss on a tiny ViT is finite, has
    gradients, and the attack is asked for exactly when the entry says it attacks."""
    assert (METHOD_PRESETS / f"{name}.yaml").is_file(), "core/conf/method/<name>.yaml"
    cfg = compose(["scale=tiny", f"method={name}"])
    objective, hparams = objective_of(cfg.method)
    assert set(hparams) == set(objective.hparams)
    torch.manual_seed(0)
    model = timm.create_model("vitadv_vit_micro")
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([1, 2, 3, 4])
    asked = []

    def make_adv(loss, target, start):
        asked.append(start)
        return (x + 0.01).clamp(0, 1)

    loss, logits = objective.loss(model, x, y, make_adv, **hparams)
    loss.backward()
    assert torch.isfinite(loss) and logits.shape == (4, 10)
    assert all(p.grad is not None for p in model.head.parameters())
    assert bool(asked) == objective.attacks and objective.extra_passes >= 0


@pytest.mark.parametrize("name", EVAL_ATTACKS.names())
def test_every_evaluation_attack_flags_its_points(name, trained_model, test_batch):
    """Bool flags, one per point it covers (a row per point, one per restart, for an attack
    with restarts); never above natural accuracy point by point (an attack cannot make a
    wrong prediction right); facts downstream code reads."""
    attack = EVAL_ATTACKS.get(name)
    model, _ = trained_model
    x, y = test_batch[0][:24], test_batch[1][:24]
    cfg = compose(["scale=tiny", "eval.n_aa=8"])
    ctx = EvalContext(eps=8 / 255, seed=0, batch_size=24, device=torch.device("cpu"),
                      eval=cfg.eval)
    n = attack.points(cfg.eval, len(y))
    flags = attack.correct(model, x[:n], y[:n], ctx)
    natural = EVAL_ATTACKS.get(NATURAL).correct(model, x[:n], y[:n], ctx)
    assert flags.dtype == torch.bool and flags.shape[0] == n and flags.ndim in (1, 2)
    assert not (flags & ~natural.reshape(n, *[1] * (flags.ndim - 1))).any()
    assert attack.label and attack.passes >= 1 and attack.column == f"{name}_acc"
    m = evaluate(model, x, y, [NATURAL, name], ctx)
    assert m[attack.count_column] == n and m["robust_acc"] <= m[attack.column]
    assert m[attack.column] == pytest.approx(robust(flags).float().mean().item(), abs=1e-6)


@pytest.mark.parametrize("name", FAMILIES.names())
def test_every_family_example_is_of_its_family(name):
    family = FAMILIES.get(name)
    net = timm.create_model(family.example)
    assert family_of(net) is family and isinstance(net, family.cls)
    (rows, cols), (ph, pw) = family.patch_grid(net)
    assert rows * ph == cols * pw == 16
    assert len(family.attention_branches(net)) >= 2


@pytest.mark.parametrize("name", SOURCES.names())
def test_every_weight_source_says_what_is_missing_in_one_line(name, tmp_path):
    source = SOURCES.get(name)
    problem = source.missing("nosuch.nothing", tmp_path) if name != "timm" else \
        source.missing("deit_tiny_patch16_224.fb_in1k", tmp_path / "no-cache")
    assert problem is None or problem.count("\n") == 0


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_data_set_names_its_fix_when_absent(name, tmp_path):
    from core.errors import DataNotFoundError

    data = DATASETS.get(name)
    try:
        splits = data.load(tmp_path / "absent", 16)
    except DataNotFoundError as e:
        assert str(e).count("\n") == 0 and ("core.prefetch" in str(e) or "data.root" in str(e))
    else:  # an embedded set loads anywhere
        assert len(splits.train) == data.sizes[0] and len(splits.test) == data.sizes[1]


@pytest.mark.parametrize("name", load_all().names())
def test_every_question_is_its_modules_and_its_claims_are_keyworded(name):
    ab = load_all().get(name)
    path = ROOT / "ablations" / "questions" / f"{name}.py"
    assert ab.name == name and path.is_file()
    text = path.read_text()
    assert not re.search(r"Claim\(\s*\"", text), "claims are built with keywords"


def test_names_are_compared_only_inside_their_entries():
    """No `== "<entry name>"` checks outside the entry that owns the fact (issue 8)."""
    out = subprocess.run(["grep", "-rnE", r'== *"(aa|clean|at|cw|main_table)"', "core",
                          "ablations"], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout == ""


def test_run_folder_file_names_live_in_one_module():
    names = re.findall(r'_File\("([^"]+)"\)', (ROOT / "core" / "rundir.py").read_text())
    assert len([n for n in names if "." in n]) >= 8  # result, weights, checkpoint, ...
    pattern = "|".join(re.escape(f"\"{n}\"") for n in names if "." in n)  # files
    out = subprocess.run(["grep", "-rnE", pattern, "core", "ablations", "slurm", "tests"],
                         cwd=ROOT, capture_output=True, text=True)
    assert [ln for ln in out.stdout.splitlines() if not ln.startswith("core/rundir.py")] == []
    assert RunDir("x").eval_flags("aa").parent.name == RunDir("x").eval_state("aa").parent.name


def test_shipped_run_ids_are_those_the_grids_compute():
    """Every run id in results/<question>.csv is what its grid computes today: a change to the
    config schema or a grid that would orphan shipped results fails here."""
    import pandas as pd

    from ablations.grid import expand

    checked = 0
    for name in load_all().names():
        path = ROOT / "results" / f"{name}.csv"
        if not path.is_file():
            continue
        ab, df = load_all().get(name), pd.read_csv(path, dtype=str)
        for scale, rows in df.groupby("scale"):
            seeds = int(rows["seed"].astype(int).max()) + 1
            axes = list(ab.axes_for(scale))
            want = {(tuple(c.label(a) for a in axes), c.seed): c.run_id
                    for c in expand(ab, scale, seeds)}
            for _, r in rows.iterrows():
                assert want[(tuple(r[a] for a in axes), int(r["seed"]))] == r["run_id"], (
                    name, dict(r))
                checked += 1
    assert checked >= 100


def test_model_presets_name_known_sources():
    for path in sorted((ROOT / "core" / "conf" / "model").glob("*.yaml")):
        preset = yaml.safe_load(path.read_text())
        for source in [preset["source"], *preset.get("sources", {}).values()]:
            assert source.partition(":")[0] in SOURCES, (path.name, source)
