"""Learning-rate schedules as pure functions of the fractional epoch t, and the optimizers."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from core.config import OptimCfg
from core.infra.registry import Registry

Schedule = Callable[[float, OptimCfg, int], float]
SCHEDULES: Registry[Schedule] = Registry("lr schedule")
OPTIMIZERS: Registry = Registry("optimizer")


@SCHEDULES.register("piecewise")
def piecewise(t: float, cfg: OptimCfg, epochs: int) -> float:
    """lr, then x decay_factor at each of epochs - d (official: 40 epochs -> 35 and 38,
    80 -> 75 and 78), t counted from 0 in fractions of an epoch."""
    drops = sum(t >= epochs - d for d in cfg.decay_before_end)
    return cfg.lr * cfg.decay_factor**drops


@SCHEDULES.register("cyclic")
def cyclic(t: float, cfg: OptimCfg, epochs: int) -> float:
    """One cycle: linear 0 -> lr at cyclic_peak of training, then linear back to 0."""
    return float(np.interp(t, [0, epochs * cfg.cyclic_peak, epochs], [0, cfg.lr, 0]))


@SCHEDULES.register("constant")
def constant(t: float, cfg: OptimCfg, epochs: int) -> float:
    return cfg.lr


@OPTIMIZERS.register("sgd")
def sgd(params, cfg: OptimCfg) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(params, cfg: OptimCfg) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas),
                             weight_decay=cfg.weight_decay)


def build_optimizer(model: nn.Module, cfg: OptimCfg) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name)(model.parameters(), cfg)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
