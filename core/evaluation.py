"""The evaluation suite: natural accuracy, PGD-20, CW-20, PGD-100 and AutoAttack (standard).

Every attack gives a per-example "still correct" flag; robust accuracy is the point-wise worst
case over all of them. Finished attacks are stored in the run folder, so an interrupted
evaluation resumes instead of starting over.
"""
from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from core.atomic import write_json
from core.attacks import ATTACK_LOSSES, PGD, START, pgd_eval
from core.attacks.autoattack import autoattack_correct
from core.attacks.pgd import eval_mode
from core.registry import Registry
from core.seeding import generator

log = logging.getLogger(__name__)


@dataclass
class EvalContext:
    eps: float
    seed: int
    batch_size: int
    device: torch.device
    cw_kappa: float = 50.0
    n_aa: int | None = None
    state_dir: Path | None = None
    progress: bool = False


Evaluator = Callable[[nn.Module, torch.Tensor, torch.Tensor, EvalContext], torch.Tensor]
EVAL_ATTACKS: Registry = Registry("evaluation attack")


@EVAL_ATTACKS.register("clean")
@torch.no_grad()
def clean_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  ctx: EvalContext) -> torch.Tensor:
    out = []
    for xb, yb in _batches(x, y, ctx, "clean"):
        out.append((model(xb).argmax(1) == yb).cpu())
    return torch.cat(out)


def pgd_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: EvalContext, *,
                name: str, steps: int, loss: str, restarts: int = 1) -> torch.Tensor:
    """PGD with a uniform random start, step 2/255, `restarts` restarts on robust examples."""
    loss_fn = ATTACK_LOSSES.get(loss)
    if loss == "cw":
        loss_fn = functools.partial(loss_fn, kappa=ctx.cw_kappa)
    attack = PGD(ctx.eps, 2 / 255, steps, loss_fn, start="uniform")
    correct = torch.ones(len(y), dtype=torch.bool)
    for restart in range(restarts):
        idx = correct.nonzero().squeeze(1)
        flags = []
        for (xb, yb), ib in zip(_batches(x[idx], y[idx], ctx, name), idx.split(ctx.batch_size),
                                strict=True):
            noise = _start_noise(ib, xb.shape[1:], ctx.seed, name, restart).to(xb.device)
            flags.append(pgd_eval(model, xb, yb, attack, noise)[1].cpu())
        if flags:
            correct[idx] = torch.cat(flags)
    return correct


def _start_noise(indices: torch.Tensor, shape: torch.Size, seed: int, name: str,
                 restart: int) -> torch.Tensor:
    """Uniform [-1,1] start per example, drawn from (seed, attack, restart, example index):
    the same whatever the batch size, the device or the other examples."""
    draw = START.get("uniform")
    return torch.stack([draw(shape, generator(seed, "eval", name, restart, int(i)))
                        for i in indices])


EVAL_ATTACKS.add("pgd20", functools.partial(pgd_correct, name="pgd20", steps=20, loss="ce"))
EVAL_ATTACKS.add("cw20", functools.partial(pgd_correct, name="cw20", steps=20, loss="cw"))
EVAL_ATTACKS.add("pgd100", functools.partial(pgd_correct, name="pgd100", steps=100, loss="ce"))


@EVAL_ATTACKS.register("aa")
def aa_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               ctx: EvalContext) -> torch.Tensor:
    """AutoAttack on the first n_aa examples; the rest count as not evaluated (-> n_aa)."""
    n = len(y) if ctx.n_aa is None else min(ctx.n_aa, len(y))
    state = ctx.state_dir / "aa_state.json" if ctx.state_dir else None
    return autoattack_correct(model, x[:n], y[:n], ctx.eps, ctx.seed, ctx.batch_size,
                              ctx.device, state)


CPU_BATCH = 256  # evaluation batch when none is set and there is no GPU memory to size it by


def eval_batch_size(requested: int | None, model: nn.Module, image_shape: torch.Size,
                    device: torch.device) -> int:
    """`requested`, else on a GPU the largest power of two (32..4096) whose attack step fits
    in 80% of the free memory, probed with one 32-example input gradient; else CPU_BATCH. Our
    PGD and CW results do not depend on the batch (per-example starts; tested), AutoAttack's
    starts do, so core.run logs the batch used in the run's train.log."""
    if requested:
        return requested
    if device.type != "cuda":
        return CPU_BATCH
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    probe = torch.rand(32, *image_shape, device=device, requires_grad=True)
    with eval_mode(model):
        torch.autograd.grad(model(probe).float().logsumexp(1).sum(), probe)
    per_example = max((torch.cuda.max_memory_allocated(device) - base) / 32, 1.0)
    free, _ = torch.cuda.mem_get_info(device)
    fits = max(int(0.8 * free / per_example), 32)
    return min(4096, 2 ** int(math.log2(fits)))


def _batches(x: torch.Tensor, y: torch.Tensor, ctx: EvalContext, name: str):
    for xb, yb in tqdm(list(zip(x.split(ctx.batch_size), y.split(ctx.batch_size), strict=True)),
                       desc=name, disable=not ctx.progress, leave=False):
        yield xb.to(ctx.device), yb.to(ctx.device)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: list[str],
             ctx: EvalContext) -> dict:
    """Metrics `<attack>_acc`, `robust_acc` (worst case over all attacks) and counts.

    x are [0,1] images on the CPU. Each finished attack's flags are cached in ctx.state_dir.
    """
    flags: dict[str, torch.Tensor] = {}
    for name in attacks:
        flags[name] = _cached(name, len(y), ctx) if ctx.state_dir else None
        if flags[name] is None:
            flags[name] = EVAL_ATTACKS.get(name)(model, x, y, ctx)
            if ctx.state_dir:
                write_json(ctx.state_dir / f"{name}.json", {"correct": flags[name].tolist()})
        log.info("%s accuracy %.4f on %d examples", name, flags[name].float().mean(),
                 len(flags[name]))
    return summarise(flags)


def _cached(name: str, n: int, ctx: EvalContext) -> torch.Tensor | None:
    path = ctx.state_dir / f"{name}.json"
    if not path.is_file():
        return None
    correct = torch.tensor(json.loads(path.read_text())["correct"], dtype=torch.bool)
    expected = n if name != "aa" or ctx.n_aa is None else min(n, ctx.n_aa)
    return correct if len(correct) == expected else None


def summarise(flags: dict[str, torch.Tensor]) -> dict:
    """Accuracies per attack and the point-wise worst case on the examples all attacks saw."""
    metrics: dict = {f"{k}_acc": v.float().mean().item() for k, v in flags.items()}
    metrics.update({f"n_{k}": len(v) for k, v in flags.items()})
    common = min(len(v) for v in flags.values())
    worst = torch.stack([v[:common] for v in flags.values()]).all(dim=0)
    metrics["robust_acc"] = worst.float().mean().item()
    metrics["n_robust"] = common
    return metrics
