"""Checks that reject a config before any work starts (each error names the fix)."""
from __future__ import annotations

from core.attacks import START
from core.config import RunConfig
from core.data import DATASETS
from core.errors import ConfigError
from core.evaluation import EVAL_ATTACKS
from core.models import timm_kwargs
from core.models.adapt import KERNEL_ADAPTERS
from core.models.sources import SOURCES, split_source
from core.registry import Registry, UnknownNameError
from core.training.objectives import objective_of
from core.training.precision import PRECISIONS
from core.training.schedules import OPTIMIZERS, SCHEDULES

PRM_MASKS = ("batch", "example")


def _known(registry: Registry, name: str, key: str) -> None:
    try:
        registry.get(name)
    except UnknownNameError as e:
        raise ConfigError(f"{key}: {e}") from None


def validate(cfg: RunConfig) -> None:
    _names(cfg)
    _threat_model(cfg)
    _training(cfg)
    _known(SOURCES, split_source(cfg.model.source)[0], "model.source")
    timm_kwargs(cfg.model, cfg.model.img_size or cfg.data.img_size, 10)  # arch, patch vs size


def _names(cfg: RunConfig) -> None:
    _known(DATASETS, cfg.data.name, "data.name")
    try:
        objective_of(cfg.method)  # the method's name, and its own hyper-parameters
    except UnknownNameError as e:
        raise ConfigError(f"method.name: {e}") from None
    _known(OPTIMIZERS, cfg.optim.name, "optim.name")
    _known(SCHEDULES, cfg.optim.schedule, "optim.schedule")
    _known(PRECISIONS, cfg.precision, "precision")
    _known(KERNEL_ADAPTERS, cfg.model.kernel_adapt, "model.kernel_adapt")
    for name in [*cfg.eval.attacks, cfg.eval.curve_attack]:
        _known(EVAL_ATTACKS, name, "eval.attacks")
    if cfg.attack.start is not None:
        _known(START, cfg.attack.start, "attack.start")
    if cfg.prm_mask not in PRM_MASKS:
        raise ConfigError(f"prm_mask={cfg.prm_mask!r}; valid: {', '.join(PRM_MASKS)}")


def _threat_model(cfg: RunConfig) -> None:
    for key, value in (("attack.eps", cfg.attack.eps), ("attack.step_size", cfg.attack.step_size)):
        if value >= 1:
            raise ConfigError(f"{key}={value:g} looks like pixel levels; pixels are in [0,1], "
                              f"write {key}={value:g}/255")
        if value < 0:
            raise ConfigError(f"{key}={value:g} is negative")
    if cfg.attack.steps < 0 or cfg.attack.restarts < 1:
        raise ConfigError("attack.steps must be >= 0 and attack.restarts >= 1")


def _training(cfg: RunConfig) -> None:
    if cfg.epochs < 1:
        raise ConfigError(f"epochs={cfg.epochs}; train for at least 1 epoch")
    if (cfg.ard or cfg.prm) and not 0 <= cfg.warmup_epochs <= cfg.epochs:
        raise ConfigError(f"warmup_epochs={cfg.warmup_epochs:g} is longer than training "
                          f"(epochs={cfg.epochs}); ARD/PRM warm up within training")
    mixing = cfg.aug.mix_prob > 0 and (cfg.aug.mixup_alpha > 0 or cfg.aug.cutmix_alpha > 0)
    if mixing and cfg.batch_size % 2:
        raise ConfigError(f"batch_size={cfg.batch_size} is odd; Mixup/CutMix need an even batch")
    if cfg.batch_size < 1 or (cfg.eval.batch_size is not None and cfg.eval.batch_size < 1):
        raise ConfigError("batch sizes must be >= 1")
