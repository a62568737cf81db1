"""Bad input, before any work: each kind is one line naming the problem and the fix (exit
code 2 at the command line), and no run folder is created or changed."""
from __future__ import annotations

import pytest
import torch

from core.infra.errors import UserError
from core.runs.run import run, run_dir_of
from tests.conftest import cli

# (overrides, the words the one line must hold)
CONFIG_VALUES = [
    (["eval.n=0"], "eval.n=0 is out of range: it must be >= 1"),
    (["optim.lr=-1"], "optim.lr=-1 is out of range: it must be > 0"),
    (["batch_size=-1"], "batch_size=-1 is out of range: it must be >= 1"),
    (["eval.batch_size=0"], "eval.batch_size=0 is out of range"),
    (["epochs=0"], "epochs=0 is out of range"),
    (["attack.eps=8"], "looks like pixel levels"),
    (["attack.eps=-0.1"], "attack.eps=-0.1 is negative"),
    (["attack.steps=-1"], "attack.steps=-1 is out of range"),
    (["method=trades", "method.beta=-1"], "beta=-1 is negative"),
    (["ard=true", "warmup_epochs=3"], "longer than training"),
    (["batch_size=31", "aug=mixup"], "odd"),
    (["method.name=pgd"], "valid: at, clean, mart, trades"),
    (["optim.name=adam"], "valid: adamw, sgd"),
    (["model.arch=vit_huge_nonexistent"], "unknown model architecture"),
    (["model.patch_size=5"], "patch size 5 does not divide image size 16"),
    (["optim.momentum=1.5"], "optim.momentum=1.5 is out of range: it must be < 1"),
    (["aug.mix_prob=2"], "aug.mix_prob=2 is out of range: it must be <= 1"),
    (["ema.decay=1"], "ema.decay=1 is out of range"),
    (["threads=0"], "threads=0 is out of range"),
    (["data.train_subset=16"], "less than one batch"),
    (["eval.n=8", "eval.n_aa=9"], "more than eval.n=8"),
    (["model.pos_resize=nearest"], "valid: bicubic_antialias, bilinear"),
    (["prm=true", "prm_cell=5"], "prm_cell=5 does not divide the 16-pixel image"),
    (["device=cuda"] if not torch.cuda.is_available() else ["device=cuda:99"], "device=cuda"),
    (["device=tpu"], "is not a device; use auto, cpu, cuda or cuda:N"),
    (["device=mps"], "only cpu and cuda devices"),
    (["+method.gamma=1"], "method.gamma is not a hyper-parameter of 'at'"),
    (["eval.attacks=[clean,pgd7]"], "unknown evaluation attack 'pgd7'"),
]


@pytest.mark.parametrize("overrides, words", CONFIG_VALUES,
                         ids=[" ".join(o) for o, _ in CONFIG_VALUES])
@pytest.mark.slow
def test_bad_config_value_is_one_line_before_any_work(fast_cfg, overrides, words):
    cfg = fast_cfg(*overrides)
    with pytest.raises(UserError, match=words.replace("[", r"\[").replace("+", r"\+")) as e:
        run(cfg)
    assert "\n" not in str(e.value)
    assert not run_dir_of(cfg).exists()


def test_missing_data_of_the_pretraining_is_caught_before_it_trains(fast_cfg, tmp_path):
    """`scale=tiny data=imagenette` without the data used to start the pretraining first."""
    cfg = fast_cfg("model.source=pretrain", "data=imagenette", f"data.root={tmp_path / 'no'}")
    with pytest.raises(UserError, match="Imagenette not found"):
        run(cfg)
    pre = fast_cfg("model.source=pretrain", "pretrain.data=cifar10",
                   f"data.root={tmp_path / 'no'}")
    with pytest.raises(UserError, match="CIFAR-10 not found"):
        run(pre)
    assert not (tmp_path / "runs").exists()  # neither the cell nor its pretraining started


@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_weights_file_problems_are_one_line(fast_cfg, tmp_path, kind):
    path = tmp_path / "w.pth"
    if kind == "garbage":
        path.write_bytes(b"this is no state dict")
    cfg = fast_cfg(f"model.source=file:{path}")
    with pytest.raises(UserError, match="not found" if kind == "missing" else "cannot be read"):
        run(cfg)


def test_uncached_timm_weights_are_caught_before_any_work(fast_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    cfg = fast_cfg("model=deit_ti", "model.source=timm:deit_tiny_patch16_224.fb_in1k",
                   "model.patch_size=4")
    with pytest.raises(UserError, match="not in the local cache: run `python -m core.prefetch"):
        run(cfg)
    assert not run_dir_of(cfg).exists()


def test_unwritable_runs_dir_is_one_line(fast_cfg, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot be written here"):
        run(fast_cfg(f"runs_dir={blocker / 'runs'}"))


def test_corrupt_cifar10_fails_its_checksum(fast_cfg, tmp_path):
    from core.offline.standin import write_cifar10

    root = write_cifar10(tmp_path / "cifar")
    (root / "cifar-10-batches-py" / "VITADV_STAND_IN").unlink()  # now it claims to be real
    cfg = fast_cfg("data=cifar10", f"data.root={root}", "data.img_size=16")
    with pytest.raises(UserError, match="fails its checksum"):
        run(cfg)


def test_tiny_scale_keeps_its_resolution_for_any_data_set(fast_cfg, tmp_path):
    from core.config.compose import compose

    cfg = compose(["scale=tiny", "data=imagefolder", f"data.root={tmp_path}"])
    assert cfg.data.img_size == 16 and cfg.aug.crop_padding == 2 and cfg.prm_cell is None


@pytest.mark.slow
def test_cli_says_each_in_one_line_with_exit_2(tmp_path):
    for args in (["scale=tiny", "eval.n=0"], ["scale=tiny", "optim.lr=-1"],
                 ["scale=tiny", "device=cuda:99"], ["scale=tiny", "batch_size=-1"]):
        out = cli(*args, f"runs_dir={tmp_path}", cwd=tmp_path)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_states_the_projected_time_of_a_long_run(tmp_path):
    out = cli("scale=tiny", "model.source=none", "epochs=400", "--estimate", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "projected to take about" in out.stderr and "GFLOP/s measured on this CPU" in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("layout, expected", [
    ({"train": [], "val": []}, "train holds no class folder; put each class's images in train/"),
    ({"train": ["a.png"], "val": []}, "val holds no class folder"),
    ({"train": ["a.png"], "val": ["a"]}, "class folder"),  # no image: found before pretraining
])
def test_an_imagefolder_without_class_folders_or_images_is_one_line(tmp_path, layout,
                                                                    expected):
    from PIL import Image

    for split, classes in layout.items():
        (tmp_path / split).mkdir()
        for c in classes:  # "a.png": class a with one image; "a": class a, empty
            (tmp_path / split / c.split(".")[0]).mkdir()
            if c.endswith(".png"):
                Image.new("RGB", (4, 4)).save(tmp_path / split / "a" / "0.png")
    out = cli("scale=tiny", "data=imagefolder", f"data.root={tmp_path}",
              f"runs_dir={tmp_path / 'runs'}", cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert expected in out.stderr and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("arch, first", [("vitadv_convit_micro", "blocks.0.attn.qkv.weight"),
                                         ("vitadv_swin_micro", "cls_token")])
def test_weights_of_another_architecture_are_one_line(fast_cfg, tmp_path, arch, first):
    """ConViT's weights into a ViT used to end in a 40-line RuntimeError of the position-grid
    resize, Swin's in advice to set kernel_adapt=resample (which led to the real error)."""
    import timm

    path = tmp_path / "w.pth"
    torch.save(timm.create_model(arch, num_classes=10).state_dict(), path)
    cfg = fast_cfg(f"model.source=file:{path}")
    words = rf"not vitadv_vit_micro weights \(.* first: {first}\)"
    with pytest.raises(UserError, match=words) as e:
        run(cfg)
    assert "\n" not in str(e.value) and "kernel_adapt" not in str(e.value)
    assert not (run_dir_of(cfg).result).exists()


def test_robustbench_points_on_a_data_set_without_them_is_one_line(fast_cfg):
    cfg = fast_cfg("eval.points=robustbench")
    with pytest.raises(UserError, match="data=digits does not hold: use eval.points=shuffled"):
        run(cfg)
    assert not run_dir_of(cfg).exists()


def test_a_truncated_result_is_one_line(fast_cfg):
    cfg = fast_cfg()
    run_dir = run_dir_of(cfg).mkdir()
    run_dir.result.write_text('{"status": "do')
    with pytest.raises(UserError, match="result.json cannot be read .*: remove it") as e:
        run(cfg)
    assert "\n" not in str(e.value) and run_dir.result.read_text() == '{"status": "do'
