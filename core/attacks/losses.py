"""Per-example losses the attack maximises: cross-entropy, CW margin, KL (TRADES).

Each takes (logits [B, K], target) and returns [B]: summed over the batch, one example's
gradient never depends on the others, so dropping broken examples changes nothing else.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.infra.registry import Registry

ATTACK_LOSSES: Registry = Registry("attack loss")


def hard_labels(target: torch.Tensor) -> torch.Tensor:
    return target if target.dtype == torch.long else target.argmax(dim=1)


@ATTACK_LOSSES.register("ce")
def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CE against hard labels [B] or soft targets [B, K] (Mixup/CutMix)."""
    if target.dtype == torch.long:
        return F.cross_entropy(logits, target, reduction="none")
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1)


@ATTACK_LOSSES.register("cw")
def cw_margin(logits: torch.Tensor, target: torch.Tensor, kappa: float = 50.0) -> torch.Tensor:
    """Carlini-Wagner margin: max wrong logit - true logit, capped at kappa (nothing gained by
    pushing an example further once it is misclassified by kappa)."""
    y = hard_labels(target)
    true = logits.gather(1, y[:, None]).squeeze(1)
    wrong = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return (wrong - true).clamp(max=kappa)


@ATTACK_LOSSES.register("kl")
def kl_to_clean(logits: torch.Tensor, clean_probs: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || p_adv), TRADES' inner loss; `clean_probs` are fixed targets."""
    log_p = clean_probs.clamp_min(1e-12).log()
    return (clean_probs * (log_p - F.log_softmax(logits, dim=1))).sum(1)
