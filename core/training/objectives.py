"""Training objectives sharing the one PGD: clean (natural), AT (Madry), TRADES, MART.

Targets are labels [B], or soft [B, K] under Mixup/CutMix; the adversarial example is made
against the same (mixed) target the loss uses, as in the official code.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.attacks import cross_entropy, kl_to_clean
from core.attacks.losses import hard_labels
from core.registry import Registry

# make_adv(loss, target, start) -> x_adv: the configured PGD with its ARD/PRM plug-ins;
# `start` is the method's own (uniform for AT, small Gaussian for TRADES and MART).
MakeAdv = Callable[[Callable, torch.Tensor, str], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """loss(model, x, target, make_adv, beta) -> (scalar loss, logits for train accuracy)."""

    loss: Callable
    attacks: bool = True       # False: no adversarial examples (clean training)


OBJECTIVES: Registry[Objective] = Registry("method")


def _clean(model: nn.Module, x, target, make_adv: MakeAdv, beta: float):
    logits = model(x)
    return cross_entropy(logits, target).mean(), logits


def _at(model: nn.Module, x, target, make_adv: MakeAdv, beta: float):
    logits = model(make_adv(cross_entropy, target, "uniform"))
    return cross_entropy(logits, target).mean(), logits


def trades_loss(logits_nat: torch.Tensor, logits_adv: torch.Tensor, target: torch.Tensor,
                beta: float) -> torch.Tensor:
    """CE(clean) + beta * KL(p_clean || p_adv), the KL summed over classes, batch mean."""
    kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_nat, 1), reduction="batchmean")
    return cross_entropy(logits_nat, target).mean() + beta * kl


def _trades(model: nn.Module, x, target, make_adv: MakeAdv, beta: float):
    logits_nat = model(x)
    # The attack's KL target is the clean prediction, computed once (not at every step).
    x_adv = make_adv(kl_to_clean, F.softmax(logits_nat.detach().float(), 1), "gaussian")
    logits_adv = model(x_adv)
    return trades_loss(logits_nat, logits_adv, target, beta), logits_adv


def mart_loss(logits_nat: torch.Tensor, logits_adv: torch.Tensor, target: torch.Tensor,
              beta: float) -> torch.Tensor:
    """MART (Wang et al. 2020): boosted CE on the adversarial example plus a KL term weighted
    by how unsure the clean prediction is. Soft targets: CE against the target, margin and
    weight taken at the target's top class (one-hot targets give the paper's formula)."""
    y = hard_labels(target)
    adv_probs = F.softmax(logits_adv, dim=1)
    top2 = adv_probs.argsort(dim=1)[:, -2:]
    runner_up = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    boosted = cross_entropy(logits_adv, target) + F.nll_loss(
        torch.log(1.0001 - adv_probs + 1e-12), runner_up, reduction="none")
    nat_probs = F.softmax(logits_nat, dim=1)
    true_probs = (nat_probs * _soft(target, nat_probs.shape[1])).sum(dim=1)
    kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(dim=1)
    return boosted.mean() + beta * (kl * (1.0000001 - true_probs)).mean()


def _soft(target: torch.Tensor, classes: int) -> torch.Tensor:
    return F.one_hot(target, classes).float() if target.dtype == torch.long else target


def _mart(model: nn.Module, x, target, make_adv: MakeAdv, beta: float):
    x_adv = make_adv(cross_entropy, target, "gaussian")
    logits_adv, logits_nat = model(x_adv), model(x)
    return mart_loss(logits_nat, logits_adv, target, beta), logits_adv


OBJECTIVES.add("clean", Objective(_clean, attacks=False))
OBJECTIVES.add("at", Objective(_at))
OBJECTIVES.add("trades", Objective(_trades))
OBJECTIVES.add("mart", Objective(_mart))
