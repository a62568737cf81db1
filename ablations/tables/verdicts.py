"""Claim verdicts: the measured effect of treatment over control, its uncertainty, a verdict.

Effects are paired: a treatment cell is compared with the control cell that shares every
other axis value and the seed. The uncertainty combines the spread over seeds with the
sampling error of the finite test set (binomial, unpaired: conservative), and the verdict
asks for two standard errors:
  "+" / "-": supported if the effect is beyond 2 SE in the claimed direction, not supported
             if beyond 2 SE the other way, inconclusive otherwise;
  "<=":      (no gain) not supported if the gain exceeds 2 SE, supported if no gain is
             measured at all (effect <= 0), inconclusive in between.
Diverged runs count with the accuracy they ended at (a collapse is a result); failed or
missing runs leave their pairs out, and the note says how many.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pandas as pd

from ablations.grid.spec import Ablation, Claim
from ablations.tables.collect import of_setting, setting_name
from core.evaluation import attack_of

FINISHED = ("done", "diverged")


@dataclass
class Verdict:
    claim: Claim
    scale: str
    effect: float | None        # mean paired difference, accuracy points
    spread: float | None        # std of the paired differences over pairs
    se: float | None
    n_pairs: int
    verdict: str
    note: str
    seeds: int = 0                    # seeds behind the pairs
    seeds_needed: int | None = None   # to resolve the target effect at 2 SE, these test points
    seeds_floor: int | None = None    # the same with unlimited test points (seed spread only)
    target: float | None = None       # the effect to resolve: the paper's size, else measured
    ran_with: str = ""                # the launch overrides of the cells judged (none: "")

    @property
    def setting(self) -> str:
        return setting_name(self.scale, self.ran_with)


def judge(claim: Claim, df: pd.DataFrame, ab: Ablation, scale: str,
          ran_with: str = "") -> Verdict:
    """The claim on the cells of one setting: a scale, and the overrides they ran with."""
    axes = list(ab.axes_for(scale))
    others = [a for a in axes if a != claim.axis]
    data = of_setting(df, scale, ran_with)
    if claim.groups:
        in_group = pd.Series(False, index=data.index)
        for a in others:
            in_group |= data[a].isin(claim.groups)
        data = data[in_group]
    keys = [*others, "seed"]
    control = data[data[claim.axis] == claim.control].set_index(keys)
    diffs, test_var, incomplete, diverged, seeds = [], [], 0, 0, set()
    for t in claim.treatment:
        treat = data[data[claim.axis] == t].set_index(keys)
        for key, row in treat.iterrows():
            ctl = control.loc[key] if key in control.index else None
            if ctl is None or row["status"] not in FINISHED or ctl["status"] not in FINISHED:
                incomplete += 1
                continue
            a, b = float(row[claim.metric]), float(ctl[claim.metric])
            diffs.append(100 * (a - b))
            n_eval = _n_for(row, claim.metric)
            test_var.append(1e4 * (a * (1 - a) + b * (1 - b)) / max(n_eval, 1))
            diverged += (row["status"] == "diverged") + (ctl["status"] == "diverged")
            seeds.add(key[-1] if isinstance(key, tuple) else key)
    verdict = _verdict(claim, scale, diffs, test_var, incomplete, diverged)
    return dataclasses.replace(_with_seeds_needed(verdict, len(seeds), test_var),
                               ran_with=ran_with)


def _n_for(row: pd.Series, metric: str) -> int:
    """Test examples behind `metric` (an attack run on a subset has its own count)."""
    attack = attack_of(metric)
    n = row.get(attack.count_column, None) if attack else None
    if n is None or pd.isna(n):
        n = row.get("n_eval")
    return int(n) if n is not None and not pd.isna(n) else 1


def _verdict(claim: Claim, scale: str, diffs: list[float], test_var: list[float],
             incomplete: int, diverged: int) -> Verdict:
    notes = []
    if incomplete:
        notes.append(f"{incomplete} pair(s) incomplete (failed or missing runs)")
    if diverged:
        notes.append(f"{diverged} diverged run(s) counted at their final accuracy")
    if claim.size is not None:
        notes.append(f"paper: {'+' if claim.direction != '-' else '-'}{claim.size:g} points")
    if not diffs:
        return Verdict(claim, scale, None, None, None, 0, "inconclusive",
                       "; ".join(["no complete pair", *notes]))
    n = len(diffs)
    mean = sum(diffs) / n
    spread = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    se = math.sqrt(spread**2 / n + sum(test_var) / len(test_var) / n)
    return Verdict(claim, scale, mean, spread if n > 1 else None, se, n,
                   _decide(claim.direction, mean, se), "; ".join(notes))


def _with_seeds_needed(v: Verdict, seeds: int, test_var: list[float]) -> Verdict:
    """How many seeds would put 2 SE below the effect to resolve (the paper's size where it
    says one, else the measured effect): with these test points, and with unlimited ones."""
    v.seeds = seeds
    target = v.claim.size if v.claim.size is not None else (
        abs(v.effect) if v.effect else None)
    if not seeds or v.spread is None or not target:
        return v
    per_seed = v.n_pairs / seeds  # pairs one seed gives (groups x treatments)
    needed = lambda var: max(1, math.ceil(4 * var / target**2 / per_seed - 1e-9))  # noqa: E731
    v.target = target
    v.seeds_needed = needed(v.spread**2 + sum(test_var) / len(test_var))
    v.seeds_floor = needed(v.spread**2)
    return v


def rule(direction: str) -> str:
    """The rule `_decide` applies, in words, for the pages."""
    if direction == "<=":
        return "supported if effect <= 0; not supported if > +2 SE; else inconclusive"
    sign = "+" if direction == "+" else "-"
    other = "-" if direction == "+" else "+"
    return (f"supported if beyond {sign}2 SE; not supported if beyond {other}2 SE; "
            "else inconclusive")


def _decide(direction: str, mean: float, se: float) -> str:
    if direction == "<=":
        if mean > 2 * se:
            return "not supported"
        return "supported" if mean <= 0 else "inconclusive"
    signed = mean if direction == "+" else -mean
    if signed > 2 * se:
        return "supported"
    if signed < -2 * se:
        return "not supported"
    return "inconclusive"


def seeds_to_decide(v: Verdict) -> str:
    """'12 / 5 (at 1.16 pts)': seeds for 2 SE at the target effect, then with unlimited points."""
    if v.seeds_needed is None:
        return "–"
    return f"{v.seeds_needed} / {v.seeds_floor} (at {v.target:.2g} pts)"
