"""The cost model of a run, without running it: FLOPs, and time on a measured device.

In forward passes F of one image (FLOPs counted by torch on the meta device): an attack step
is a forward and an input-gradient backward (2F), a weight update 3F, so a PGD-k AT step is
(2k + 3)F per image, plus what the objective adds (its `extra_passes`); each evaluation
attack says its own passes per example (core.evaluation). A run's cost includes the runs its
weight source needs first (the clean pretraining of `pretrain`) unless they are finished.
Training and evaluation are kept apart: on a GPU they run at different precisions
(core.runs.gpus).
"""
from __future__ import annotations

import functools
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import core.models.tiny  # noqa: F401
from core.config import DataCfg, ModelCfg, RunConfig, run_id
from core.data import load_splits
from core.data.sets import DATASETS
from core.evaluation import EVAL_ATTACKS
from core.infra.errors import UserError
from core.infra.rundir import RunDir
from core.models import timm_kwargs
from core.models.sources import source_of
from core.runs.gpus import GPUS, UTILISATION, gpu_named
from core.training.objectives import objective_of

UNKNOWN_SIZES = (10000, 1000)  # (train, test) images of a data set that is not here to count
CURVE_PASSES = 42              # per curve point and epoch: natural + PGD-20


@functools.cache
def forward_flops(arch: str, img_size: int, patch: int | None, window: int | None,
                  classes: int = 10) -> float:
    import timm

    kwargs, _ = timm_kwargs(ModelCfg(arch=arch, patch_size=patch, window_size=window), img_size,
                            classes)
    with torch.device("meta"):
        net = timm.create_model(arch, **kwargs)
        x = torch.empty(1, 3, img_size, img_size)
    with FlopCounterMode(display=False) as counter:
        net(x)
    return float(counter.get_total_flops())


def passes_per_image(cfg: RunConfig) -> float:
    """Forward-pass equivalents of one training step per image."""
    objective, _ = objective_of(cfg.method)
    return (2 * cfg.attack.steps if objective.attacks else 0) + 3 + objective.extra_passes


def job_flops(cfg: RunConfig) -> float:
    return sum(job_flops_parts(cfg))


def job_flops_parts(cfg: RunConfig) -> tuple[float, float]:
    """(training, evaluation) FLOPs of `cfg` alone; the per-epoch curve is evaluation."""
    img = cfg.model.img_size or cfg.data.img_size
    f = forward_flops(cfg.model.arch, img, cfg.model.patch_size, cfg.model.window_size)
    n_train, n_test = data_facts(cfg.data.name, cfg.data.root, cfg.data.img_size)[1]
    if cfg.data.train_subset:
        n_train = min(n_train, cfg.data.train_subset)
    train = cfg.epochs * n_train * passes_per_image(cfg) * f
    curve = cfg.epochs * min(cfg.eval.curve_n, n_test) * CURVE_PASSES * f
    n_eval = min(cfg.eval.n or n_test, n_test)
    evals = sum(a.passes * a.points(cfg.eval, n_eval)
                for a in map(EVAL_ATTACKS.get, cfg.eval.attacks))
    return train, curve + evals * f


@functools.cache
def data_facts(name: str, root: str | None, img_size: int) -> tuple[str | None, tuple[int, int]]:
    """(why the data set cannot be read here or None, its (train, test) sizes: counted where
    it is, else the data set's nominal sizes; a stand-in's too, since it stands for the real
    set, whose runs are the ones to cost)."""

    nominal = DATASETS.get(name).sizes or UNKNOWN_SIZES
    try:
        splits = load_splits(DataCfg(name=name, root=root, img_size=img_size))
    except UserError as e:
        return str(e), nominal
    return None, nominal if splits.stand_in else (len(splits.train), len(splits.test))


def cpu_flops_per_s(threads: int = 1) -> float:
    """What this CPU sustains on the tiny ViT (forward + input backward), measured now."""
    import timm

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        net = timm.create_model("vitadv_vit_micro").eval()
        x = torch.rand(128, 3, 16, 16, requires_grad=True)
        for _ in range(2):
            net(x).sum().backward()
        t = time.perf_counter()
        for _ in range(5):
            net(x).sum().backward()
        seconds = (time.perf_counter() - t) / 5
    finally:
        torch.set_num_threads(old)
    return 128 * 2 * forward_flops("vitadv_vit_micro", 16, None, None) / seconds


def needed_runs(cfg: RunConfig) -> list[RunConfig]:
    """`cfg` and every unfinished run it needs first, needed ones first."""
    needed = source_of(cfg.model.source).needs(cfg)
    if needed is not None and RunDir.of(needed.runs_dir, run_id(needed)).read_result() is None:
        return [*needed_runs(needed), cfg]
    return [cfg]


def total_flops(cfg: RunConfig) -> float:
    """`cfg`'s FLOPs plus those of every unfinished run it needs first."""
    return sum(job_flops(c) for c in needed_runs(cfg))


def gpu_seconds(cfg: RunConfig, gpu: str, utilisation: float = UTILISATION
                ) -> tuple[float, float]:
    """(training, evaluation) seconds of `cfg` alone on `gpu`: training at its precision,
    evaluation in FP32."""
    g = GPUS.get(gpu)
    train, evaluation = job_flops_parts(cfg)
    return (train / g.flops_per_s(cfg.precision, utilisation),
            evaluation / g.flops_per_s("fp32", utilisation))


def projected_seconds(cfg: RunConfig, device: torch.device) -> tuple[float, str]:
    """(seconds, how the rate was had) for `cfg` and the runs it needs, on `device`."""
    runs = needed_runs(cfg)
    if device.type == "cuda":
        gpu, known = gpu_named(torch.cuda.get_device_name(device))
        how = (f"{GPUS.get(gpu).label} datasheet peaks" if known else
               f"an unrecognised GPU priced as an {GPUS.get(gpu).label}")
        return (sum(sum(gpu_seconds(c, gpu)) for c in runs),
                f"{how} at {UTILISATION:.0%} of peak, evaluation in FP32")
    rate = cpu_flops_per_s(cfg.threads or torch.get_num_threads())
    return sum(map(job_flops, runs)) / rate, f"{rate / 1e9:.0f} GFLOP/s measured on this CPU"
