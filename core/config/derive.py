"""Configs made from configs: `changed` (a copy with dotted-path changes) and the clean
pretraining run that `model.source: pretrain` stands for."""
from __future__ import annotations

from typing import Any

from core.config.identity import runtime_dict
from core.config.schema import RunConfig, from_dict, to_dict


def changed(cfg: RunConfig, **changes: Any) -> RunConfig:
    """A copy of `cfg` with dotted-path changes: changed(cfg, **{'optim.lr': 0.01})."""
    d = to_dict(cfg)
    for dotted, value in changes.items():
        _set(d, dotted, value)
    return from_dict(d)


def _set(d: dict, dotted: str, value: Any) -> None:
    """Set a dotted path; only the open `method` group takes keys it does not have yet."""
    *parents, leaf = dotted.split(".")
    for p in parents:
        d = d[p]
    if leaf not in d and parents != ["method"]:
        raise KeyError(dotted)
    d[leaf] = value


def _get(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d[part]
    return d


# The clean run that `model.source: pretrain` stands for, declared: the schema's defaults,
# the fine-tuning run's runtime (all of it), plus what pretraining depends on. Every
# fine-tuning cell that shares these shares one pretraining run, as the paper's cells share
# one ImageNet checkpoint.
PRETRAIN_KEEPS = ("model.preset", "model.arch", "model.img_size", "model.patch_size",
                  "model.window_size", "data.img_size", "aug.crop_padding", "aug.flip",
                  "eval.curve_n", "pretrain", "scale_name", "precision")


PRETRAIN_TAKES = {"data.name": "data", "data.train_subset": "train_subset", "epochs": "epochs",
                  "batch_size": "batch_size", "optim.name": "optim", "optim.lr": "lr",
                  "optim.weight_decay": "weight_decay", "seed": "seed"}  # from cfg.pretrain


PRETRAIN_SETS = {"model.source": "none", "aug.preset": "none", "method": {"name": "clean"},
                 "optim.schedule": "cyclic", "eval.preset": "clean", "eval.attacks": ["clean"]}


def pretrain_config(cfg: RunConfig) -> RunConfig:
    src, d = to_dict(cfg), to_dict(RunConfig())
    changes = {k: _get(src, k) for k in PRETRAIN_KEEPS}
    changes.update({k: src["pretrain"][v] for k, v in PRETRAIN_TAKES.items()})
    changes.update({**PRETRAIN_SETS, **runtime_dict(cfg)})
    if cfg.pretrain.data != cfg.data.name:  # the fine-tuning data's folder is not this set's
        changes["data.root"] = None
    for dotted, value in changes.items():
        _set(d, dotted, value)
    return from_dict(d)
