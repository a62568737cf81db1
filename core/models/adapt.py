"""Fitting ImageNet weights to small inputs (paper: CIFAR-10 at 32x32 with 4x4 patches)."""
from __future__ import annotations

import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from core.infra.errors import ConfigError
from core.infra.registry import Registry

PATCH_KERNEL_KEY = "patch_embed.proj.weight"
POS_EMBED_KEY = "pos_embed"

KERNEL_ADAPTERS: Registry = Registry("patch-kernel adaptation")


@KERNEL_ADAPTERS.register("block_sum")
def block_sum(kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Sum each (kh/h x kw/w) block of the kernel, as the official code does (16x16 -> 4x4).

    A 4x4 patch of a 4x-downsampled image then gets the same response as the 16x16 patch
    it came from: output[i, j] = sum of kernel[s*i:s*(i+1), s*j:s*(j+1)], no rescaling.
    """
    out_c, in_c, kh, kw = kernel.shape
    h, w = size
    if kh % h or kw % w:
        raise ConfigError(
            f"a {kh}x{kw} patch kernel cannot be block-summed to {h}x{w}; "
            "pick a patch size that divides it or set model.kernel_adapt=resample")
    return kernel.reshape(out_c, in_c, h, kh // h, w, kw // w).sum(dim=(3, 5))


@KERNEL_ADAPTERS.register("resample")
def resample(kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """timm's pseudo-inverse resampling (FlexiViT), which keeps patch responses."""
    return resample_patch_embed(kernel, list(size))


def adapt_patch_kernel(state_dict: dict, size: tuple[int, int], method: str) -> dict:
    """Return the state dict with its patch kernel fitted to `size` (a no-op if it fits)."""
    kernel = state_dict.get(PATCH_KERNEL_KEY)
    if kernel is None or tuple(kernel.shape[-2:]) == tuple(size):
        return state_dict
    return {**state_dict, PATCH_KERNEL_KEY: KERNEL_ADAPTERS.get(method)(kernel, size)}


# How a pretrained position-embedding grid is resized to the target grid: (mode, antialias)
# for torch's interpolate, as timm's resample_abs_pos_embed takes them.
POS_RESIZE: Registry[tuple[str, bool]] = Registry("position-embedding resize")
POS_RESIZE.add("bicubic_antialias", ("bicubic", True))   # timm's
POS_RESIZE.add("bilinear", ("bilinear", False))          # the official code's (old timm's)


def adapt_pos_embed(state_dict: dict, target: torch.Size, grid: tuple[int, int],
                    method: str) -> dict:
    """Return the state dict with its absolute position embeddings resized to the model's
    `target` shape (1, prefix tokens + rows * cols, dim), the `method` way (a no-op if they
    fit, or if the model has none). Done here, before timm sees the weights, so every family
    resizes alike and timm's own filter finds nothing left to resize."""
    pos = state_dict.get(POS_EMBED_KEY)
    if pos is None or tuple(pos.shape) == tuple(target):
        return state_dict
    prefix = target[1] - grid[0] * grid[1]
    mode, antialias = POS_RESIZE.get(method)
    resized = resample_abs_pos_embed(pos, new_size=list(grid), num_prefix_tokens=prefix,
                                     interpolation=mode, antialias=antialias)
    return {**state_dict, POS_EMBED_KEY: resized}
