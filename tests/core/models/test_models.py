"""Models: every preset builds at its resolution; weight sources; patch-kernel adaptation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
import yaml

import core.conf
from core.config import ModelCfg
from core.config.compose import compose
from core.infra.errors import ConfigError, UserError
from core.models import build_model, family_of, patch_grid
from core.models.adapt import block_sum

PRESETS = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(
    (Path(core.conf.__file__).parent / "model").glob("*.yaml"))}
TINY_ARCHS = sorted({p["arch"] for p in PRESETS.values() if p["arch"].startswith("vitadv_")})
MODEL_PRESETS = [name for name, p in PRESETS.items() if p["arch"] not in TINY_ARCHS]


@pytest.mark.slow
@pytest.mark.parametrize("preset", MODEL_PRESETS)
def test_paper_presets_build_for_cifar(preset):
    """Every paper model builds at 32x32 (patch 4 for ViT/DeiT/ConViT, Swin's window fitted)
    and maps [0,1] pixels to 10 logits; weights stay random (no download in tests)."""
    cfg = compose([f"model={preset}", "data=cifar10", "model.source=none"])
    built = build_model(cfg.model, 32, 10)
    (rows, cols), (ph, pw) = patch_grid(built.model.net)
    assert (rows * ph, cols * pw) == (32, 32) and (ph, pw) == (4, 4)
    with torch.no_grad():
        out = built.model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_swin_window_is_fitted_to_the_cifar_grid():
    built = build_model(ModelCfg(arch="swin_tiny_patch4_window7_224", source="none"), 32, 10)
    first = built.model.net.layers[0].blocks[0]
    assert tuple(first.window_size) == (4, 4)  # 8x8 tokens: 2x2 windows of 4x4
    built224 = build_model(ModelCfg(arch="swin_tiny_patch4_window7_224", source="none"), 224, 10)
    assert tuple(built224.model.net.layers[0].blocks[0].window_size) == (7, 7)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tiny_models_are_real_timm_models(arch):
    net = timm.create_model(arch)
    assert family_of(net).name in {"vit", "convit", "swin"}
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 10)


def test_block_sum_by_hand():
    k = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    out = block_sum(k, (4, 4))
    assert out.shape == (2, 3, 4, 4)
    assert out[1, 2, 3, 1] == k[1, 2, 12:16, 4:8].sum()
    assert torch.allclose(out.sum(dim=(2, 3)), k.sum(dim=(2, 3)))  # nothing lost, no rescale


def _made_up_checkpoint(path, patch=16, img=64):
    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=img,
                            patch_size=patch, num_classes=1000)
    torch.save(src.state_dict(), path)
    return src.state_dict()


def test_file_source_block_sums_a_16x16_checkpoint(tmp_path):
    """A made-up 16x16-patch checkpoint loads into a 4x4-patch model through `file:`:
    the kernel is the block sum, the position grid is resized, the head is new."""
    sd = _made_up_checkpoint(tmp_path / "w.pth")
    cfg = ModelCfg(arch="vit_tiny_patch16_224", source=f"file:{tmp_path / 'w.pth'}",
                   patch_size=4, kernel_adapt="block_sum")
    built = build_model(cfg, 16, 10)
    net = built.model.net
    expected = sd["patch_embed.proj.weight"].reshape(192, 3, 4, 4, 4, 4).sum(dim=(3, 5))
    assert torch.equal(net.patch_embed.proj.weight.detach(), expected)
    assert net.pos_embed.shape == (1, 1 + 16, 192)
    assert torch.equal(net.blocks[0].attn.qkv.weight.detach(), sd["blocks.0.attn.qkv.weight"])
    assert net.head.weight.shape == (10, 192)
    assert built.weights.record()["sha256"] and built.weights.resolved.startswith("file:")


@pytest.mark.parametrize("classes", [10, 1000])
def test_a_headless_checkpoint_loads_with_a_new_head(tmp_path, classes):
    """timm's ImageNet-21K ViT tags (`vit_base_patch16_224.orig_in21k`) ship without a head;
    the body loads and the head is new, also at the 1000 classes of the ImageNet row."""
    sd = _made_up_checkpoint(tmp_path / "w.pth")
    torch.save({k: v for k, v in sd.items() if not k.startswith("head.")}, tmp_path / "w.pth")
    cfg = ModelCfg(arch="vit_tiny_patch16_224", source=f"file:{tmp_path / 'w.pth'}")
    net = build_model(cfg, 64, classes).model.net
    assert torch.equal(net.blocks[0].attn.qkv.weight.detach(), sd["blocks.0.attn.qkv.weight"])
    assert net.head.weight.shape == (classes, 192)


def test_a_checkpoint_missing_more_than_its_head_does_not_load(tmp_path):
    sd = _made_up_checkpoint(tmp_path / "w.pth")
    gone = ("head.", "blocks.11.mlp.fc2.")
    torch.save({k: v for k, v in sd.items() if not k.startswith(gone)}, tmp_path / "w.pth")
    cfg = ModelCfg(arch="vit_tiny_patch16_224", source=f"file:{tmp_path / 'w.pth'}")
    with pytest.raises(ConfigError, match="do not fit vit_tiny_patch16_224"):
        build_model(cfg, 64, 10)


def test_resample_is_the_alternative(tmp_path):
    sd = _made_up_checkpoint(tmp_path / "w.pth")
    cfg = ModelCfg(arch="vit_tiny_patch16_224", source=f"file:{tmp_path / 'w.pth'}",
                   patch_size=4, kernel_adapt="resample")
    net = build_model(cfg, 16, 10).model.net
    block = sd["patch_embed.proj.weight"].reshape(192, 3, 4, 4, 4, 4).sum(dim=(3, 5))
    assert not torch.allclose(net.patch_embed.proj.weight.detach(), block)


def test_block_sum_needs_a_divisor(tmp_path):
    _made_up_checkpoint(tmp_path / "w.pth")
    cfg = ModelCfg(arch="vit_tiny_patch16_224", source=f"file:{tmp_path / 'w.pth'}",
                   patch_size=3)
    with pytest.raises(ConfigError, match="kernel_adapt=resample"):
        build_model(cfg, 15, 10)


def test_timm_tag_loads_offline_from_the_hub_cache(tmp_path, monkeypatch):
    """The real `timm:` path on a cluster without internet: weights in the HF cache, found
    with HF_HUB_OFFLINE=1; the result records the tag and the cached file's SHA-256."""
    from safetensors.torch import save_file

    from core.infra.atomic import sha256_file

    tag = "deit_tiny_patch16_224.fb_in1k"
    snap = tmp_path / "hub" / f"models--timm--{tag}" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (tmp_path / "hub" / f"models--timm--{tag}" / "refs").mkdir()
    (tmp_path / "hub" / f"models--timm--{tag}" / "refs" / "main").write_text("0" * 40)
    src = timm.create_model("deit_tiny_patch16_224", pretrained=False)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, snap / "model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    built = build_model(ModelCfg(arch="deit_tiny_patch16_224", source=f"timm:{tag}",
                                 patch_size=4), 32, 10)
    rec = built.weights.record()
    assert rec["source"] == f"timm:{tag}"
    assert rec["sha256"] == sha256_file(snap / "model.safetensors")
    assert rec["mean"] == pytest.approx((0.485, 0.456, 0.406))
    assert torch.equal(built.model.net.blocks[3].mlp.fc1.weight.detach(),
                       src.state_dict()["blocks.3.mlp.fc1.weight"])


def test_missing_timm_weights_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="core.prefetch weights deit_tiny"):
        build_model(ModelCfg(arch="deit_tiny_patch16_224",
                             source="timm:deit_tiny_patch16_224.fb_in1k", patch_size=4), 32, 10)


def test_run_source_keeps_the_head_and_the_normalisation(trained_model, test_batch):
    model, result = trained_model
    x, y = test_batch
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.8  # the head came with the weights
    assert result["pretrained"]["source"] == "none"
    run_dir = json.dumps(result["config"]["runs_dir"])
    assert run_dir


def test_unknown_source_kind_is_named(fast_cfg):
    from core.runs.checks import validate

    with pytest.raises(ConfigError, match="valid: file, none, pretrain, robustbench, run, timm"):
        validate(fast_cfg("model.source=hub:abc"))


SLOW_COMPILE = pytest.mark.compile_all  # minutes of inductor work each on 2 CPU cores


@pytest.mark.parametrize("arch", ["vitadv_vit_micro",
                                  pytest.param("vitadv_convit_micro", marks=SLOW_COMPILE),
                                  pytest.param("vitadv_swin_micro", marks=SLOW_COMPILE)])
@pytest.mark.slow
def test_compiled_model_gives_the_same_logits_and_attack_gradients_with_ard_prm(arch):
    """compile=true (nn.Module.compile, in place) keeps the numbers, ARD's gates and PRM."""
    from core.attacks import PGD, Plugins, cross_entropy, pgd_train
    from core.training.ard_prm import ARD, PRM

    pytest.importorskip("torch._inductor")
    built = build_model(ModelCfg(arch=arch, source="none"), 16, 10)
    model = built.model.eval()
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 10
    ard, prm = ARD(model.net, built.family, outer=model), PRM(model.net)
    attack = PGD(8 / 255, 2 / 255, 2, cross_entropy)

    def adv() -> torch.Tensor:
        g = torch.Generator().manual_seed(1)
        plugins = Plugins(mask=prm.mask_fn(0.5, len(x), g, torch.device("cpu")),
                          input_grad=lambda: ard.dropping(0.5, g))
        return pgd_train(model, x, y, attack, g, plugins)

    eager_logits, eager_adv = model(x).detach(), adv()
    model.net.compile()
    assert torch.allclose(model(x).detach(), eager_logits, atol=1e-4)
    assert torch.equal(adv(), eager_adv)  # the same gates and masks, the same signs
    assert set(model.state_dict()) == set(built.model.state_dict())
