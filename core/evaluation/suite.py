"""The evaluation suite: natural accuracy, PGD-20, CW-20, PGD-100 and AutoAttack (standard).

Each registered attack says what it is (label, column, cost in passes, which test points it
runs on); everything downstream (cost estimates, tables, figures, resuming) reads that from
the entry. Every attack gives a per-example "still correct" flag; robust accuracy is the
point-wise worst case over all of them. Finished attacks are stored in the run folder, so an
interrupted evaluation resumes instead of starting over.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from tqdm import tqdm

from core.attacks.pgd import eval_mode
from core.config import EvalCfg
from core.infra.atomic import write_json
from core.infra.distributed import World, eval_shard, world
from core.infra.registry import Registry
from core.infra.rundir import RunDir

log = logging.getLogger(__name__)
NATURAL = "clean"           # the attack that is no attack: natural accuracy
WORST_CASE = "robust_acc"   # the point-wise worst case over every attack a run was asked for


@dataclass
class EvalContext:
    eps: float
    seed: int
    batch_size: int
    device: torch.device
    eval: EvalCfg | None = None      # the config's evaluation block (CW's kappa, subsets)
    state: RunDir | None = None      # where finished attacks and AutoAttack's state are kept
    progress: bool = False
    index: torch.Tensor | None = None  # the global index of each row of x (None: 0..n-1)
    world: World = field(default_factory=world)

    @property
    def cw_kappa(self) -> float:
        return (self.eval or EvalCfg()).cw_kappa

    @property
    def step_size(self) -> float:
        return float((self.eval or EvalCfg()).step_size)

    @property
    def aa_chunk(self) -> int:
        return (self.eval or EvalCfg()).aa_chunk

    def rows(self, n: int) -> torch.Tensor:
        return torch.arange(n) if self.index is None else self.index


Evaluator = Callable[[nn.Module, torch.Tensor, torch.Tensor, EvalContext], torch.Tensor]


@dataclass(frozen=True)
class EvalAttack:
    """An evaluation attack and its facts.

    correct(model, x, y, ctx) -> bool [N] (or [N, restarts]): still correctly classified
      after the attack (after each of its independent restarts).
    passes: forward-pass equivalents per example (an input-gradient step is 2), for costs.
    limit: the EvalCfg field capping it to the first N test points (None: every point).
    stronger_than: attacks it must never be above on the same points (a sign of a weak or
      masked evaluation if it is: the report flags the run).
    """

    name: str
    label: str
    correct: Evaluator
    passes: float
    limit: str | None = None
    stronger_than: tuple[str, ...] = ()
    # what it runs with on K classes ({"aa_target_classes": 7} for 8), recorded in the result
    settings: Callable[[int], dict[str, int]] | None = None
    # the fixed number of points it attacks together, for an attack whose result depends on
    # which points share a batch (None: per point; any batch will do); shards deal whole units
    unit: Callable[[EvalContext], int] | None = None

    def shard_unit(self, ctx: EvalContext) -> int:
        return self.unit(ctx) if self.unit else ctx.batch_size

    @property
    def column(self) -> str:
        return f"{self.name}_acc"

    @property
    def count_column(self) -> str:
        return f"n_{self.name}"

    def points(self, eval_cfg: EvalCfg | None, n: int) -> int:
        """How many of the first `n` test points it runs on."""
        cap = getattr(eval_cfg, self.limit) if self.limit and eval_cfg is not None else None
        return n if cap is None else min(cap, n)


EVAL_ATTACKS: Registry[EvalAttack] = Registry("evaluation attack")


def register(attack: EvalAttack) -> EvalAttack:
    return EVAL_ATTACKS.add(attack.name, attack)


def attack_of(column: str) -> EvalAttack | None:
    """The attack behind a metric column (`pgd20_acc` -> PGD-20), None for the worst case."""
    return next((a for a in EVAL_ATTACKS.values() if a.column == column), None)


def metric_label(column: str) -> str:
    """How tables and figures name a metric column."""
    attack = attack_of(column)
    return attack.label if attack else "worst case" if column == WORST_CASE else column


def metric_columns() -> list[str]:
    """Every attack's column in registration order, then the worst case."""
    return [a.column for a in EVAL_ATTACKS.values()] + [WORST_CASE]


def ordered(names: list[str] | set[str]) -> list[str]:
    """Attack names in registration order (the order tables show them in)."""
    return [a.name for a in EVAL_ATTACKS.values() if a.name in names]


CPU_BATCH = 256  # evaluation batch when none is set and there is no GPU memory to size it by


def eval_batch_size(requested: int | None, model: nn.Module, image_shape: torch.Size,
                    device: torch.device) -> int:
    """`requested`, else on a GPU the largest power of two (32..4096) whose attack step fits
    in 80% of the free memory, probed with one 32-example input gradient; else CPU_BATCH. No
    result depends on it: PGD and CW start per example, AutoAttack goes by eval.aa_chunk
    (both tested); core.runs.run logs it in the run's train.log."""
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


def batches(x: torch.Tensor, y: torch.Tensor, ctx: EvalContext, name: str):
    for xb, yb in tqdm(list(zip(x.split(ctx.batch_size), y.split(ctx.batch_size), strict=True)),
                       desc=name, disable=not ctx.progress, leave=False):
        yield xb.to(ctx.device), yb.to(ctx.device)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: list[str],
             ctx: EvalContext) -> dict:
    """Metrics `<attack>_acc`, `robust_acc` (worst case over all attacks) and counts.

    x are [0,1] images on the CPU; each attack sees its own first `points` of them. Each
    finished attack's flags are kept in the run folder (ctx.state).
    """
    with eval_mode(model):  # drop path and dropout are training noise, for every attack
        return _evaluate(model, x, y, attacks, ctx)


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: list[str],
              ctx: EvalContext) -> dict:
    flags: dict[str, torch.Tensor] = {}
    for name in attacks:
        attack = EVAL_ATTACKS.get(name)
        n = attack.points(ctx.eval, len(y))
        flags[name] = _cached(ctx.state, name, n)
        if flags[name] is None:
            flags[name] = _sharded(attack, model, x[:n], y[:n], ctx)
            if ctx.state and ctx.world.main:
                write_json(ctx.state.eval_flags(name), {"correct": flags[name].tolist()})
        log.info("%s accuracy %.4f on %d examples", name, robust(flags[name]).float().mean(), n)
    metrics = summarise(flags)
    for attack in (EVAL_ATTACKS.get(name) for name in attacks):
        if attack.settings:
            metrics.update(attack.settings(_classes(model, x, ctx)))
    return metrics


def _classes(model: nn.Module, x: torch.Tensor, ctx: EvalContext) -> int:
    with eval_mode(model), torch.no_grad():
        return model(x[:1].to(ctx.device)).shape[1]


def _sharded(attack: EvalAttack, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             ctx: EvalContext) -> torch.Tensor:
    """The attack on this rank's chunks of points, the flags of all ranks put together (on
    every rank). Each point's result depends on the point alone, not on its shard."""
    if ctx.world.size == 1:
        return attack.correct(model, x, y, ctx)
    mine = eval_shard(len(y), attack.shard_unit(ctx), ctx.world)
    local = (attack.correct(model, x[mine], y[mine], replace(ctx, index=mine)) if len(mine)
             else torch.zeros(0, dtype=torch.bool))
    parts = ctx.world.gather((mine.tolist(), local.tolist()))
    width = next((len(f[0]) for _, f in parts if f and isinstance(f[0], list)), None)
    out = torch.ones((len(y), width) if width else len(y), dtype=torch.bool)
    for idx, flags in parts:
        if idx:
            out[torch.tensor(idx, dtype=torch.long)] = torch.tensor(flags, dtype=torch.bool)
    return out


def _cached(state: RunDir | None, name: str, n: int) -> torch.Tensor | None:
    path = state.eval_flags(name) if state else None
    if path is None or not path.is_file():
        return None
    correct = torch.tensor(json.loads(path.read_text())["correct"], dtype=torch.bool)
    return correct if len(correct) == n else None


def robust(flags: torch.Tensor) -> torch.Tensor:
    """Per point: robust to the attack (to every restart, for per-restart flags)."""
    return flags.all(dim=1) if flags.ndim == 2 else flags


def summarise(flags: dict[str, torch.Tensor]) -> dict:
    """Accuracies per attack and the point-wise worst case on the examples all attacks saw."""
    flags = {k: robust(v) for k, v in flags.items()}
    metrics: dict = {EVAL_ATTACKS.get(k).column: v.float().mean().item() for k, v in flags.items()}
    metrics.update({EVAL_ATTACKS.get(k).count_column: len(v) for k, v in flags.items()})
    common = min(len(v) for v in flags.values())
    worst = torch.stack([v[:common] for v in flags.values()]).all(dim=0)
    metrics[WORST_CASE] = worst.float().mean().item()
    metrics["n_robust"] = common
    return metrics


def worst_case(state: RunDir, attacks: list[str]) -> float | None:
    """The point-wise worst case over `attacks` from their stored flags (None if one is not
    stored), e.g. for a grid that asked a shared run for fewer attacks than it holds."""
    paths = [state.eval_flags(a) for a in attacks]
    if not all(p.is_file() for p in paths):
        return None
    flags = [robust(torch.tensor(json.loads(p.read_text())["correct"], dtype=torch.bool))
             for p in paths]
    n = min(len(f) for f in flags)
    return torch.stack([f[:n] for f in flags]).all(dim=0).float().mean().item()


def covers(metrics: dict, eval_cfg: EvalCfg, n_eval: int) -> bool:
    """Whether finished `metrics` hold every attack `eval_cfg` asks for, on the points it
    asks for."""
    for name in eval_cfg.attacks:
        attack = EVAL_ATTACKS.get(name)
        if attack.column not in metrics:
            return False
        if attack.limit and metrics.get(attack.count_column) != attack.points(eval_cfg, n_eval):
            return False
    return True
