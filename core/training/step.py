"""One optimizer step: augmentation, the attack with its ARD/PRM plug-ins, the objective, the
update. The same on 1 or N ranks: every random draw is made for the global batch and each
rank takes its rows (core.infra.distributed.Shard); gradients are averaged by DDP with each rank's
loss weighted by its share of the global batch.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from core.attacks import PGD, Plugins, pgd_train
from core.attacks.losses import hard_labels
from core.config import RunConfig
from core.data import Mixer, crop_flip
from core.infra.distributed import Shard, World
from core.infra.seeding import derive_seed, generator
from core.training.ard_prm import ramp
from core.training.objectives import objective_of
from core.training.precision import autocast, matmul_precision
from core.training.schedules import SCHEDULES, set_lr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepAt:
    """Where a step is: epoch, step within it, steps per epoch, and this rank's rows."""

    epoch: int
    step: int
    steps: int
    shard: Shard
    world: World


def optimizer_step(cfg: RunConfig, t, mixer: Mixer, x: torch.Tensor, y: torch.Tensor,
                   at: StepAt, device: torch.device, progress) -> bool:
    """One optimizer step; False (and nothing applied) if the loss or gradient is not finite."""
    epoch_t = at.epoch + at.step / at.steps
    set_lr(t.opt, SCHEDULES.get(cfg.optim.schedule)(epoch_t, cfg.optim, cfg.epochs))
    g = generator(cfg.seed, "step", at.epoch, at.step, device=device)
    x = crop_flip(x.float() / 255, cfg.aug.crop_padding, cfg.aug.flip, g, at.shard)
    objective, hparams = objective_of(cfg.method)
    use_mix = not cfg.aug.mix_at_only or objective.official_mix
    x, target = mixer(x, y, derive_seed(cfg.seed, "mix", at.epoch, at.step), enabled=use_mix)
    make_adv = _adversary(cfg, t, x, ramp(epoch_t, cfg.warmup_epochs), g, device, at.shard)
    torch.manual_seed(derive_seed(cfg.seed, "model", at.epoch, at.step))  # timm's drop path
    t.model.train()
    with matmul_precision(cfg.precision):  # the update's backward at the step's precision too
        with autocast(cfg.precision, device):
            loss, logits = objective.loss(t.trainer, x, target, make_adv, **hparams)
        t.opt.zero_grad(set_to_none=True)
        share = len(x) * at.world.size / at.shard.total  # DDP averages: weigh by rows held
        (loss * share if at.world.size > 1 else loss).backward()
    max_norm = cfg.optim.grad_clip_norm if cfg.optim.grad_clip else float("inf")
    grad_norm = nn.utils.clip_grad_norm_(t.model.parameters(), max_norm)
    sums = at.world.all_sum(torch.stack([loss.detach().float() * len(x),
                                         (logits.argmax(1) == hard_labels(target)).sum().float()]))
    if not bool(torch.isfinite(sums[0]) & torch.isfinite(grad_norm)):  # one sync a step
        return _diverged(t, progress, at, sums[0] / at.shard.total, grad_norm)
    t.updating = True
    t.opt.step()
    if t.ema is not None:
        t.ema.update(t.model, step=progress.step)
    _count(t, sums, grad_norm.detach())
    t.last = {"loss": sums[0] / at.shard.total, "grad_norm": grad_norm.detach(),
              "lr": t.opt.param_groups[0]["lr"]}  # read (a sync) only when tracking logs
    progress.epoch_steps += 1
    progress.epoch_seen += at.shard.total
    progress.images += at.shard.total
    t.updating = False
    return True


def _diverged(t, progress, at: StepAt, loss: torch.Tensor, grad_norm: torch.Tensor) -> bool:
    progress.status = "diverged"
    progress.diverged_at = {"epoch": at.epoch, "step": at.step, "loss": float(loss),
                            "grad_norm": float(grad_norm)}
    log.warning("non-finite loss or gradient at epoch %d step %d: %s", at.epoch, at.step,
                progress.diverged_at)
    t.opt.zero_grad(set_to_none=True)
    return False


def _count(t, sums: torch.Tensor, grad_norm: torch.Tensor) -> None:
    """Epoch sums, kept on the device (global: every rank holds the same)."""
    m = t.meter
    m["loss"] = m.get("loss", 0.0) + sums[0]
    m["correct"] = m.get("correct", 0) + sums[1]
    m["grad_norm"] = m.get("grad_norm", 0.0) + grad_norm
    m["grad_norm_max"] = torch.maximum(m.get("grad_norm_max", grad_norm), grad_norm)


def _adversary(cfg: RunConfig, t, x: torch.Tensor, r: float, g: torch.Generator,
               device: torch.device, shard: Shard):
    """make_adv(loss, target, start) for this step: the configured PGD with ARD/PRM at r(t)."""
    plugins = Plugins()
    if t.prm is not None:
        plugins.mask = t.prm.mask_fn(r, len(x), g, device, shard)
    if t.ard is not None:
        plugins.input_grad = lambda: t.ard.dropping(r, g)

    def make_adv(loss, target: torch.Tensor, start: str) -> torch.Tensor:
        attack = PGD(cfg.attack.eps, cfg.attack.step_size, cfg.attack.steps, loss,
                     start=cfg.attack.start or start)
        return pgd_train(t.model, x, target, attack, g, plugins, shard)

    return make_adv
