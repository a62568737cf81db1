"""Checks that reject a config before any work starts (each error names the fix).

`validate(cfg)` checks the values (names, ranges declared on the schema's fields, their
combinations); `check_inputs(cfg)` checks what the run and every run it needs first will
read (data roots, weight files, the device) and the folder it will write.
"""
from __future__ import annotations

import operator
import os
from pathlib import Path

from core.attacks import START
from core.config import BOUNDS, RunConfig, fields_with
from core.data import DATASETS
from core.data.points import TEST_POINTS
from core.data.sets import data_missing
from core.evaluation import EVAL_ATTACKS
from core.infra.errors import ConfigError, DataNotFoundError, UserError
from core.infra.registry import Registry, UnknownNameError
from core.models import timm_kwargs
from core.models.adapt import KERNEL_ADAPTERS, POS_RESIZE
from core.models.build import DROP_PATH_ON
from core.models.sources import SOURCES, source_of, split_source, weights_missing
from core.training.objectives import objective_of
from core.training.precision import PRECISIONS
from core.training.schedules import OPTIMIZERS, SCHEDULES
from core.training.tracking import TRACKERS, missing_package

PRM_MASKS = ("batch", "example")
# (ge, gt, le, lt) of core.config's field bounds
COMPARISONS = ((">=", operator.ge), (">", operator.gt), ("<=", operator.le), ("<", operator.lt))


def _known(registry: Registry, name: str, key: str) -> None:
    try:
        registry.get(name)
    except UnknownNameError as e:
        raise ConfigError(f"{key}: {e}") from None


def validate(cfg: RunConfig) -> None:
    _ranges(cfg)
    _names(cfg)
    _threat_model(cfg)
    _training(cfg)
    _known(SOURCES, split_source(cfg.model.source)[0], "model.source")
    timm_kwargs(cfg.model, cfg.model.img_size or cfg.data.img_size, 10)  # arch, patch vs size


def _ranges(cfg: RunConfig) -> None:
    """Every field's declared range (core.config `param(..., ge=, gt=, le=, lt=)`)."""
    for name, value, bounds in fields_with(cfg, BOUNDS):
        if value is None or isinstance(value, bool):
            continue
        for bound, (word, holds) in zip(bounds, COMPARISONS, strict=True):
            if bound is not None and not holds(value, bound):
                raise ConfigError(f"{name}={value:g} is out of range: it must be {word} {bound:g}"
                                  f" (the default is {_default_of(name)})")


def _default_of(dotted: str) -> str:
    node = RunConfig()
    for part in dotted.split("."):
        node = getattr(node, part)
    return "null" if node is None else f"{node:g}" if isinstance(node, float) else str(node)


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
    _known(POS_RESIZE, cfg.model.pos_resize, "model.pos_resize")
    _known(DROP_PATH_ON, cfg.model.drop_path_on, "model.drop_path_on")
    _known(TEST_POINTS, cfg.eval.points, "eval.points")
    for name in cfg.track:
        _known(TRACKERS, name, "track")
    for name in [*cfg.eval.attacks, cfg.eval.curve_attack]:
        _known(EVAL_ATTACKS, name, "eval.attacks")
    if cfg.attack.start is not None:
        _known(START, cfg.attack.start, "attack.start")
    if cfg.prm_mask not in PRM_MASKS:
        raise ConfigError(f"prm_mask={cfg.prm_mask!r}; valid: {', '.join(PRM_MASKS)}")


def _threat_model(cfg: RunConfig) -> None:
    for key, value in (("attack.eps", cfg.attack.eps), ("attack.step_size", cfg.attack.step_size),
                       ("eval.step_size", cfg.eval.step_size)):
        if value >= 1:
            raise ConfigError(f"{key}={value:g} looks like pixel levels; pixels are in [0,1], "
                              f"write {key}={value:g}/255")
        if value < 0:
            raise ConfigError(f"{key}={value:g} is negative; write e.g. {key}=8/255")


def _training(cfg: RunConfig) -> None:
    if (cfg.ard or cfg.prm) and not 0 <= cfg.warmup_epochs <= cfg.epochs:
        raise ConfigError(f"warmup_epochs={cfg.warmup_epochs:g} is longer than training "
                          f"(epochs={cfg.epochs}); ARD/PRM warm up within training")
    mixing = cfg.aug.mix_prob > 0 and (cfg.aug.mixup_alpha > 0 or cfg.aug.cutmix_alpha > 0)
    if mixing and cfg.batch_size % 2:
        raise ConfigError(f"batch_size={cfg.batch_size} is odd; Mixup/CutMix need an even batch")
    if cfg.data.drop_last and cfg.data.train_subset and cfg.data.train_subset < cfg.batch_size:
        raise ConfigError(f"data.train_subset={cfg.data.train_subset} is less than one batch "
                          f"(batch_size={cfg.batch_size}); lower batch_size or keep the last "
                          "batch with data.drop_last=false")
    img = cfg.model.img_size or cfg.data.img_size
    if cfg.prm and cfg.prm_cell and img % cfg.prm_cell:
        raise ConfigError(f"prm_cell={cfg.prm_cell} does not divide the {img}-pixel image; pick "
                          "a divisor, or prm_cell=null for the model's own patches")
    if cfg.eval.n_aa is not None and cfg.eval.n is not None and cfg.eval.n_aa > cfg.eval.n:
        raise ConfigError(f"eval.n_aa={cfg.eval.n_aa} is more than eval.n={cfg.eval.n}; "
                          "AutoAttack runs on the first n_aa of the eval.n points")


def check_inputs(cfg: RunConfig, device: bool = True) -> None:
    """What `cfg`'s run and every run it needs first (its pretraining) will read, before any
    of them starts: the data sets, the weights, the device (unless it runs elsewhere); and
    that its folder is writable."""
    if device:
        check_device(cfg.device)
    check_writable(cfg.runs_dir)
    problem = data_missing(cfg.data) or TEST_POINTS.get(cfg.eval.points).missing(cfg.data)
    if problem:
        raise DataNotFoundError(problem)
    needed = source_of(cfg.model.source).needs(cfg)
    if needed is not None:
        validate(needed)
        check_inputs(needed, device)
        return
    problem = weights_missing(cfg.model.source, cfg.runs_dir) or missing_package(cfg.track)
    if problem:
        raise UserError(problem)


def check_device(name: str) -> None:
    import torch

    if name in ("auto", "cpu"):
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N"
                          ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(f"device={name} but no CUDA GPU is visible here; use device=auto "
                              "(a GPU where there is one) or device=cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device={name} but only {count} GPU(s) are visible "
                              f"(cuda:0..cuda:{count - 1})")
    elif device.type != "cpu":
        raise ConfigError(f"device={name!r}: only cpu and cuda devices are supported")


def check_writable(runs_dir: str) -> None:
    path = Path(runs_dir).expanduser()
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"runs_dir={runs_dir} cannot be written here ({existing} is not a "
                        "writable folder); give a folder you can write: runs_dir=DIR to "
                        "core.train, --runs-dir DIR to ablations.run")
