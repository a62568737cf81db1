"""Dry-run checks and cost estimates of a grid, without running it.

Cost model, in forward passes F of one image (FLOPs counted by torch on the meta device):
an attack step is a forward and an input-gradient backward (2F), a weight update 3F, so a
PGD-k AT step is (2k + 3)F per image; TRADES and MART add a clean pass (3F). Evaluation:
PGD-k (2k + 1)F per example, AutoAttack about 6000F per example (half of them robust).
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from ablations.jobs import Job
from core.config import RunConfig
from core.errors import UserError

EVAL_PASSES = {"clean": 1, "pgd20": 41, "cw20": 41, "pgd100": 201, "aa": 6000}
EXTRA_UPDATE_PASSES = {"trades": 3, "mart": 3}
TRAIN_SIZES = {"digits": (1437, 360), "cifar10": (50000, 10000), "imagenette": (9469, 3925)}


@dataclass
class JobCheck:
    job: Job
    flops: float
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@functools.cache
def forward_flops(arch: str, img_size: int, patch: int | None, window: int | None,
                  classes: int = 10) -> float:
    import timm

    from core.config import ModelCfg
    from core.models import timm_kwargs

    kwargs, _ = timm_kwargs(ModelCfg(arch=arch, patch_size=patch, window_size=window), img_size,
                            classes)
    with torch.device("meta"):
        net = timm.create_model(arch, **kwargs)
        x = torch.empty(1, 3, img_size, img_size)
    with FlopCounterMode(display=False) as counter:
        net(x)
    return float(counter.get_total_flops())


def job_flops(cfg: RunConfig) -> float:
    img = cfg.model.img_size or cfg.data.img_size
    f = forward_flops(cfg.model.arch, img, cfg.model.patch_size, cfg.model.window_size)
    n_train, n_test = TRAIN_SIZES.get(cfg.data.name, (10000, 1000))
    if cfg.data.train_subset:
        n_train = min(n_train, cfg.data.train_subset)
    per_image = 3 if cfg.method.name == "clean" else 2 * cfg.attack.steps + 3
    per_image += EXTRA_UPDATE_PASSES.get(cfg.method.name, 0)
    train = cfg.epochs * n_train * per_image * f
    curve = cfg.epochs * min(cfg.eval.curve_n, n_test) * 42 * f
    n_eval = min(cfg.eval.n or n_test, n_test)
    evals = sum(EVAL_PASSES[a] * (min(cfg.eval.n_aa or n_eval, n_eval) if a == "aa" else n_eval)
                for a in cfg.eval.attacks)
    return train + curve + evals * f


def check(job: Job, produced: set[str]) -> JobCheck:
    """Problems (the job cannot run) and warnings (it needs something first)."""
    from core.validate import validate

    out = JobCheck(job, 0.0)
    try:
        validate(job.cfg)
        out.flops = job_flops(job.cfg)
    except UserError as e:
        out.problems.append(str(e))
        return out
    data = _data_problem(job.cfg.data.name, job.cfg.data.root, job.cfg.data.img_size)
    if data:
        out.problems.append(data)
    weights = _weights_problem(job.cfg.model.source, job.cfg.runs_dir, produced)
    if weights:
        out.warnings.append(weights)
    return out


@functools.cache
def _data_problem(name: str, root: str | None, img_size: int) -> str | None:
    from core.config import DataCfg
    from core.data import load_splits

    try:
        load_splits(DataCfg(name=name, root=root, img_size=img_size))
    except UserError as e:
        return str(e)
    return None


def _weights_problem(source: str, runs_dir: str, produced: set[str]) -> str | None:
    from pathlib import Path

    from core.models.sources import cached_weights_file, split_source

    kind, arg = split_source(source)
    if kind == "timm" and cached_weights_file(arg) is None:
        return (f"{source} is not in the local cache: the job needs internet, or run "
                f"`python -m core.prefetch weights {arg}` first")
    if kind == "file" and not Path(arg).expanduser().is_file():
        return f"weights file {arg} does not exist"
    finished = (Path(runs_dir) / arg / "weights.pth").is_file()
    if kind == "run" and arg not in produced and not finished:
        return f"run {arg} has no weights yet"
    return None


def cpu_flops_per_s(threads: int = 1) -> float:
    """What this CPU sustains on the tiny ViT (forward + input backward), measured now."""
    import timm

    import core.models.tiny  # noqa: F401

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
