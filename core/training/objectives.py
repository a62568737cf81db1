"""Training objectives sharing the one PGD: clean (natural), AT (Madry), TRADES, MART.

Targets are labels [B], or soft [B, K] under Mixup/CutMix; the adversarial example is made
against the same (mixed) target the loss uses, as in the official code. Each objective
declares its own hyper-parameters (read from its config group, core/conf/method/<name>.yaml)
and its facts: whether it attacks, what it costs beyond PGD-k AT, whether the official code
mixed for it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.attacks import cross_entropy, kl_to_clean
from core.attacks.losses import hard_labels
from core.infra.errors import ConfigError
from core.infra.registry import Registry

# make_adv(loss, target, start) -> x_adv: the configured PGD with its ARD/PRM plug-ins;
# `start` is the method's own (uniform for AT, small Gaussian for TRADES and MART).
MakeAdv = Callable[[Callable, torch.Tensor, str], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """loss(model, x, target, make_adv, **hparams) -> (scalar loss, logits for train accuracy).

    hparams: its hyper-parameters (names), read from the `method` config group.
    attacks: whether it makes adversarial examples (clean training does not).
    extra_passes: forward-pass equivalents per image beyond one PGD-k AT step's (2k + 3):
      a clean forward and its backward is 3 (TRADES, MART).
    official_mix: the official code applied Mixup/CutMix to it (`aug.mix_at_only=true`
      reproduces that; by default every objective sees the same augmentation).
    check(hparams): raises ConfigError for values that cannot work.
    """

    loss: Callable
    hparams: tuple[str, ...] = ()
    attacks: bool = True
    extra_passes: int = 0
    official_mix: bool = False
    check: Callable[[Mapping[str, Any]], None] = lambda hparams: None

    def hparams_of(self, method: Mapping[str, Any], name: str) -> dict[str, Any]:
        """This objective's hyper-parameters from the `method` config block; anything else
        there is an error naming what it takes."""
        given = {k: v for k, v in method.items() if k != "name"}
        takes = ", ".join(self.hparams) or "none"
        for k in given:
            if k not in self.hparams:
                raise ConfigError(f"method.{k} is not a hyper-parameter of '{name}' (it takes: "
                                  f"{takes})")
        for k in self.hparams:
            if k not in given:
                raise ConfigError(f"method '{name}' needs method.{k} (it takes: {takes}); "
                                  f"set it in core/conf/method/{name}.yaml or with +method.{k}=")
        self.check(given)
        return given


OBJECTIVES: Registry[Objective] = Registry("method")


def objective_of(method: Mapping[str, Any]) -> tuple[Objective, dict[str, Any]]:
    """The objective a `method` config block names, and its checked hyper-parameters."""
    name = method.get("name")
    objective = OBJECTIVES.get(str(name))
    return objective, objective.hparams_of(method, str(name))


def _beta_nonnegative(hparams: Mapping[str, Any]) -> None:
    if hparams["beta"] < 0:
        raise ConfigError(f"method.beta={hparams['beta']:g} is negative; TRADES and MART need "
                          "beta >= 0 (the paper uses 6)")


def _clean(model: nn.Module, x, target, make_adv: MakeAdv):
    logits = model(x)
    return cross_entropy(logits, target).mean(), logits


def _at(model: nn.Module, x, target, make_adv: MakeAdv):
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
OBJECTIVES.add("at", Objective(_at, official_mix=True))
OBJECTIVES.add("trades", Objective(_trades, hparams=("beta",), extra_passes=3,
                                   check=_beta_nonnegative))
OBJECTIVES.add("mart", Objective(_mart, hparams=("beta",), extra_passes=3,
                                 check=_beta_nonnegative))
