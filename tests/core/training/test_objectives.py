"""TRADES and MART against hand computations; schedules; ARD and PRM for every family."""
from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from core.config import OptimCfg
from core.models import family_of
from core.models.families import FAMILIES
from core.training.ard_prm import ARD, PRM, ramp
from core.training.objectives import OBJECTIVES, mart_loss, trades_loss
from core.training.schedules import SCHEDULES

LOGITS_NAT = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
LOGITS_ADV = torch.tensor([[0.5, 1.5, -0.5], [0.0, 1.0, -1.0]])
Y = torch.tensor([0, 2])


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_trades_by_hand():
    pn, pa = _softmax(LOGITS_NAT.numpy()), _softmax(LOGITS_ADV.numpy())
    ce = -np.log(pn[[0, 1], [0, 2]]).mean()
    kl = (pn * (np.log(pn) - np.log(pa))).sum(axis=1).mean()
    got = trades_loss(LOGITS_NAT, LOGITS_ADV, F.one_hot(Y, 3).float(), beta=6.0)
    assert got.item() == pytest.approx(ce + 6.0 * kl, rel=1e-5)


def test_trades_with_beta_zero_is_cross_entropy():
    """The full objective, attack included: beta 0 leaves only CE on the clean examples."""
    torch.manual_seed(0)
    model = timm.create_model("vitadv_vit_micro").eval()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([1, 2, 3, 4])
    target = F.one_hot(y, 10).float()
    make_adv = lambda loss, t, start: x.flip(0)  # any adversarial example  # noqa: E731
    loss, _ = OBJECTIVES.get("trades").loss(model, x, target, make_adv, 0.0)
    assert loss.item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)


def test_mart_by_hand():
    pn, pa = _softmax(LOGITS_NAT.numpy()), _softmax(LOGITS_ADV.numpy())
    y = Y.numpy()
    total = 0.0
    for i in range(2):
        others = [k for k in range(3) if k != y[i]]
        runner = max(others, key=lambda k: pa[i, k])
        bce = -np.log(pa[i, y[i]]) - np.log(1.0001 - pa[i, runner] + 1e-12)
        kl = (pn[i] * (np.log(pn[i]) - np.log(pa[i] + 1e-12))).sum()
        total += bce + 6.0 * kl * (1.0000001 - pn[i, y[i]])
    got = mart_loss(LOGITS_NAT, LOGITS_ADV, F.one_hot(Y, 3).float(), beta=6.0)
    assert got.item() == pytest.approx(total / 2, rel=1e-5)


def test_piecewise_schedule_decays_at_epochs_minus_5_and_2():
    cfg = OptimCfg(lr=0.1)
    lr = lambda t: SCHEDULES.get("piecewise")(t, cfg, 40)  # noqa: E731
    assert [lr(0), lr(34.99), lr(35.0), lr(37.99), lr(38.0), lr(39.9)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert SCHEDULES.get("piecewise")(75.0, cfg, 80) == pytest.approx(0.01)


def test_cyclic_schedule_is_one_cycle():
    cfg = OptimCfg(lr=4e-4, cyclic_peak=0.4)
    lr = lambda t: SCHEDULES.get("cyclic")(t, cfg, 40)  # noqa: E731
    assert [lr(0), lr(8), lr(16), lr(28), lr(40)] == pytest.approx([0, 2e-4, 4e-4, 2e-4, 0])


def test_ramp():
    assert [ramp(0, 10), ramp(2.5, 10), ramp(10, 10), ramp(30, 10), ramp(5, 0)] == [
        0, 0.25, 1, 1, 1]


# every family's own example (a new family is tested for free), and a real DeiT at 16 px
FAMILY_ARCHS = [f.example for f in FAMILIES.values()] + ["deit_tiny_patch16_224"]


def _model(arch):
    torch.manual_seed(0)
    kwargs = {"img_size": 16, "patch_size": 4, "num_classes": 10} if "deit" in arch else {}
    return timm.create_model(arch, **kwargs).eval()


def _input_grad(model, x, y, ctx=None):
    x = x.clone().requires_grad_(True)
    with ctx if ctx is not None else torch.enable_grad():
        loss = F.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, x)[0]


@pytest.mark.parametrize("arch", FAMILY_ARCHS)
def test_ard_keep_one_changes_nothing_keep_zero_cuts_every_attention_branch(arch):
    model = _model(arch)
    x, y = torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 2])
    plain = _input_grad(model, x, y)
    ard = ARD(model, family_of(model))
    g = torch.Generator().manual_seed(0)
    assert torch.equal(_input_grad(model, x, y, ard.dropping(1.0, g)), plain)
    zero = _input_grad(model, x, y, ard.dropping(0.0, g))
    ard.remove()
    # reference: the same model with every attention branch detached (skip paths only)
    branches = family_of(model).attention_branches(model)
    handles = [m.register_forward_hook(lambda mod, i, out: out.detach()) for m in branches]
    detached = _input_grad(model, x, y)
    for h in handles:
        h.remove()
    assert torch.allclose(zero, detached, atol=1e-7)
    assert not torch.allclose(zero, plain)
    assert torch.equal(_input_grad(model, x, y), plain)  # hooks removed, nothing left behind


def test_ard_draws_one_coin_per_block_per_pass():
    model = _model("vitadv_vit_micro")
    ard = ARD(model, family_of(model))
    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    with ard.dropping(0.5, g):
        model(torch.rand(1, 3, 16, 16))
    ref = torch.Generator().manual_seed(0)
    ref.set_state(before)
    torch.rand(len(model.blocks), generator=ref)
    assert torch.equal(g.get_state(), ref.get_state())


@pytest.mark.parametrize("arch", FAMILY_ARCHS)
@pytest.mark.parametrize("r", [0.0, 0.3, 0.75, 1.0])
def test_prm_masks_floor_p_times_one_minus_r_patches(arch, r):
    model = _model(arch)
    prm = PRM(model)
    (rows, cols), (ph, pw) = (prm.rows, prm.cols), (prm.ph, prm.pw)
    assert rows * ph == 16 and cols * pw == 16
    k = math.floor(prm.num_patches * (1 - r) + 1e-9)
    mask_fn = prm.mask_fn(r, 5, torch.Generator().manual_seed(0), torch.device("cpu"))
    masks = [mask_fn(step) for step in range(3)]
    if k == 0:
        assert masks == [None] * 3
        return
    for m in masks:
        assert m.shape == (1, 1, 16, 16)
        patches = m.view(rows, ph, cols, pw).permute(0, 2, 1, 3).reshape(rows * cols, -1)
        assert set(patches.unique(dim=1).flatten().tolist()) <= {0.0, 1.0}
        assert (patches.sum(1) == 0).sum() == k  # whole patches, exactly k of them
    if 0 < k < prm.num_patches:
        assert not torch.equal(masks[0], masks[1])  # a fresh draw at every step


def test_prm_per_example_masks_differ_across_the_batch():
    prm = PRM(_model("vitadv_vit_micro"), per_example=True)
    m = prm.mask_fn(0.5, 4, torch.Generator().manual_seed(0), torch.device("cpu"))(0)
    assert m.shape == (4, 1, 16, 16)
    assert (m.view(4, -1) == 0).sum(1).tolist() == [8 * 16] * 4
    assert not torch.equal(m[0], m[1])
