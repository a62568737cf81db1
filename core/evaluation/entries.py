"""The registered evaluation attacks: natural accuracy, PGD-20, CW-20, PGD-100, AutoAttack
(standard) and PGD-20 with 5 restarts, each with the facts downstream code reads from it."""
from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from core.attacks import PGD, START, cross_entropy, cw_margin, pgd_eval
from core.attacks.autoattack import autoattack_correct
from core.attacks.autoattack import settings as aa_settings
from core.evaluation.suite import NATURAL, EvalAttack, EvalContext, batches, register
from core.infra.seeding import generator


@torch.no_grad()
def clean_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  ctx: EvalContext) -> torch.Tensor:
    out = []
    for xb, yb in batches(x, y, ctx, NATURAL):
        out.append((model(xb).argmax(1) == yb).cpu())
    return torch.cat(out)


def pgd_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: EvalContext, *,
                name: str, steps: int, loss: Callable[[EvalContext], Callable],
                restarts: int = 1, first_restart: int = 0) -> torch.Tensor:
    """PGD with a uniform random start, step eval.step_size (2/255 unless set), `restarts`
    restarts on robust examples."""
    attack = PGD(ctx.eps, ctx.step_size, steps, loss(ctx), start="uniform")
    correct = torch.ones(len(y), dtype=torch.bool)
    for restart in range(first_restart, first_restart + restarts):
        idx = correct.nonzero().squeeze(1)
        if len(idx) == 0:  # nothing left to attack (or no points on this rank)
            break
        flags = []
        for (xb, yb), ib in zip(batches(x[idx], y[idx], ctx, name), idx.split(ctx.batch_size),
                                strict=True):
            global_ib = ctx.rows(len(y))[ib]  # the start depends on the example, not its shard
            noise = _start_noise(global_ib, xb.shape[1:], ctx.seed, name, restart).to(xb.device)
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


def _pgd(name: str, label: str, steps: int, loss: Callable[[EvalContext], Callable],
         **facts) -> EvalAttack:
    run = functools.partial(pgd_correct, name=name, steps=steps, loss=loss)
    return EvalAttack(name, label, run, passes=2 * steps + 1, **facts)


def restarts_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: EvalContext, *,
                     name: str, steps: int, restarts: int) -> torch.Tensor:
    """[N, restarts]: PGD-`steps` from `restarts` independent random starts, each on every
    point (restart 0 is `name`'s own start: the same as that attack). Their spread shows an
    attack that depends on where it starts."""
    return torch.stack([pgd_correct(model, x, y, ctx, name=name, steps=steps, loss=_ce,
                                    first_restart=r) for r in range(restarts)], dim=1)


def _ce(ctx: EvalContext) -> Callable:
    return cross_entropy


def _cw(ctx: EvalContext) -> Callable:
    return functools.partial(cw_margin, kappa=ctx.cw_kappa)


def aa_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               ctx: EvalContext) -> torch.Tensor:
    """AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square), chunk by chunk of eval.aa_chunk
    points, each chunk one batch seeded by its index: a point's result depends neither on the
    shard nor on the eval batch (nor so on free GPU memory); resumable attack by attack; each
    rank keeps its own state."""
    name = "aa" if ctx.world.size == 1 else f"aa_r{ctx.world.rank}of{ctx.world.size}"
    state = ctx.state.eval_state(name) if ctx.state else None
    chunks = ctx.rows(len(y)) // ctx.aa_chunk
    return autoattack_correct(model, x, y, ctx.eps, ctx.seed, chunks, ctx.aa_chunk,
                              ctx.device, state)


register(EvalAttack(NATURAL, "natural", clean_correct, passes=1))
register(_pgd("pgd20", "PGD-20", 20, _ce))
register(_pgd("cw20", "CW-20", 20, _cw))
register(_pgd("pgd100", "PGD-100", 100, _ce, stronger_than=("pgd20",)))
# about 6000 passes per example: APGD-CE and APGD-T (9 targets) at 100 steps, FAB-T, Square
# 5000 queries, each on the examples still robust (about half at the paper's accuracies)
register(EvalAttack("aa", "AutoAttack", aa_correct, passes=6000, limit="n_aa",
                    stronger_than=("pgd20", "cw20", "pgd100"), settings=aa_settings,
                    unit=lambda ctx: ctx.aa_chunk))
register(EvalAttack("pgd20x5", "PGD-20 x5 restarts", functools.partial(
    restarts_correct, name="pgd20", steps=20, restarts=5), passes=5 * 41,
    stronger_than=("pgd20",)))
