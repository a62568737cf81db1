"""Signs of a weak or masked evaluation, per run, as AutoAttack's authors and RobustBench
check for them, all on the same test points (the per-example flags each run keeps):

- a stronger attack above a weaker one (PGD-100 above PGD-20; AutoAttack above PGD-20,
  CW-20 or PGD-100): the stronger one should break every point the weaker one breaks;
- robust accuracy above natural accuracy;
- a large spread of PGD-20 over random restarts (an attack that depends on its start).
"""
from __future__ import annotations

import json

import torch

from core.evaluation import EVAL_ATTACKS, NATURAL
from core.infra.rundir import RunDir

SPREAD_POINTS = 2.0  # restart accuracies further apart than this are flagged


def _flags(run_dir: RunDir, attack: str) -> torch.Tensor | None:
    path = run_dir.eval_flags(attack)
    if not path.is_file():
        return None
    return torch.tensor(json.loads(path.read_text())["correct"], dtype=torch.bool)


def _acc(flags: torch.Tensor, n: int) -> float:
    f = flags[:n]
    return 100 * (f.all(dim=1) if f.ndim == 2 else f).float().mean().item()


def run_flags(run_dir: RunDir, attacks: list[str]) -> list[str]:
    """The run's flags, each a short text ('AutoAttack 84.4 > PGD-20 77.9 on 32 points')."""
    held = {a: f for a in attacks if a in EVAL_ATTACKS and (f := _flags(run_dir, a)) is not None}
    out = []
    pairs = [(weak, a.name) for a in EVAL_ATTACKS.values() for weak in a.stronger_than]
    for weak, strong in pairs:  # each attack names those it must never be above
        if weak in held and strong in held:
            n = min(len(held[weak]), len(held[strong]))
            a, b = _acc(held[weak], n), _acc(held[strong], n)
            if b > a:
                out.append(f"{EVAL_ATTACKS.get(strong).label} {b:.1f} > "
                           f"{EVAL_ATTACKS.get(weak).label} {a:.1f} on {n} points")
    if NATURAL in held:
        for name, f in held.items():
            n = min(len(f), len(held[NATURAL]))
            if name != NATURAL and _acc(f, n) > _acc(held[NATURAL], n):
                out.append(f"{EVAL_ATTACKS.get(name).label} above natural accuracy")
    for name, f in held.items():
        spread = restart_spread(f)
        if spread is not None and spread > SPREAD_POINTS:
            out.append(f"{EVAL_ATTACKS.get(name).label}: restarts {spread:.1f} points apart")
    return out


def restart_spread(flags: torch.Tensor | None) -> float | None:
    """Max minus min accuracy (points) over the restarts of a per-restart flags table."""
    if flags is None or flags.ndim != 2 or flags.shape[1] < 2:
        return None
    accs = 100 * flags.float().mean(dim=0)
    return (accs.max() - accs.min()).item()
