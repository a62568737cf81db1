"""Whole runs: result record, resume equals uninterrupted, divergence, data sets, bad input."""
from __future__ import annotations

import json
import re

import pytest
import torch

from core.config import changed, run_id
from core.infra.errors import CheckpointError, DataNotFoundError
from core.infra.rundir import RunDir
from core.runs.run import run, run_dir_of
from tests.conftest import cli, interrupted_at


def _weights(cfg):
    return torch.load(run_dir_of(cfg).weights, weights_only=True)


def test_result_record(fast_cfg):
    cfg = fast_cfg("ard=true", "prm=true", "method=trades")
    result = run(cfg)
    run_dir = run_dir_of(cfg)
    assert result["status"] == "done" and result["run_id"] == run_id(cfg) == run_dir.name
    for key in ("clean_acc", "pgd20_acc", "robust_acc", "n_eval", "config", "code", "packages",
                "pretrained", "train_images_per_s", "wall_seconds"):
        assert key in result, key
    assert result["n_eval"] == 48 and result["config"]["method"]["name"] == "trades"
    assert {"git_sha", "dirty"} <= set(result["code"]) and result["packages"]["timm"]
    assert json.loads(run_dir.result.read_text()) == result
    curve = run_dir.curve.read_text().splitlines()
    assert len(curve) == 1 + 2 and curve[0].startswith("epoch,lr,train_loss,train_acc")
    assert run_dir.log.read_text().count("epoch 2:") == 1
    assert run_dir.checkpoint.is_file() and run_dir.config.is_file()
    assert run(cfg) == result  # finished work is returned, not redone


@pytest.mark.slow
def test_resume_equals_uninterrupted(fast_cfg, tmp_path, monkeypatch):
    """A run killed mid-epoch and restarted ends with the same weights and numbers."""
    base = fast_cfg("aug=mixup_cutmix", "ard=true", "prm=true", "checkpoint_minutes=0")
    whole = run(base)
    other = changed(base, runs_dir=str(tmp_path / "other"))
    assert run_id(other) == run_id(base)
    with pytest.raises(KeyboardInterrupt), interrupted_at(monkeypatch, 6):  # epoch 2, step 2
        run(other)
    resumed = run(other)
    assert "resumed from step 5" in run_dir_of(other).log.read_text()
    for key in ("clean_acc", "pgd20_acc", "robust_acc"):
        assert resumed[key] == whole[key]
    a, b = _weights(base), _weights(other)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["none", "pretrain"])
def test_numbers_do_not_depend_on_the_process_rng(fast_cfg, tmp_path, source):
    """Whatever ran before in the process (other runs, other tests), a config gives one answer."""
    over = (f"model.source={source}", "pretrain.epochs=1", "pretrain.train_subset=128")
    cfgs = [changed(fast_cfg(*over), runs_dir=str(tmp_path / str(i))) for i in range(2)]
    for i, cfg in enumerate(cfgs):
        torch.manual_seed(1000 + i)
        run(cfg)
    a, b = _weights(cfgs[0]), _weights(cfgs[1])
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_seed_changes_the_numbers(fast_cfg):
    a, b = run(fast_cfg("seed=0")), run(fast_cfg("seed=1"))
    assert a["run_id"] != b["run_id"]
    wa, wb = _weights(fast_cfg("seed=0")), _weights(fast_cfg("seed=1"))
    assert not torch.equal(wa["head.weight"], wb["head.weight"])


def test_diverged_run_is_recorded(fast_cfg):
    cfg = fast_cfg("optim.lr=1e30", "optim.grad_clip=false", "optim.momentum=0")
    result = run(cfg)
    assert result["status"] == "diverged"
    assert result["diverged_at"]["epoch"] == 0
    assert 0 <= result["clean_acc"] <= 1 and "pgd20_acc" in result  # the model at that point
    assert run(cfg)["status"] == "diverged"  # a result, not a crash to retry


@pytest.mark.slow
def test_pretrain_source_is_trained_once_and_shared(fast_cfg):
    over = ("model.source=pretrain", "pretrain.epochs=1", "pretrain.train_subset=128")
    a = run(fast_cfg(*over, "seed=0"))
    b = run(fast_cfg(*over, "seed=1"))
    assert a["pretrained"]["source"] == b["pretrained"]["source"]
    pre_id = a["pretrained"]["source"].removeprefix("run:")
    runs = run_dir_of(fast_cfg()).path.parent
    assert RunDir.of(runs, pre_id).read_result()["config"]["method"]["name"] \
        == "clean"
    assert len([d for d in runs.iterdir() if RunDir(d).result.is_file()]) == 3


def _digit_folder(root, digits, classes: int, per_split: int = 60) -> None:
    """An ImageFolder of the first `per_split` digits of each split whose class is < classes."""
    from torchvision.transforms.functional import to_pil_image

    for split, images in (("train", digits.train), ("val", digits.test)):
        kept = [i for i in range(len(images.labels)) if images.labels[i] < classes]
        for i in kept[:per_split]:
            folder = root / split / f"class_{int(images.labels[i])}"
            folder.mkdir(parents=True, exist_ok=True)
            to_pil_image(images.images[i]).save(folder / f"{i}.png")


def test_imagefolder_trains_end_to_end(fast_cfg, tmp_path, digits):
    _digit_folder(tmp_path / "folder", digits, 10)
    cfg = fast_cfg("data=imagefolder", f"data.root={tmp_path / 'folder'}", "data.img_size=16",
                   "data.num_workers=0", "data.train_subset=null", "eval.n=null")
    result = run(cfg)
    assert result["status"] == "done" and result["n_eval"] == 60
    assert result["num_classes"] == 10


@pytest.mark.slow
def test_an_eight_class_imagefolder_trains_and_evaluates_with_autoattack(fast_cfg, tmp_path,
                                                                        digits):
    """Standard AutoAttack's 9 target classes need 10: an 8-class folder crashed in APGD-T."""
    _digit_folder(tmp_path / "folder", digits, 8)
    cfg = fast_cfg("data=imagefolder", f"data.root={tmp_path / 'folder'}", "data.img_size=16",
                   "data.num_workers=0", "data.train_subset=null", "eval.n=null",
                   "eval.attacks=[clean,pgd20,aa]", "eval.n_aa=4")
    result = run(cfg)
    assert result["status"] == "done" and result["num_classes"] == 8
    assert result["n_aa"] == 4 and 0 <= result["aa_acc"] <= 1
    assert result["aa_target_classes"] == 7 and result["aa_apgd_t"] == 1  # recorded, not implied


def test_missing_data_set_is_one_clear_error(fast_cfg, tmp_path):
    with pytest.raises(DataNotFoundError, match="core.prefetch cifar10 --root"):
        run(fast_cfg("data=cifar10", f"data.root={tmp_path / 'nowhere'}", "model.patch_size=4"))
    with pytest.raises(DataNotFoundError, match="imagenette2"):
        run(fast_cfg("data=imagenette", f"data.root={tmp_path}", "data.img_size=16"))


def test_corrupt_or_foreign_checkpoint_is_an_error_and_is_kept(fast_cfg):
    cfg = fast_cfg()
    ckpt = run_dir_of(cfg).checkpoint
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        run(cfg)
    assert ckpt.read_bytes() == b"not a checkpoint"
    torch.save({"run_id": "someoneelse"}, ckpt)
    with pytest.raises(CheckpointError, match="belongs to run someoneelse"):
        run(cfg)
    assert not run_dir_of(cfg).result.exists()


def test_run_id_is_the_hash_of_what_changes_numbers(fast_cfg, tmp_path):
    a = fast_cfg()
    assert run_id(a) == run_id(fast_cfg("attack.eps=0.03137254901960784"))
    assert run_id(a) == run_id(changed(a, runs_dir="/elsewhere", progress=True))
    assert run_id(a) != run_id(fast_cfg("attack.eps=4/255"))
    assert run_id(a) != run_id(fast_cfg("optim.grad_clip=false"))


@pytest.mark.slow
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    for args, message in ((["model=nope"], "Valid: convit_b"), (["nokey=1"], "No such key"),
                          (["data.root=/nowhere"], "CIFAR-10 not found")):
        out = cli(*args, f"runs_dir={tmp_path}", cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr


@pytest.mark.slow
def test_cli_runs_a_tiny_cell(tmp_path):
    from tests.conftest import FAST

    out = cli(*FAST, "epochs=1", f"runs_dir={tmp_path / 'runs'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("done: run ")  # percent, on the n points measured
    assert re.search(r"  clean \d+\.\d%  pgd20 \d+\.\d%.* \(n=\d+\)$", out.stdout.strip())


@pytest.mark.parametrize("overrides", [["ema.enabled=true", "ema.decay=0.5"],
                                       ["precision=bf16"], ["optim=adamw", "method=mart"]])
@pytest.mark.slow
def test_options_run_end_to_end(fast_cfg, overrides):
    result = run(fast_cfg(*overrides, "epochs=1"))
    assert result["status"] == "done" and 0 <= result["pgd20_acc"] <= result["clean_acc"] + 0.1


@pytest.mark.slow
def test_asking_a_finished_run_for_more_attacks_evaluates_only_those(fast_cfg):
    quick = run(fast_cfg())
    cfg = fast_cfg("eval=full", "eval.n_aa=8")
    assert run_id(cfg) == quick["run_id"]
    full = run(cfg)
    assert full["clean_acc"] == quick["clean_acc"] and full["pgd20_acc"] == quick["pgd20_acc"]
    assert {"cw20_acc", "pgd100_acc", "aa_acc", "pgd20x5_acc"} <= set(full) and full["n_aa"] == 8
    assert full["config"]["eval"]["attacks"] == ["clean", "pgd20", "cw20", "pgd100", "aa",
                                                 "pgd20x5"]
    log = run_dir_of(cfg).log.read_text()
    assert log.count("epoch 2:") == 1 and "extending the evaluation" in log
    assert run(fast_cfg("eval=quick")) == full  # a subset is already there


def test_the_recorded_peak_memory_is_the_training_steps(fast_cfg, monkeypatch):
    """The eval batch probe resets the GPU's peak counter, so a peak read after evaluation is
    the evaluation's: the result (and the pre-flight's "peak memory") keep the training's,
    read before evaluation starts, and the evaluation's apart."""
    import core.runs.run as r

    phase = {"now": "training"}
    original = r.evaluate_suite

    def evaluating(*args, **kwargs):
        phase["now"] = "evaluation"
        return original(*args, **kwargs)

    monkeypatch.setattr(r, "evaluate_suite", evaluating)
    monkeypatch.setattr(r, "peak_memory", lambda device: {"bytes": 1, "what": phase["now"]})
    result = r.run(fast_cfg())
    assert result["peak_memory"]["what"] == "training"
    assert result["eval_peak_memory"]["what"] == "evaluation"


@pytest.mark.parametrize("precision, expected", [("tf32", "high"), ("fp32", "highest")])
def test_the_update_backward_runs_at_the_steps_precision(fast_cfg, monkeypatch, precision,
                                                         expected):
    """precision=tf32 put "highest" back before the update's backward: half the step ran in
    true FP32. Every backward of a step now runs at the step's matmul precision."""
    import torch

    seen = []
    original = torch.Tensor.backward

    def recorded(self, *args, **kwargs):
        seen.append(torch.get_float32_matmul_precision())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", recorded)
    from core.runs.run import run

    run(fast_cfg(f"precision={precision}", "eval.attacks=[clean]", "epochs=1"))
    assert seen and set(seen) == {expected}
    assert torch.get_float32_matmul_precision() == "highest"  # put back after the run


@pytest.mark.slow
def test_compile_traces_ard_and_prm_without_a_graph_break_and_few_recompiles(fast_cfg,
                                                                             monkeypatch):
    """ARD drew its coins with a generator inside the compiled forward: a graph break in every
    block, and 14 graphs in a 3-epoch run. Dynamo's guards do not depend on the backend, so
    the eager backend checks them in seconds: no graph break, and the recompiles bounded by
    the modes a run really has (input gradient or not, grad mode, the batch size turning
    dynamic, a batch of one), far from dynamo's limit of 8 a frame; the result records it."""
    import torch

    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kw: compile_module(self, backend="eager"))
    from core.runs.run import run

    result = run(fast_cfg("compile=true", "ard=true", "prm=true", "epochs=3",
                          "warmup_epochs=2"))
    assert result["compile"]["graph_breaks"] == 0
    assert 1 <= result["compile"]["graphs"] <= 6
    assert "torch.compile: " in RunDir.of(fast_cfg().runs_dir, result["run_id"]).log.read_text()


def test_a_run_without_a_learning_curve(fast_cfg):
    """eval.curve_n=0 (the schema allows it: the switch for grids that plot no curve) crashed
    at the end of the first epoch; its curve now keeps the training columns, the test ones
    empty."""
    import pandas as pd

    result = run(fast_cfg("eval.curve_n=0", "epochs=1"))
    assert result["status"] == "done"
    curve = pd.read_csv(RunDir.of(fast_cfg().runs_dir, result["run_id"]).curve)
    assert curve["test_clean_acc"].isna().all() and curve["train_loss"].notna().all()
