"""The pre-flight of a paper-scale grid on the stand-in world, as a user on a machine without
the real data and weights runs it: the real loaders and weight adaptation, two steps, a
projection, and a missing piece named before any work."""
from __future__ import annotations

import re

import pytest

from core.offline.standin import write_cifar10, write_weights
from tests.conftest import cli

TAG = "deit_tiny_patch16_224.fb_in1k"
# DeiT-Ti for the grid's ViT-B keeps the test fast on a CPU; fp32 because bf16 is emulated
# on CPUs without bf16 instructions (60 s a step here)
PREFLIGHT = ("epochs", "--scale", "paper", "--preflight", "--preflight-batch", "2",
             "--launcher", "debug", "model=deit_ti", "precision=fp32")


def _world(root) -> dict[str, str]:
    write_cifar10(root / "data" / "cifar10", per_file=16)
    write_weights(root / "hf", [TAG])
    return {"VITADV_DATA": str(root / "data"), "HF_HUB_CACHE": str(root / "hf")}


@pytest.mark.slow
def test_a_paper_grid_preflights_on_the_stand_in_world(tmp_path):
    out = cli(*PREFLIGHT, cwd=tmp_path, module="ablations.run", env=_world(tmp_path))
    assert out.returncode == 0, out.stderr
    # 40 and 80 epochs are one run for two steps; it passes and projects the full 80 epochs
    assert re.search(r"^ok +\w{12} +epochs: epochs=80 seed=0: [\d.]+ s/step of 2, peak", out.stdout,
                     re.M), out.stdout
    assert "total: 1 runs, 1 ok, 0 failed" in out.stdout
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == [
        tmp_path / "runs" / "_preflight"]  # scratch only: no real run folder


@pytest.mark.slow
def test_a_preflight_without_the_weights_is_one_line_before_any_work(tmp_path):
    env = _world(tmp_path)
    env["HF_HUB_CACHE"] = str(tmp_path / "empty")
    out = cli(*PREFLIGHT, cwd=tmp_path, module="ablations.run", env=env)
    assert out.returncode == 2 and TAG in out.stderr and "core.prefetch weights" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "runs" / "_preflight").exists()


def test_a_stand_in_is_costed_as_the_data_set_it_stands_for(tmp_path):
    # the pre-flight projects the full run on CIFAR-10, not on the stand-in's 80 images
    from core.data.sets import DATASETS
    from core.runs.cost import data_facts

    write_cifar10(tmp_path, per_file=16)
    problem, sizes = data_facts("cifar10", str(tmp_path), 32)
    assert problem is None and sizes == DATASETS.get("cifar10").sizes == (50000, 10000)


@pytest.mark.slow
def test_a_preflight_batch_a_run_cannot_take_is_one_line_before_any_work(tmp_path):
    args = [a if a != "2" else "1" for a in PREFLIGHT] + ["aug=mixup"]  # Mixup: even batches
    out = cli(*args, cwd=tmp_path, module="ablations.run", env=_world(tmp_path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--preflight-batch 1: batch_size=1 is odd" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not list((tmp_path / "runs").glob("_preflight/*"))


def test_the_projection_prices_evaluation_at_its_own_precision():
    """Evaluation runs in FP32 (59% of a paper cell's FLOPs) and was projected at the bf16
    training step's rate: on an H100 that is 989.4 / 66.9 = 14.8 times too fast. A CPU has one
    measured rate for both."""
    from ablations.launch.preflight import _projection
    from core.config.compose import compose
    from core.runs.cost import job_flops_parts

    full = compose(["model=vit_b16", "data=cifar10", "precision=bf16"])
    cfg = compose(["model=vit_b16", "data=cifar10", "precision=bf16", "batch_size=4"])
    train, evaluation = job_flops_parts(full)
    for device, name, eval_rate in (("cuda:0", "NVIDIA H100 80GB HBM3", 66.9 / 989.4),
                                    ("cpu", "AMD EPYC", 1.0)):
        result = {"last_step_seconds": 0.5, "machine": {"device": device, "device_name": name}}
        p = _projection(cfg, full, result)
        assert p["eval_flops_per_s"] == pytest.approx(p["flops_per_s"] * eval_rate)
        assert p["projected_seconds"] == pytest.approx(
            train / p["flops_per_s"] + evaluation / (p["flops_per_s"] * eval_rate))
    assert evaluation > train  # so pricing it right matters


def test_the_stand_in_world_holds_two_steps_of_every_paper_grids_batch():
    """A pre-flight times its second step: the stand-in Imagenette and ImageNet held 40
    training images, so at batch 64 the one step it had was the cold first one."""
    from ablations.grid.cells import expand
    from ablations.questions import load_all
    from core.offline.standin import IMAGENETTE_CLASSES, TRAIN_PER_CLASS

    largest = {}
    for name in load_all().names():
        for cell in expand(load_all().get(name), "paper", 1):
            data = cell.cfg.data.name
            largest[data] = max(largest.get(data, 0), cell.cfg.batch_size)
    assert largest.get("imagenet") and largest.get("imagenette")
    for data in ("imagenet", "imagenette"):
        assert TRAIN_PER_CLASS * len(IMAGENETTE_CLASSES) >= 2 * largest[data], (data, largest)
