"""Tiny ViT-family models registered with timm, for `scale=tiny` and the tests.

They are built and looked up exactly like the real ones (`timm.create_model(name)`), one per
family the project supports, so every family-specific path (ARD hooks, PRM grid, weight
adaptation) is exercised on a CPU in seconds.
"""
from __future__ import annotations

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.convit import ConVit
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer import checkpoint_filter_fn as swin_filter
from timm.models.vision_transformer import VisionTransformer
from timm.models.vision_transformer import checkpoint_filter_fn as vit_filter


def _cfg(classifier: str = "head") -> dict:
    return dict(url="", num_classes=10, input_size=(3, 16, 16), mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5), crop_pct=1.0, interpolation="bilinear",
                first_conv="patch_embed.proj", classifier=classifier)


default_cfgs = generate_default_cfgs({
    "vitadv_vit_micro": _cfg(),
    "vitadv_vit_mini": _cfg(),
    "vitadv_convit_micro": _cfg(),
    "vitadv_swin_micro": _cfg("head.fc"),
})


def _build(cls: type, name: str, pretrained: bool, defaults: dict, kwargs: dict, **extra):
    return build_model_with_cfg(cls, name, pretrained, **{**extra, **defaults, **kwargs})


@register_model
def vitadv_vit_micro(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViT, 4 blocks of width 64 on 16x16 inputs with 4x4 patches (16 tokens)."""
    defaults = dict(img_size=16, patch_size=4, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0,
                    num_classes=10)
    return _build(VisionTransformer, "vitadv_vit_micro", pretrained, defaults, kwargs,
                  pretrained_filter_fn=vit_filter)


@register_model
def vitadv_vit_mini(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """A larger tiny ViT (6 blocks of width 96): the 'larger model' of the tiny scale."""
    defaults = dict(img_size=16, patch_size=4, embed_dim=96, depth=6, num_heads=4, mlp_ratio=2.0,
                    num_classes=10)
    return _build(VisionTransformer, "vitadv_vit_mini", pretrained, defaults, kwargs,
                  pretrained_filter_fn=vit_filter)


@register_model
def vitadv_convit_micro(pretrained: bool = False, **kwargs) -> ConVit:
    """ConViT with 3 gated-positional blocks then 1 plain one, width 64 (16 x 4 heads)."""
    defaults = dict(img_size=16, patch_size=4, embed_dim=16, depth=4, num_heads=4, mlp_ratio=2.0,
                    local_up_to_layer=3, num_classes=10)
    return _build(ConVit, "vitadv_convit_micro", pretrained, defaults, kwargs)


@register_model
def vitadv_swin_micro(pretrained: bool = False, **kwargs) -> SwinTransformer:
    """Swin with two stages (8x8 then 4x4 tokens of 2x2-pixel patches, window 4)."""
    defaults = dict(img_size=16, patch_size=2, window_size=4, embed_dim=32, depths=(2, 2),
                    num_heads=(2, 4), mlp_ratio=2.0, num_classes=10, drop_path_rate=0.0)
    return _build(SwinTransformer, "vitadv_swin_micro", pretrained, defaults, kwargs,
                  pretrained_filter_fn=swin_filter)
