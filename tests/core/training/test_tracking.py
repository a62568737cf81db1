"""Live tracking, off by default: TensorBoard event files and an offline W&B run in the run
folder, with the curves, learning rate, gradient norms, images/s, final metrics and config."""
from __future__ import annotations

import pytest

from core.infra.errors import UserError
from core.runs.run import run, run_dir_of


def _scalars(folder) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_tensorboard_and_wandb_record_the_run(fast_cfg, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = fast_cfg("track=[tensorboard,wandb]", "epochs=3", "data.train_subset=320")
    result = run(cfg)
    run_dir = run_dir_of(cfg)
    tb = _scalars(run_dir.tensorboard)
    for tag in ("train/lr", "train/grad_norm", "train/loss", "train/images_per_s",
                "epoch/test_robust_acc", "epoch/train_loss", "final/pgd20_acc"):
        assert tag in tb, tag
    assert len(tb["epoch/test_clean_acc"]) == 3 and len(tb["train/grad_norm"]) == 3  # 30 steps
    assert tb["final/pgd20_acc"] == [pytest.approx(result["pgd20_acc"])]
    assert tb["train/lr"][0] == pytest.approx(0.1) and all(g > 0 for g in tb["train/grad_norm"])
    offline = list((run_dir.path / "wandb").glob("offline-run-*"))
    assert offline and list(offline[0].glob("*.wandb"))


def test_tracking_is_off_by_default_and_an_unknown_tracker_is_one_line(fast_cfg):
    cfg = fast_cfg("epochs=1")
    run(cfg)
    assert not run_dir_of(cfg).tensorboard.exists()
    with pytest.raises(UserError, match="valid: tensorboard, wandb"):
        run(fast_cfg("track=[mlflow]"))
