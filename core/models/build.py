"""Build the model a config asks for: timm architecture + weight source + [0,1] normalisation."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import timm
import torch
from torch import nn

import core.models.tiny  # noqa: F401  (registers the tiny models with timm)
from core.config import ModelCfg
from core.infra.errors import ConfigError
from core.infra.registry import Registry
from core.infra.seeding import derive_seed, global_rngs
from core.models.adapt import adapt_patch_kernel, adapt_pos_embed
from core.models.families import (
    Family,
    classifier_of,
    family_of,
    head_classes,
    meta_model,
    mlp_drop_paths,
)
from core.models.normalize import Normalized
from core.models.sources import load_weights
from core.models.weights import Weights


@dataclass
class BuiltModel:
    model: Normalized
    family: Family
    weights: Weights


def _attention_only(net: nn.Module, arch: str) -> None:
    blocks = mlp_drop_paths(net)
    if not blocks:
        raise ConfigError(f"model.drop_path_on=attention: {arch} has no drop path of its own on "
                          "the MLP branch to leave out; set model.drop_path_on=both")
    for block, name in blocks:
        setattr(block, name, nn.Identity())


# where drop path acts: timm's both residual branches, or the attention branch only (the
# official code's Swin)
DROP_PATH_ON: Registry[Callable[[nn.Module, str], None]] = Registry("drop-path branches")
DROP_PATH_ON.add("both", lambda net, arch: None)
DROP_PATH_ON.add("attention", _attention_only)


def check_arch(arch: str) -> None:
    if not timm.is_model(arch):
        raise ConfigError(f"unknown model architecture '{arch}'; pick a preset with model=NAME "
                          "or any timm name (timm.list_models('vit_*'))")


def timm_kwargs(cfg: ModelCfg, img_size: int, num_classes: int) -> tuple[dict, Family]:
    """The timm.create_model kwargs for this resolution, and the architecture's family."""
    check_arch(cfg.arch)
    meta = meta_model(cfg.arch)
    family = family_of(meta)
    patch = cfg.patch_size or meta.patch_embed.patch_size[0]
    if img_size % patch:
        raise ConfigError(f"patch size {patch} does not divide image size {img_size}; "
                          f"set model.patch_size to a divisor of {img_size}")
    kwargs = dict(img_size=img_size, patch_size=patch, num_classes=num_classes,
                  drop_path_rate=cfg.drop_path)
    kwargs.update(family.extra_kwargs(meta, cfg.window_size, img_size // patch))
    return kwargs, family


def build_model(cfg: ModelCfg, img_size: int, num_classes: int, runs_dir: str = "runs",
                source: str | None = None, seed: int = 0) -> BuiltModel:
    """`source` overrides cfg.source (the training entry resolves `pretrain` to `run:<id>`).
    Random initialisation (the whole net, or a re-initialised head) draws from `seed`, never
    from whatever the process's global RNG holds, so a run is the same in any process."""
    kwargs, family = timm_kwargs(cfg, img_size, num_classes)
    weights = load_weights(source or cfg.source, runs_dir)
    with global_rngs(derive_seed(seed, "init")):
        if weights.state_dict is None:
            net = timm.create_model(cfg.arch, pretrained=False, **kwargs)
        else:
            net = _create_with_weights(cfg, kwargs, family, weights)
    DROP_PATH_ON.get(cfg.drop_path_on)(net, cfg.arch)
    mean = weights.mean or net.pretrained_cfg.get("mean")
    std = weights.std or net.pretrained_cfg.get("std")
    weights.mean, weights.std = tuple(mean), tuple(std)
    return BuiltModel(Normalized(net, mean, std), family, weights)


def _create_with_weights(cfg: ModelCfg, kwargs: dict, family: Family,
                         weights: Weights) -> nn.Module:
    """Let timm load the weights (its filters resize Swin's bias tables; it re-initialises the
    head when the class count differs), after fitting the patch kernel and the position grid
    our way."""
    _check_is_of(cfg.arch, kwargs, weights)
    patch = kwargs["patch_size"]
    sd = adapt_patch_kernel(weights.state_dict, (patch, patch), cfg.kernel_adapt)
    sd = _fit_pos_embed(cfg, kwargs, sd)
    overlay = dict(state_dict=sd, source="", custom_load=False,
                   num_classes=_checkpoint_classes(cfg.arch, kwargs, sd))
    extra = {"pretrained_filter_fn": family.pretrained_filter} if family.pretrained_filter else {}
    try:
        return timm.create_model(cfg.arch, pretrained=True, pretrained_cfg_overlay=overlay,
                                 **kwargs, **extra)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"weights {weights.resolved} do not fit {cfg.arch}: {first}") from None


def _check_is_of(arch: str, kwargs: dict, weights: Weights) -> None:
    """Weights of another architecture (ConViT's into a ViT, Swin's into a ViT) lack tensors
    the model has; say so before the kernel and grid fitting fail on them half-way."""
    head = classifier_of(arch) + "."
    body = [k for k in meta_model(arch, **kwargs).state_dict() if not k.startswith(head)]
    missing = [k for k in body if k not in weights.state_dict]
    if missing:
        raise ConfigError(f"weights {weights.resolved} do not fit {arch}: they are not {arch} "
                          f"weights ({len(missing)} of its {len(body)} tensors are not in "
                          f"them, first: {missing[0]}); give weights of a {arch} "
                          "(model.source=)")


def _fit_pos_embed(cfg: ModelCfg, kwargs: dict, state_dict: dict) -> dict:
    """Resize the checkpoint's position grid to the model's, as model.pos_resize says."""
    target = meta_model(cfg.arch, **kwargs)
    pos = getattr(target, "pos_embed", None)
    if not isinstance(pos, torch.Tensor):
        return state_dict
    return adapt_pos_embed(state_dict, pos.shape, tuple(target.patch_embed.grid_size),
                           cfg.pos_resize)


def _checkpoint_classes(arch: str, kwargs: dict, sd: dict) -> int:
    """The class count timm is told the checkpoint has: its head's. A checkpoint with every
    key but the head (timm's ImageNet-21K ViTs ship none) has 0, so timm keeps a new head;
    one missing more keeps the model's count, so the load stays strict and names them."""
    classes = head_classes(arch, sd)
    if classes is not None:
        return classes
    head = classifier_of(arch) + "."
    body = [k for k in meta_model(arch, **kwargs).state_dict() if not k.startswith(head)]
    return 0 if all(k in sd for k in body) else kwargs["num_classes"]
