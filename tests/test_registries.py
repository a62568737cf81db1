"""Every registry entry is tested for being one: each of the project's registries (objectives,
evaluation attacks, families, weight sources, data sets, questions, precisions, trackers,
schedules, optimizers, kernel and position adapters, test points, attack starts and losses,
RobustBench's data sets and entries; launchers in test_ablations) is parametrised over (as
timm tests every model it lists), so a new entry is tested the moment it is registered."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import subprocess

import pytest
import timm
import torch
import yaml

from ablations.questions import load_all
from core.attacks import PGD, START, cross_entropy
from core.attacks.losses import ATTACK_LOSSES
from core.config import DataCfg, OptimCfg
from core.config.compose import compose
from core.data.points import TEST_POINTS
from core.data.sets import DATASETS
from core.evaluation import EVAL_ATTACKS, NATURAL, EvalContext, evaluate, robust
from core.infra.rundir import RunDir
from core.models.adapt import KERNEL_ADAPTERS, POS_EMBED_KEY, POS_RESIZE, adapt_pos_embed
from core.models.families import FAMILIES, family_of
from core.models.robustbench import BENCHMARKS, ENTRIES
from core.models.sources import SOURCES, Source
from core.training.objectives import OBJECTIVES, objective_of
from core.training.precision import PRECISIONS, autocast
from core.training.schedules import OPTIMIZERS, SCHEDULES
from core.training.tracking import TRACKERS
from tests.conftest import ROOT

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


@pytest.mark.slow
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
    """A source that reads weights from disk names what is absent, in one line; one that reads
    none (`none`) or trains them first (`pretrain`, through the run it needs) has none to miss."""
    source = SOURCES.get(name)
    arg = "deit_tiny_patch16_224.fb_in1k" if name == "timm" else "nosuch.nothing"
    problem = source.missing(arg, tmp_path / "no-cache")
    if source.missing is Source.missing:
        trains_first = source.needs(compose(["scale=tiny", f"model.source={name}"]))
        assert problem is None and (trains_first is not None) == (name == "pretrain")
    else:
        assert problem.count("\n") == 0 and arg in problem


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_data_set_names_its_fix_when_absent(name, tmp_path):
    from core.infra.errors import DataNotFoundError

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
    names = re.findall(r'_File\("([^"]+)"\)', (ROOT / "core" / "infra" / "rundir.py").read_text())
    assert len([n for n in names if "." in n]) >= 8  # result, weights, checkpoint, ...
    pattern = "|".join(re.escape(f"\"{n}\"") for n in names if "." in n)  # files
    out = subprocess.run(["grep", "-rnE", pattern, "core", "ablations", "slurm", "tests"],
                         cwd=ROOT, capture_output=True, text=True)
    assert [ln for ln in out.stdout.splitlines() if not ln.startswith("core/infra/rundir.py")] == []
    assert RunDir("x").eval_flags("aa").parent.name == RunDir("x").eval_state("aa").parent.name


@pytest.mark.slow
def test_shipped_run_ids_are_those_the_grids_compute():
    """Every run id in results/<question>.csv is what its grid computes today: a change to the
    config schema or a grid that would orphan shipped results fails here."""
    import pandas as pd

    from ablations.grid.cells import expand

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


@pytest.mark.parametrize("name", PRECISIONS.names())
def test_every_precision_sets_the_matmul_precision_and_puts_it_back(name):
    before, a = torch.get_float32_matmul_precision(), torch.rand(8, 8)
    with autocast(name, torch.device("cpu")):
        assert torch.get_float32_matmul_precision() == PRECISIONS.get(name)
        out = a @ a
    assert torch.get_float32_matmul_precision() == before
    assert torch.allclose(out.float(), a @ a, atol=0.05)  # bf16 rounds, nothing else changes


@pytest.mark.parametrize("name", TRACKERS.names())
def test_every_tracker_writes_into_its_run_folder(name, tmp_path):
    backend = TRACKERS.get(name)
    if importlib.util.find_spec(backend.package) is None:
        pytest.skip(f"{backend.package} is not installed (the tracker's own dependency)")
    tracker = backend.open(RunDir(tmp_path / "run"), "abc", {"seed": 0})
    tracker.scalars("train", {"loss": 1.5}, 0)
    tracker.close()
    assert any(p.is_file() for p in (tmp_path / "run").rglob("*"))


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_stays_within_zero_and_the_peak_lr(name):
    cfg = OptimCfg(lr=0.1, decay_before_end=[2])
    lrs = [SCHEDULES.get(name)(t / 10, cfg, 10) for t in range(101)]
    assert all(0 <= lr <= cfg.lr + 1e-12 for lr in lrs) and max(lrs) == pytest.approx(cfg.lr)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_takes_its_lr_and_lowers_the_loss(name):
    torch.manual_seed(0)
    model, x = torch.nn.Linear(4, 1), torch.randn(32, 4)
    cfg = OptimCfg(name=name, lr=0.01)
    opt = OPTIMIZERS.get(name)(model.parameters(), cfg)
    assert all(g["lr"] == cfg.lr for g in opt.param_groups)
    losses = []
    for _ in range(5):
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", KERNEL_ADAPTERS.names())
def test_every_kernel_adapter_is_linear_and_keeps_the_flat_patch_response(name):
    """The kernel fitted to 4x4 patches of a 4x-downsampled image answers a flat patch about as
    the 16x16 kernel did (block_sum exactly, resample in least squares), linearly in the
    kernel, and a kernel that fits already is kept."""
    adapt = KERNEL_ADAPTERS.get(name)
    kernel = torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    small = adapt(kernel, (4, 4))
    assert small.shape == (64, 3, 4, 4) and torch.allclose(adapt(2 * kernel, (4, 4)), 2 * small,
                                                          rtol=1e-4, atol=1e-4)
    flat = torch.stack([small.sum((2, 3)).flatten(), kernel.sum((2, 3)).flatten()])
    assert torch.corrcoef(flat)[0, 1] > 0.9
    assert torch.allclose(adapt(kernel, (16, 16)), kernel, atol=1e-5)


@pytest.mark.parametrize("name", POS_RESIZE.names())
def test_every_position_resize_keeps_the_prefix_and_a_flat_grid_flat(name):
    cls, grid = torch.randn(1, 1, 8), torch.full((1, 16, 8), 0.25)
    out = adapt_pos_embed({POS_EMBED_KEY: torch.cat([cls, grid], 1)}, torch.Size([1, 5, 8]),
                          (2, 2), name)[POS_EMBED_KEY]
    assert out.shape == (1, 5, 8) and torch.equal(out[:, :1], cls)
    assert torch.allclose(out[:, 1:], torch.full((1, 4, 8), 0.25), atol=1e-6)


@pytest.mark.parametrize("name", TEST_POINTS.names())
def test_every_test_point_selection_is_a_permutation_or_names_what_is_missing(name, digits,
                                                                              tmp_path):
    points, data = TEST_POINTS.get(name), DataCfg(name="digits", img_size=16,
                                                  root=str(tmp_path))
    problem = points.missing(data)
    if problem is not None:  # digits holds none of them: the fix is other points
        assert problem.count("\n") == 0 and "use eval.points=" in problem
        elsewhere = points.missing(dataclasses.replace(data, name="imagenet"))
        assert elsewhere is None or "core.prefetch" in elsewhere  # where they could be: how
        return
    order = points.order(digits, data)
    assert sorted(order.tolist()) == list(range(len(digits.test)))
    json.dumps(points.record(data))  # recorded in the result as it is


@pytest.mark.parametrize("name", START.names())
def test_every_attack_start_is_seeded_and_inside_the_ball(name):
    attack = PGD(8 / 255, 2 / 255, 10, cross_entropy, start=name)
    noise = [START.get(name)(torch.Size([64, 3, 4, 4]), torch.Generator().manual_seed(3))
             for _ in range(2)]
    assert torch.equal(noise[0], noise[1]) and noise[0].shape == (64, 3, 4, 4)
    assert attack.initial(noise[0]).abs().max() <= attack.eps


@pytest.mark.parametrize("name", ATTACK_LOSSES.names())
def test_every_attack_loss_is_per_example(name):
    """[B] losses, one example's never depending on another's (broken examples are dropped
    from the batch mid-attack). Soft targets are what every loss takes (Mixup, TRADES)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, generator=g, requires_grad=True)
    target = torch.softmax(torch.randn(6, 10, generator=g), 1)
    loss = ATTACK_LOSSES.get(name)
    whole = loss(logits, target)
    assert whole.shape == (6,) and torch.isfinite(whole).all()
    halves = torch.cat([loss(logits[:3], target[:3]), loss(logits[3:], target[3:])])
    assert torch.allclose(whole, halves)
    (grad,) = torch.autograd.grad(whole[0], logits)
    assert grad[0].abs().sum() > 0 and grad[1:].abs().sum() == 0


@pytest.mark.parametrize("name", BENCHMARKS.names())
def test_every_robustbench_data_set_is_a_data_set_here(name):
    bench = BENCHMARKS.get(name)
    assert name in DATASETS and 0 < bench.eps <= 16 / 255
    assert len(bench.mean) == len(bench.std) == 3 and min(bench.std) > 0
    assert bench.selection is None or bench.selection in TEST_POINTS


@pytest.mark.parametrize("name", ENTRIES.names())
def test_every_robustbench_entry_is_a_known_architecture_on_a_known_leaderboard(name):
    entry = ENTRIES.get(name)
    assert entry.folder in {b.folder for b in BENCHMARKS.values()}
    assert timm.is_model(entry.arch) and 0 < entry.autoattack_acc < entry.clean_acc <= 100
    net = timm.create_model(entry.arch, pretrained=False, img_size=32, num_classes=10)
    assert family_of(net) is not None  # the families know how to attack and adapt it
