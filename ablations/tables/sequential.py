"""Deciding claims by adding seeds a batch at a time, without the looks inflating the error:
a group-sequential design with alpha spending (`python -m ablations.run NAME --decide`).

The design. Looks are planned in advance at n_1 < n_2 < ... < n_K seeds a block (the first at
MIN_SEEDS, then a batch more each time, up to the cap). Each claim's "supported" test
(ablations/tables/verdicts.py, step 5) is read at every look through the z that has its
one-sided p: z_k = Phi^-1(1 - p_k). It is supported at the first look where z_k >= c_k.
The bounds c_k spend the level alpha over the looks with Lan and DeMets' O'Brien-Fleming-type
function alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)), t_k = n_k / n_K (Jennison and
Turnbull 2000, ch. 7): c_1 = Phi^-1(1 - alpha(t_1)), and c_k solves
P(Z_1 < c_1, ..., Z_{k-1} < c_{k-1}, Z_k >= c_k) = alpha(t_k) - alpha(t_{k-1}) for the
canonical joint normal, corr(Z_i, Z_j) = sqrt(t_i / t_j). So the chance of ever calling a
null claim supported, over all looks, is alpha.

- Several claims: alpha is split equally among the claims under decision (Bonferroni,
  which holds under any dependence; Holm's step-down does not carry over to looks simply).
- "Not supported" stops a claim too (its 95% interval excludes the margin-sized effect): a
  non-binding futility stop, which can only lower the error of calling a claim supported.
- Approximations, both conservative or nearly so: the t statistic is turned into z through
  its p (the usual practice with an estimated variance); the test points' error does not
  shrink with seeds, so information grows more slowly than n_k and successive z are more
  correlated than the design assumes, which lowers the real error below alpha.
The simulations in tests/ablations/tables/test_sequential.py check the level and the power.
"""
from __future__ import annotations

import functools
import math

from scipy import optimize, stats

from ablations.grid.spec import Claim
from ablations.tables.verdicts import ALPHA, MIN_SEEDS, estimate, p_supported, refuted


def looks(start: int, batch: int, cap: int) -> list[int]:
    """Seeds a block at each planned look: start, start + batch, ..., cap."""
    start = max(start, MIN_SEEDS)
    out = list(range(start, cap, batch)) + [cap]
    return sorted(set(n for n in out if n >= start))


def spent(t: float, alpha: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: the level used up by information t."""
    return 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / math.sqrt(t))


@functools.cache
def bounds(plan: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    """The efficacy bounds c_1..c_K (z scale) of the planned looks."""
    t = [n / plan[-1] for n in plan]
    out: list[float] = []
    for k in range(len(plan)):
        step = spent(t[k], alpha) - (spent(t[k - 1], alpha) if k else 0.0)
        if k == 0:
            out.append(float(stats.norm.ppf(1 - step)))
            continue
        cov = [[math.sqrt(min(t[i], t[j]) / max(t[i], t[j])) for j in range(k + 1)]
               for i in range(k + 1)]
        before = _below(out, [row[:k] for row in cov[:k]])
        out.append(float(optimize.brentq(_gap, -1.0, 12.0, args=(before, out, cov, step),
                                         xtol=1e-6)))
    return tuple(out)


def _gap(c: float, before: float, out: list[float], cov: list[list[float]],
         step: float) -> float:
    """What look k spends with bound c, minus what it may spend."""
    return before - _below([*out, c], cov) - step


def _below(cs: list[float], cov: list[list[float]]) -> float:
    """P(Z_i < c_i for all i), Z canonical joint normal (a fixed seed: the same bounds)."""
    if len(cs) == 1:
        return float(stats.norm.cdf(cs[0]))
    mvn = stats.multivariate_normal(mean=[0.0] * len(cs), cov=cov, abseps=1e-7,
                                    releps=1e-7, maxpts=500_000)
    return float(mvn.cdf(cs, rng=0))


def decide_at(claim: Claim, blocks: dict[tuple, list[float]], v_t: float, look: int,
              plan: tuple[int, ...], alpha: float) -> str:
    """The claim at look `look` (0-based) of `plan`: supported, not supported, or continue
    (at the last look: inconclusive). blocks: each block's paired differences (points)."""
    theta, se, dof = estimate(blocks, v_t)
    p = p_supported(claim, theta, se, dof)
    z = stats.norm.isf(max(p, 1e-300))
    if z >= bounds(plan, alpha)[look]:
        return "supported"
    half = stats.t.ppf(1 - ALPHA, dof) * se
    if refuted(claim, theta - half, theta + half):
        return "not supported"
    return "inconclusive" if look == len(plan) - 1 else "continue"


def apply_decision(verdicts: list, record: dict | None, scale: str) -> None:
    """A grid decided by `--decide` shows, for each claim it decided at this scale, the
    sequential decision (a fixed-sample verdict on data gathered by looking is not valid)."""
    if not record or record.get("scale") != scale:
        return
    final: dict[str, tuple[str, int]] = {}
    for look in record["looks"]:
        for cid, c in look["claims"].items():
            final[cid] = (c["decision"], look["seeds"])
    for v in verdicts:
        if v.setting != scale or v.claim.id not in final:
            continue
        decision, seeds = final[v.claim.id]
        if decision == "continue":
            decision = "inconclusive"
        v.verdict = decision
        v.rule = (f"group-sequential (--decide): {decision} at {seeds} seeds a block; looks at "
                  f"{', '.join(map(str, record['plan']))}, O'Brien-Fleming-type spending of "
                  f"{record['alpha_per_claim']:.3g} a claim")
