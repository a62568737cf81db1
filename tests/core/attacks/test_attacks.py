"""The one PGD: threat-model invariants, attack strength, point independence, AutoAttack."""
from __future__ import annotations

import functools

import pytest
import torch

from core.attacks import PGD, Plugins, cross_entropy, cw_margin, kl_to_clean, pgd_eval, pgd_train
from core.evaluation import EvalContext, evaluate

EPS = 8 / 255


def _attack(loss=cross_entropy, steps=10, start="uniform"):
    return PGD(EPS, 2 / 255, steps, loss, start=start)


@pytest.mark.slow
@pytest.mark.parametrize("start", ["uniform", "gaussian", "none"])
def test_training_pgd_stays_in_the_eps_ball_and_the_image(trained_model, test_batch, start):
    model, _ = trained_model
    x, y = test_batch
    x = torch.cat([x[:16], torch.zeros(4, *x.shape[1:]), torch.ones(4, *x.shape[1:])])
    y = torch.cat([y[:16], y[:8]])
    g = torch.Generator().manual_seed(0)
    x_adv = pgd_train(model, x, y, _attack(start=start), g)
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > EPS / 2  # it moved


def test_eval_pgd_stays_in_the_eps_ball(trained_model, test_batch):
    model, _ = trained_model
    x, y = test_batch
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x_adv, correct = pgd_eval(model, x, y, _attack(steps=20), noise)
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
    with torch.no_grad():
        still = model(x_adv).argmax(1) == y
    assert torch.equal(still, correct)  # the returned examples are the ones that broke


def test_attack_strength_ordering(trained_model, test_batch):
    """clean >= PGD-20 >= PGD-100 >= AutoAttack on a trained model; and the attacks do work."""
    model, _ = trained_model
    x, y = test_batch
    ctx = EvalContext(eps=EPS, seed=0, batch_size=64, device=torch.device("cpu"))
    m = evaluate(model, x, y, ["clean", "pgd20", "pgd100", "cw20"], ctx)
    assert m["clean_acc"] > 0.8
    assert m["clean_acc"] - 0.2 > m["pgd20_acc"] >= m["pgd100_acc"]
    assert m["cw20_acc"] < m["clean_acc"]
    assert m["robust_acc"] <= min(m["pgd20_acc"], m["pgd100_acc"], m["cw20_acc"])


def test_every_attack_sees_the_model_in_eval_mode(trained_model, test_batch):
    """Dropout and drop path are training noise: a model handed over in train mode (as the
    training loop hands it over for the curve and the final evaluation) is evaluated as in
    eval mode, and given back as it came."""
    import copy

    model, _ = trained_model
    x, y = test_batch
    noisy = torch.nn.Sequential(copy.deepcopy(model), torch.nn.Dropout(0.9)).train()
    ctx = EvalContext(eps=EPS, seed=0, batch_size=64, device=torch.device("cpu"))
    assert evaluate(noisy, x, y, ["clean", "pgd20"], ctx) == evaluate(
        model, x, y, ["clean", "pgd20"], ctx)
    assert noisy.training and all(m.training for m in noisy.modules())
    assert all(p.requires_grad for p in noisy.parameters())


def test_eval_result_does_not_depend_on_the_batch(trained_model, test_batch):
    model, _ = trained_model
    x, y = test_batch
    flags = [evaluate(model, x[:48], y[:48], ["pgd20"],
                      EvalContext(eps=EPS, seed=3, batch_size=bs, device=torch.device("cpu")))
             for bs in (48, 7)]
    assert flags[0] == flags[1]


def test_our_pgd20_is_at_least_as_strong_as_torchattacks(trained_model, test_batch):
    torchattacks = pytest.importorskip("torchattacks")
    model, _ = trained_model
    x, y = test_batch
    ours = evaluate(model, x, y, ["pgd20"], EvalContext(eps=EPS, seed=0, batch_size=128,
                                                         device=torch.device("cpu")))["pgd20_acc"]
    torch.manual_seed(0)
    adv = torchattacks.PGD(model, eps=EPS, alpha=2 / 255, steps=20, random_start=True)(x, y)
    with torch.no_grad():
        theirs = (model(adv).argmax(1) == y).float().mean().item()
    assert ours <= theirs + 0.02


def test_attack_builds_no_weight_gradients_and_restores_modes(trained_model, test_batch):
    model, _ = trained_model
    x, y = test_batch
    model.train()
    model.net.blocks[0].eval()  # a module in its own mode must keep it
    try:
        pgd_train(model, x[:8], y[:8], _attack(steps=2), torch.Generator().manual_seed(0))
        assert all(p.grad is None for p in model.parameters())
        assert all(p.requires_grad for p in model.parameters())  # unfrozen again
        assert model.training and model.net.blocks[1].training
        assert not model.net.blocks[0].training
    finally:
        model.eval()


def test_loss_values_by_hand():
    logits = torch.tensor([[2.0, 1.0, -1.0], [0.5, 3.0, 0.0]])
    y = torch.tensor([0, 2])
    p = torch.softmax(logits, 1)
    assert torch.allclose(cross_entropy(logits, y), -p[[0, 1], [0, 2]].log())
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.5, 0.5]])
    assert torch.allclose(cross_entropy(logits, soft), -(soft * p.log()).sum(1))
    # CW: max wrong - true, capped at kappa
    assert torch.allclose(cw_margin(logits, y, kappa=50.0), torch.tensor([1.0 - 2.0, 3.0 - 0.0]))
    assert torch.allclose(cw_margin(logits, y, kappa=1.0), torch.tensor([-1.0, 1.0]))
    q = torch.tensor([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    assert torch.allclose(kl_to_clean(logits, q), (q * (q.log() - p.log())).sum(1))


def test_prm_mask_zeroes_the_perturbation(trained_model, test_batch):
    model, _ = trained_model
    x, y = test_batch
    mask = torch.ones(1, 1, 16, 16)
    mask[..., :8, :] = 0
    plugins = Plugins(mask=lambda step: mask)
    x_adv = pgd_train(model, x[:8], y[:8], _attack(), torch.Generator().manual_seed(0), plugins)
    assert (x_adv - x[:8])[..., :8, :].abs().max() == 0
    assert (x_adv - x[:8])[..., 8:, :].abs().max() > 0


@pytest.mark.slow
def test_autoattack_is_isolated_and_resumes(trained_model, test_batch, tmp_path, monkeypatch):
    """AutoAttack leaves the global RNG alone, and a run interrupted after its first attack
    resumes without re-running it and ends with the uninterrupted flags."""
    import pyautoattack

    from core.attacks.autoattack import autoattack_correct

    model, _ = trained_model
    x, y = test_batch
    x, y = x[:24], y[:24]
    set_version = pyautoattack.AutoAttack._set_version

    def cheaper(self, version):  # FAB-T and Square take a minute here; our logic is the same
        set_version(self, version)
        self.square.n_queries = 100
        self.fab.n_target_classes = self.apgd_targeted.n_target_classes = 2

    monkeypatch.setattr(pyautoattack.AutoAttack, "_set_version", cheaper)
    # a small eps so that examples survive the first attack of a non-robust model
    run = functools.partial(autoattack_correct, model, x, y, 0.5 / 255, 0,
                            torch.zeros(24, dtype=torch.long), 24, torch.device("cpu"))
    state = torch.random.get_rng_state()
    full = run(tmp_path / "a.json")
    assert torch.equal(state, torch.random.get_rng_state())

    calls = []
    original = pyautoattack.AutoAttack.run_standard_evaluation

    def interrupted(self, *args, **kwargs):
        calls.append(list(self.attacks_to_run))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pyautoattack.AutoAttack, "run_standard_evaluation", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b.json")
    monkeypatch.setattr(pyautoattack.AutoAttack, "run_standard_evaluation", original)
    resumed_calls = []
    monkeypatch.setattr(pyautoattack.AutoAttack, "run_standard_evaluation",
                        lambda self, *a, **k: resumed_calls.append(list(self.attacks_to_run))
                        or original(self, *a, **k))
    resumed = run(tmp_path / "b.json")
    assert calls[0] == ["apgd-ce"] and ["apgd-ce"] not in resumed_calls
    assert torch.equal(full, resumed)
    with torch.no_grad():
        assert 0 < full.float().mean() <= (model(x).argmax(1) == y).float().mean()


@pytest.mark.slow
def test_bf16_training_attack_is_not_weaker_than_fp32(trained_model, test_batch):
    """The training attack under bf16 autocast finds adversarial examples as well as fp32:
    accuracy against it is not higher by more than noise (and the attack does bite)."""
    from core.training.precision import autocast

    model, _ = trained_model
    x, y = test_batch
    acc = {}
    for precision in ("fp32", "bf16"):
        with autocast(precision, torch.device("cpu")):
            x_adv = pgd_train(model, x, y, PGD(2 / 255, 0.5 / 255, 10, cross_entropy),
                              torch.Generator().manual_seed(0))
        with torch.no_grad():
            acc[precision] = (model(x_adv).argmax(1) == y).float().mean().item()
            clean = (model(x).argmax(1) == y).float().mean().item()
    assert acc["fp32"] < clean - 0.2, (clean, acc)
    assert acc["bf16"] <= acc["fp32"] + 0.05, acc  # ~1.3 binomial SE on 128 examples


@pytest.mark.slow
@pytest.mark.parametrize("classes", [2, 3, 8])
def test_autoattack_runs_on_fewer_than_ten_classes(classes):
    """Standard AA's 9 targets need 10 classes (an 8-class ImageFolder crashed in APGD-T): with
    fewer it takes every wrong class as a target, and below 4 classes runs without APGD-T."""
    import pyautoattack

    from core.attacks.autoattack import autoattack_correct, fit_to_classes

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, classes)).eval()
    x = torch.rand(6, 3, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    aa = pyautoattack.AutoAttack(model, norm="Linf", eps=8 / 255, version="standard")
    fit_to_classes(aa, classes)
    assert aa.apgd_targeted.n_target_classes == aa.fab.n_target_classes == classes - 1
    assert ("apgd-t" in aa.attacks_to_run) == (classes >= 4)
    flags = autoattack_correct(model, x, y, 8 / 255, 0, torch.zeros(6, dtype=torch.long), 6,
                               torch.device("cpu"))
    assert flags.shape == (6,) and flags.float().mean() < 1  # a linear model, eps 8/255


def test_autoattack_on_ten_classes_is_the_standard_one():
    import pyautoattack

    from core.attacks.autoattack import fit_to_classes

    aa = pyautoattack.AutoAttack(torch.nn.Linear(2, 10), norm="Linf", eps=8 / 255,
                                 version="standard")
    fit_to_classes(aa, 10)
    assert aa.apgd_targeted.n_target_classes == aa.fab.n_target_classes == 9
    assert aa.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]


class _Stop(Exception):
    pass


@pytest.mark.slow
def test_autoattack_numbers_and_resume_do_not_depend_on_the_eval_batch(
        trained_model, test_batch, tmp_path, monkeypatch):
    """The eval batch is probed from free GPU memory, so AutoAttack's chunks are eval.aa_chunk
    points, not eval batches: batch 4 and batch 16 attack the same chunks with the same
    attacks and give the same flags, and a run killed after its first attack then resumed
    with another batch attacks exactly what an uninterrupted one does (chunked by the batch,
    points 4-7 never saw APGD-CE)."""
    import pyautoattack

    import core.attacks.autoattack as autoattack
    from core.config import EvalCfg
    from core.infra.rundir import RunDir

    model, _ = trained_model
    x, y = test_batch[0][:16], test_batch[1][:16]
    seen: list[tuple[str, int]] = []
    original = pyautoattack.AutoAttack.run_standard_evaluation

    def recorded(self, xs, ys, batch_size=250, **kw):
        seen.append((self.attacks_to_run[0], len(xs)))
        return original(self, xs, ys, batch_size=batch_size, **kw)

    monkeypatch.setattr(pyautoattack.AutoAttack, "run_standard_evaluation", recorded)

    def aa(batch: int, folder) -> torch.Tensor:
        ctx = EvalContext(eps=EPS, seed=0, batch_size=batch, device=torch.device("cpu"),
                          eval=EvalCfg(aa_chunk=8), state=RunDir(folder))
        evaluate(model, x, y, ["aa"], ctx)
        return torch.tensor(__import__("json").loads(RunDir(folder).eval_flags("aa")
                                                     .read_text())["correct"])

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    flags_16 = aa(16, tmp_path / "a")
    calls_16, seen[:] = list(seen), []
    assert aa(4, tmp_path / "b").tolist() == flags_16.tolist()
    assert seen == calls_16
    assert ("apgd-ce", 8) in calls_16 and sum(n for a, n in calls_16 if a == "apgd-ce") == 16

    save, seen[:] = autoattack._save_state, []

    def killed_after_one(path, state):
        save(path, state)
        raise _Stop  # a kill right after the first attack's state is saved

    monkeypatch.setattr(autoattack, "_save_state", killed_after_one)
    with pytest.raises(_Stop):
        aa(4, tmp_path / "c")
    monkeypatch.setattr(autoattack, "_save_state", save)
    assert aa(16, tmp_path / "c").tolist() == flags_16.tolist()
    assert sorted(seen) == sorted(calls_16)
