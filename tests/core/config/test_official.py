"""The official code's settings, the paper scale's defaults: position-grid resizing, the kept
last batch, PRM's 16-pixel grid at 224, Swin's momentum on 224-pixel data."""
from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

from core.config import ModelCfg
from core.config.compose import compose
from core.data.loader import EpochBatches, steps_per_epoch
from core.models import build_model
from core.models.adapt import adapt_pos_embed
from core.training.ard_prm import PRM


def _checkpoint(path):
    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=1000)
    with torch.no_grad():  # a smooth position grid, as pretrained ones are
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, 14), torch.linspace(-1, 1, 14),
                                indexing="ij")
        grid = torch.stack([torch.sin(3 * xx + k * yy) for k in range(192)], -1)
        src.pos_embed[0, 1:] = grid.reshape(196, 192)
    torch.save(src.state_dict(), path)
    return src.state_dict()


def test_bilinear_pos_resize_is_the_official_interpolation(tmp_path):
    """14x14 -> 8x8: `bilinear` is F.interpolate bilinear without antialias (the official
    code's, via old timm); timm's bicubic with antialias is a different grid."""
    sd = _checkpoint(tmp_path / "w.pth")
    nets = {m: build_model(ModelCfg(arch="vit_tiny_patch16_224", source=f"file:{tmp_path}/w.pth",
                                    patch_size=4, pos_resize=m), 32, 10).model.net
            for m in ("bilinear", "bicubic_antialias")}
    old = sd["pos_embed"][:, 1:].reshape(1, 14, 14, 192).permute(0, 3, 1, 2)
    want = F.interpolate(old, size=(8, 8), mode="bilinear", align_corners=False)
    got = nets["bilinear"].pos_embed[:, 1:].detach().reshape(1, 8, 8, 192).permute(0, 3, 1, 2)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(nets["bilinear"].pos_embed[:, :1], sd["pos_embed"][:, :1])  # class token
    other = nets["bicubic_antialias"].pos_embed[:, 1:].detach()
    rms = ((other - nets["bilinear"].pos_embed[:, 1:].detach()).pow(2).mean().sqrt()
           / other.pow(2).mean().sqrt())
    assert rms > 0.01  # measurably different grids (printed in the README)


def test_pos_resize_is_a_no_op_when_the_grid_fits():
    sd = {"pos_embed": torch.randn(1, 65, 8)}
    assert adapt_pos_embed(sd, torch.Size([1, 65, 8]), (8, 8), "bilinear") is sd


def test_paper_scale_takes_the_official_settings():
    cfg = compose(["model=vit_b16", "data=cifar10"])
    assert (cfg.batch_size, cfg.data.drop_last, cfg.model.pos_resize) == (64, False, "bilinear")
    swin = compose(["model=swin_b", "data=imagenette"])
    assert swin.optim.momentum == 0.5 and swin.prm_cell == 16
    assert compose(["model=swin_b", "data=cifar10"]).optim.momentum == 0.9
    assert compose(["model=vit_b16", "data=imagenette"]).optim.momentum == 0.9
    tiny = compose(["scale=tiny"])
    assert (tiny.batch_size, tiny.data.drop_last, tiny.model.pos_resize) == (
        128, True, "bicubic_antialias")  # the tiny scale's shipped run ids stand


def test_the_last_batch_is_kept_and_made_even_for_mixup():
    idx = torch.arange(70)
    assert steps_per_epoch(70, 64) == 1 and steps_per_epoch(70, 64, drop_last=False) == 2
    kept = list(EpochBatches(idx, 64, 0, 0, 0, 1, drop_last=False))
    assert [len(b) for b in kept] == [64, 6]
    odd = list(EpochBatches(torch.arange(69), 64, 0, 0, 0, 1, drop_last=False, even=True))
    assert [len(b) for b in odd] == [64, 4]  # 5 left, one dropped so Mixup can pair them
    seen = sorted(i for b in kept for i, _ in b)
    assert seen == list(range(70))


def test_prm_masks_the_official_16_pixel_grid_on_swin_at_224():
    net = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    own, official = PRM(net), PRM(net, cell=16)
    assert own.num_patches == 56 * 56 and official.num_patches == 14 * 14
    mask = official.mask_fn(0.5, 2, torch.Generator().manual_seed(0), torch.device("cpu"))(0)
    assert mask.shape == (1, 1, 224, 224)
    cells = mask[0, 0].reshape(14, 16, 14, 16)
    assert (cells.amax(dim=(1, 3)) == cells.amin(dim=(1, 3))).all()  # whole 16x16 cells
    assert int((cells.amax(dim=(1, 3)) == 0).sum()) == 98  # floor(196 * (1 - 0.5))


@pytest.mark.slow
def test_a_paper_scale_run_reads_the_stand_in_world(tmp_path, monkeypatch):
    """Real loaders, made-up data and weights: the run works and its record says STAND-IN."""
    from core.offline.standin import write_cifar10, write_weights
    from core.runs.run import run

    tag = "deit_tiny_patch16_224.fb_in1k"
    write_cifar10(tmp_path / "data" / "cifar10", per_file=16)
    write_weights(tmp_path / "hf", [tag])
    monkeypatch.setenv("VITADV_DATA", str(tmp_path / "data"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    cfg = compose(["model=deit_ti", "epochs=1", "batch_size=4", "data.train_subset=8",
                   "attack.steps=1", "eval=quick", "eval.n=4", "eval.curve_n=2",
                   "precision=fp32", "progress=false", f"runs_dir={tmp_path / 'runs'}"])
    result = run(cfg)
    assert result["status"] == "done" and result["data_stand_in"] is True
    assert "STAND-IN" in result["data"] and result["pretrained"]["stand_in"] is True
    assert result["pretrained"]["source"] == f"timm:{tag}" and result["n_eval"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("method", ["bilinear", "bicubic_antialias"])
def test_both_resizes_build_every_family_with_a_position_grid(method, tmp_path):
    for arch in ("vit_tiny_patch16_224", "convit_tiny"):
        src = timm.create_model(arch, pretrained=False)
        torch.save(src.state_dict(), tmp_path / f"{arch}.pth")
        net = build_model(ModelCfg(arch=arch, source=f"file:{tmp_path}/{arch}.pth",
                                   patch_size=4, pos_resize=method), 32, 10).model
        assert net(torch.rand(1, 3, 32, 32)).shape == (1, 10)
