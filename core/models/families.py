"""Architecture families, looked up by model class (never by name): where each family's
attention branch is, its patch grid, how it is built at another resolution and how foreign
weights fit it. Each names a tiny example model, so tests cover every family.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed
from timm.models.convit import ConVit
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from core.infra.registry import Registry


def _patch_grid(model: nn.Module) -> tuple[tuple[int, int], tuple[int, int]]:
    """((rows, cols) of patches, (height, width) of one patch in pixels)."""
    pe = model.patch_embed
    return tuple(pe.grid_size), tuple(pe.patch_size)


@dataclass(frozen=True)
class Family:
    name: str
    cls: type                      # the timm model class (subclasses belong to the family)
    # Modules whose output is exactly one block's attention branch before the residual add.
    attention_branches: Callable[[nn.Module], list[nn.Module]]
    # Extra timm kwargs for the target resolution: (arch default kwargs, grid size) -> kwargs.
    extra_kwargs: Callable[[nn.Module, int | None, int], dict]
    example: str                   # a tiny registered timm model of this family (tests)
    # A pretrained filter to pass to timm when timm's own does not adapt the resolution.
    pretrained_filter: Callable | None = None
    patch_grid: Callable[[nn.Module], tuple[tuple[int, int], tuple[int, int]]] = _patch_grid


def _vit_branches(model: nn.Module) -> list[nn.Module]:
    # drop_path1 is the exact term added to the residual (it follows attn and LayerScale).
    return [b.drop_path1 for b in model.blocks]


def _convit_branches(model: nn.Module) -> list[nn.Module]:
    # ConViT shares one drop_path between both branches, so hook the attention itself.
    return [b.attn for b in model.blocks]


def _swin_branches(model: nn.Module) -> list[nn.Module]:
    # attn sees windows; drop_path1 sees the re-assembled (B, H, W, C) branch.
    return [b.drop_path1 for layer in model.layers for b in layer.blocks]


def mlp_drop_paths(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(block, attribute) of every block's MLP-branch drop path (timm's drop_path2): the
    official code drops only the attention branch (model_for_imagenet/swin.py:305-306)."""
    return [(m, "drop_path2") for m in model.modules() if hasattr(m, "drop_path2")]


def _no_extra(model: nn.Module, window_size: int | None, grid: int) -> dict:
    return {}


def _swin_window(model: nn.Module, window_size: int | None, grid: int) -> dict:
    """Swin at a resolution the pretrained window does not tile.

    Keep the pretrained window if it divides the first-stage token grid (224/4=56, 7 does);
    otherwise take the largest divisor of the grid below it: 32x32 inputs with 4x4 patches give
    an 8x8 grid, so window 4 (2x2 shifted windows, then global attention in later stages).
    timm's filter resizes the relative-position bias tables to the new window.
    """
    if window_size is not None:
        return {"window_size": window_size}
    default = model.layers[0].blocks[0].window_size[0]
    if grid % default == 0:
        return {}
    return {"window_size": max(w for w in range(1, default + 1) if grid % w == 0)}


def _convit_filter(state_dict: dict, model: nn.Module) -> dict:
    """timm has no resolution filter for ConViT: resample the patch kernel and pos grid."""
    out = {}
    for k, v in state_dict.items():
        if k == "patch_embed.proj.weight" and v.shape != model.patch_embed.proj.weight.shape:
            v = resample_patch_embed(v, list(model.patch_embed.proj.weight.shape[-2:]))
        elif k == "pos_embed" and v.shape != model.pos_embed.shape:
            v = resample_abs_pos_embed(v, new_size=list(model.patch_embed.grid_size),
                                       num_prefix_tokens=0)
        out[k] = v
    return out


FAMILIES: Registry[Family] = Registry("model family")
FAMILIES.add("vit", Family("vit", VisionTransformer, _vit_branches, _no_extra,
                           example="vitadv_vit_micro"))
FAMILIES.add("convit", Family("convit", ConVit, _convit_branches, _no_extra,
                              example="vitadv_convit_micro", pretrained_filter=_convit_filter))
FAMILIES.add("swin", Family("swin", SwinTransformer, _swin_branches, _swin_window,
                            example="vitadv_swin_micro"))


def family_of(model_or_cls: nn.Module | type) -> Family:
    cls = model_or_cls if isinstance(model_or_cls, type) else type(model_or_cls)
    for base in cls.__mro__:
        for family in FAMILIES.values():
            if base is family.cls:
                return family
    known = ", ".join(f.cls.__name__ for f in FAMILIES.values())
    raise ValueError(f"model class {cls.__name__} is not a supported family; supported: {known}")


def patch_grid(model: nn.Module) -> tuple[tuple[int, int], tuple[int, int]]:
    """((rows, cols) of patches, (height, width) of one patch in pixels), for every family."""
    return family_of(model).patch_grid(model)


def meta_model(arch: str, **kwargs) -> nn.Module:
    """The architecture on the meta device: its class and defaults without allocating weights."""
    import timm

    with torch.device("meta"):
        return timm.create_model(arch, pretrained=False, **kwargs)


def classifier_of(arch: str) -> str:
    """The name of the architecture's classifier module (timm's pretrained config says it)."""
    from timm.models import get_pretrained_cfg

    pcfg = get_pretrained_cfg(arch)
    return (pcfg.classifier if pcfg else None) or "head"


def head_classes(arch: str, state_dict: dict) -> int | None:
    """Classes of a checkpoint's classifier for `arch`; None where it has no head."""
    for key in (f"{classifier_of(arch)}.weight", "head.weight", "head.fc.weight"):
        if key in state_dict and state_dict[key].ndim == 2:
            return int(state_dict[key].shape[0])
    return None
