"""ImageNet's layout: a folder written here (a few classes of small JPEGs, named as ImageNet's
files) streams through loader workers, resumes mid-epoch with the same numbers, and is
evaluated on the points of an ids file in RobustBench's format, in that file's order."""
from __future__ import annotations

import math

import pytest
import torch

from core.config import changed
from core.data import load_splits
from core.data.points import IDS_FILE, order_of
from core.infra.errors import DataNotFoundError
from core.offline.standin import write_imagenet
from core.runs.run import run, run_dir_of
from tests.conftest import interrupted_at


@pytest.fixture
def imagenet(tmp_path):
    return write_imagenet(tmp_path / "imagenet", classes=4, train_per_class=8, val_per_class=3)


def _cfg(fast_cfg, root, *more):
    return fast_cfg("data=imagenet", f"data.root={root}", "data.img_size=16", "prm_cell=null",
                    "data.num_workers=2", "data.train_subset=null", "batch_size=8",
                    "eval.points=robustbench", "eval.n=null", *more)


def test_the_robustbench_points_are_the_listed_files_in_the_lists_order(fast_cfg, imagenet):
    cfg = _cfg(fast_cfg, imagenet)
    splits = load_splits(cfg.data)
    order = order_of(splits, cfg.data, "robustbench")
    listed = (imagenet / IDS_FILE).read_text().split()
    files = [splits.test.folder.samples[i][0] for i in order.tolist()]
    assert [f.split("/val/")[1] for f in files] == listed
    labels = [splits.test.folder.samples[i][1] for i in order.tolist()]
    wnids = sorted({w.split("/")[0] for w in listed})  # label: sorted class-folder index
    assert labels == [wnids.index(w.split("/")[0]) for w in listed]


@pytest.mark.slow
def test_an_imagenet_folder_trains_resumes_mid_epoch_and_evaluates_on_the_list(
        fast_cfg, imagenet, tmp_path, monkeypatch):
    whole_cfg = _cfg(fast_cfg, imagenet, "epochs=2", "checkpoint_minutes=0")
    whole = run(whole_cfg)
    assert whole["status"] == "done" and whole["n_eval"] == 12 and whole["num_classes"] == 4
    assert whole["eval_points"]["points"] == "robustbench" and whole["data_stand_in"]
    other = changed(whole_cfg, runs_dir=str(tmp_path / "other"))
    with pytest.raises(KeyboardInterrupt), interrupted_at(monkeypatch, 3):  # mid-epoch 0
        run(other)
    resumed = run(other)
    assert "resumed from step 2" in run_dir_of(other).log.read_text()
    assert {k: resumed[k] for k in ("clean_acc", "pgd20_acc")} == {
        k: whole[k] for k in ("clean_acc", "pgd20_acc")}
    a = torch.load(run_dir_of(whole_cfg).weights, weights_only=True)
    b = torch.load(run_dir_of(other).weights, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_missing_ids_list_or_image_is_one_line_before_any_work(fast_cfg, imagenet):
    (imagenet / IDS_FILE).rename(imagenet / "elsewhere.txt")
    cfg = _cfg(fast_cfg, imagenet)
    with pytest.raises(DataNotFoundError, match="core.prefetch robustbench-ids"):
        run(cfg)
    assert not run_dir_of(cfg).exists()
    (imagenet / IDS_FILE).write_text("n00000000/ILSVRC2012_val_99999999.JPEG\n")
    with pytest.raises(DataNotFoundError, match="1 of RobustBench's 1 test images are not"):
        run(cfg)


def test_the_streaming_bench_reads_imagenet_sized_jpegs_through_the_training_path(tmp_path):
    from core.bench.streaming import bench_data, demand_images_per_s, write_jpegs
    from core.data.images import FolderImages

    # 989 TFLOP/s at 28% over 6 forward+backward passes (3x) of 17.6 GFLOP
    assert demand_images_per_s() == pytest.approx(989.4e3 * 0.28 / (17.6 * 18))
    write_jpegs(tmp_path, 3)
    x, y = FolderImages(tmp_path / "train", 224).get(2)
    assert x.shape == (3, 224, 224) and x.dtype == torch.uint8 and y == 2
    figures = bench_data(4)
    assert figures["workers_to_feed_it"] == math.ceil(
        figures["h100_vit_b16_pgd5_demand_images_per_s_estimate"]
        / figures["jpeg_decode_resize_images_per_s_per_worker"])
