"""Claim verdicts: one stated procedure, from the runs of a grid to a verdict per claim.

The data. A claim compares a treatment with a control on one metric (accuracy, in points).
Runs are paired: a treatment run and the control run that shares every other axis value and
the seed; d = 100 (a_treatment - a_control). A *block* is one value of the other axes (a model,
a method) and one treatment level; a block holds one pair per seed. Diverged runs count with
the accuracy they ended at (a collapse is a result); failed or missing runs leave their pairs
out, and the note says how many.

1. Preconditions. A claim may declare conditions on the data (`Claim.preconditions`, checked
   by ablations.tables.preconditions); one that fails gives "not testable here: <reason>",
   never a verdict.
2. Minimum seeds. Every block needs at least MIN_SEEDS = 3 pairs (two degrees of freedom for
   its spread); fewer gives "too few seeds", never a verdict.
3. The effect: theta = the mean over blocks of each block's mean difference (models are
   blocks: each model's effect counts once, whatever its spread; their effects are combined,
   not pooled into one spread).
4. Its standard error, from two independent sources:
   - seeds: V_s = sum_b s_b^2 / n_b / B^2 (s_b: the std of block b's differences over its
     n_b seeds), with Welch-Satterthwaite degrees of freedom
     df = V_s^2 / sum_b (s_b^2 / n_b / B^2)^2 / (n_b - 1);
   - test points: the same N points evaluate every run, so their sampling error does not
     shrink with seeds. Where every run keeps its per-point flags it is paired: V_t =
     Var_x(D(x)) / N, D(x) the per-point difference averaged over seeds and blocks (as a
     paired t / McNemar variance); otherwise the unpaired binomial bound
     (a(1-a) + b(1-b)) / N of each block's mean accuracies, blocks taken as fully
     correlated (conservative). V_t is treated as known (no degrees of freedom).
   SE = sqrt(V_s + V_t); intervals use Student's t with the df above, at ALPHA = 0.025 one
   sided (the two-sided 95% interval [lo, hi] = theta -+ t_{0.975, df} SE).
5. The decision, against a stated margin m (`Claim.margin`, 1 point unless the claim says):
   - "+" (treatment higher): supported if theta > 0 is significant (one-sided t test,
     p < ALPHA after Holm); not supported if hi < m (any gain is below the margin, the
     opposite direction included); inconclusive otherwise. "-" is the mirror image.
   - "<=" (no gain): an equivalence-type test, non-superiority: supported if theta < m is
     significant (p of H0: theta >= m below ALPHA after Holm, i.e. hi < m; the lower half of
     TOST is not part of the claim: a loss is no gain either); not supported if lo > m (a gain
     beyond the margin is established); inconclusive otherwise.
6. Multiplicity: the "supported" tests of one grid's claims at one setting are one family,
   adjusted by Holm's step-down method (which holds under any dependence between claims);
   each verdict shows its raw and adjusted p.
7. A claim whose pairs are, run for run, the same measurement as another grid's claim (same
   treatment runs, control runs with identical numbers) is shown as shared with it
   (ablations.tables.documents).

"Seeds to decide" is the number of seeds per block at which, with the spreads and test
error measured here, the interval would clear the decision boundary by the target effect
(the paper's size where it states one, else the margin); "test points" when no number of
seeds can, because the test points' error alone is too large.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from scipy import stats

from ablations.grid.spec import Ablation, Claim
from ablations.tables.collect import of_setting, setting_name
from ablations.tables.preconditions import PRECONDITIONS
from core.evaluation import attack_of
from core.infra.rundir import RunDir

FINISHED = ("done", "diverged")
MIN_SEEDS = 3
ALPHA = 0.025
VERDICTS = ("supported", "not supported", "inconclusive", "too few seeds",
            "not testable here")


@dataclass
class Pair:
    block: tuple
    seed: int
    treat: pd.Series
    ctl: pd.Series
    d: float                          # points


@dataclass
class Verdict:
    claim: Claim
    scale: str
    effect: float | None        # theta, accuracy points
    se: float | None
    n_pairs: int
    verdict: str
    note: str
    seeds: int = 0                    # seeds in the smallest block
    blocks: int = 0
    df: float | None = None
    ci: tuple[float, float] | None = None
    p: float | None = None            # the "supported" test's one-sided p, raw
    p_holm: float | None = None       # ... after Holm over the grid's claims at this setting
    test_se: float | None = None      # the test points' part of the SE
    paired_points: bool = False       # test error from per-point flags (else unpaired bound)
    seeds_needed: int | None = None
    ran_with: str = ""
    rule: str = ""                    # the rule that decided this verdict, in words
    shared_with: str = ""             # "methods 6c": the same measurement, shown there
    pairs: list[Pair] = field(default_factory=list, repr=False)

    @property
    def setting(self) -> str:
        return setting_name(self.scale, self.ran_with)


def judge(claim: Claim, df: pd.DataFrame, ab: Ablation, scale: str, ran_with: str = "",
          runs_dir: Path | None = None) -> Verdict:
    """The claim on the cells of one setting (a scale and the overrides they ran with),
    before multiplicity (see `adjust`)."""
    pairs, incomplete, diverged = _pairs(claim, df, ab, scale, ran_with)
    notes = []
    if incomplete:
        notes.append(f"{incomplete} pair(s) incomplete (failed or missing runs)")
    if diverged:
        notes.append(f"{diverged} diverged run(s) counted at their final accuracy")
    base = Verdict(claim, scale, None, None, len(pairs), "inconclusive", "",
                   ran_with=ran_with, pairs=pairs)
    for name in claim.preconditions:
        reason = PRECONDITIONS.get(name)(claim, df, ab, scale, ran_with, runs_dir)
        if reason:
            return _done(base, "not testable here", [f"not testable here: {reason}", *notes],
                         f"precondition: {name}")
    if not pairs:
        return _done(base, "inconclusive", ["no complete pair", *notes], "no data")
    blocks = by_block(pairs)
    fewest = min(len(ds) for ds in blocks.values())
    base = dataclasses.replace(base, seeds=fewest, blocks=len(blocks))
    theta = sum(_mean(ds) for ds in blocks.values()) / len(blocks)
    if fewest < MIN_SEEDS:
        return _done(dataclasses.replace(base, effect=theta), "too few seeds",
                     [f"{fewest} seed(s) in a block; a verdict needs {MIN_SEEDS}", *notes],
                     f"no verdict below {MIN_SEEDS} seeds a block")
    v_t, paired = _test_variance(claim, pairs, blocks, runs_dir)
    theta, se, dof = estimate(blocks, v_t)
    half = stats.t.ppf(1 - ALPHA, dof) * se
    v = dataclasses.replace(
        base, effect=theta, se=se, df=dof, ci=(theta - half, theta + half),
        p=p_supported(claim, theta, se, dof), test_se=math.sqrt(v_t), paired_points=paired)
    v.seeds_needed = _seeds_needed(claim, blocks, v_t)
    notes.append("test error paired on per-point flags" if paired else
                 "test error: unpaired bound (runs keep no per-point flags)")
    v.p_holm = v.p
    verdict, why = _decide(v, 1)  # alone; `adjust` decides again within its grid's family
    return _done(v, verdict, notes, why)


def estimate(blocks: dict[tuple, list[float]], v_t: float) -> tuple[float, float, float]:
    """Steps 3-4: theta, its SE and degrees of freedom from each block's differences (points)
    and the test points' variance V_t."""
    theta = sum(_mean(ds) for ds in blocks.values()) / len(blocks)
    v_s, df_s = _seed_variance(blocks)
    se = math.sqrt(v_s + v_t)
    return theta, se, (df_s * (v_s + v_t) ** 2 / v_s**2 if v_s > 0 else math.inf)


def adjust(verdicts: list[Verdict]) -> list[Verdict]:
    """Holm over the "supported" tests of one grid's claims at one setting, then decide."""
    tested = [v for v in verdicts if v.p is not None]
    for v, p in zip(tested, holm([v.p for v in tested]), strict=True):
        v.p_holm = p
        v.verdict, v.rule = _decide(v, len(tested))
    return verdicts


def mark_shared(all_verdicts: dict[str, list[Verdict]]) -> None:
    """Step 7: a claim whose pairs are, run for run, those of a claim met before (the same
    treatment runs; control runs with the same seed and every accuracy equal, as w = 0 runs
    of the warm-up grid equal the no-plugin runs: ARD and PRM act during warm-up only) is
    the same measurement: it is marked as shared with the first, not shown as new evidence.
    One whose pairs are some of another's (that one ran more seeds) says so, both ways."""
    seen: dict[tuple, str] = {}
    sets: list[tuple[tuple, frozenset, Verdict, str]] = []
    for name, verdicts in all_verdicts.items():
        for v in verdicts:
            if not v.pairs:
                continue
            where = (v.claim.metric, v.setting)
            pairs = frozenset((p.treat["run_id"], p.seed, _numbers(p.ctl)) for p in v.pairs)
            label = f"{name} {v.claim.id}"
            if (where, pairs) in seen:
                v.shared_with = seen[(where, pairs)]
                _add_note(v, f"the same measurement as {v.shared_with} (the same runs, "
                             "number for number)")
                continue
            seen[(where, pairs)] = label
            sets.append((where, pairs, v, label))
    for where, pairs, v, label in sets:
        for where2, pairs2, v2, label2 in sets:
            if where == where2 and pairs < pairs2:
                _add_note(v, f"its {len(pairs)} pairs are {len(pairs)} of the {len(pairs2)} of "
                             f"{label2} (the same runs, number for number)")
                _add_note(v2, f"{len(pairs)} of its pairs are those of {label}")


def _add_note(v: Verdict, text: str) -> None:
    v.note = "; ".join(filter(None, [text, v.note]))


def _numbers(row: pd.Series) -> tuple:
    return tuple(sorted((k, round(float(x), 9)) for k, x in row.items()
                        if str(k).endswith("_acc") and not pd.isna(x)))


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): p_(i) (m - i + 1), made monotone.
    scipy has no Holm and statsmodels would be a dependency for these four lines."""
    order = sorted(range(len(ps)), key=ps.__getitem__)
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, ps[i] * (len(ps) - rank)))
        out[i] = running
    return out


def _decide(v: Verdict, family: int) -> tuple[str, str]:
    c, (lo, hi) = v.claim, v.ci
    m = c.margin
    holm_txt = f", Holm over {family}" if family > 1 else ""
    if c.direction == "<=":
        if v.p_holm < ALPHA:
            return "supported", f"non-superiority: effect < +{m:g} pts, p < {ALPHA}{holm_txt}"
        if refuted(c, lo, hi):
            return "not supported", f"95% CI above +{m:g} pts (a gain beyond the margin)"
        return "inconclusive", f"95% CI straddles +{m:g} pts"
    word = "gain" if c.direction == "+" else "loss"
    if v.p_holm < ALPHA:
        return "supported", f"one-sided t test: {word} > 0, p < {ALPHA}{holm_txt}"
    if refuted(c, lo, hi):
        return "not supported", f"95% CI excludes a {word} of {m:g} pts or more"
    return "inconclusive", f"95% CI includes both 0 and a {word} of {m:g} pts"


def refuted(claim: Claim, lo: float, hi: float) -> bool:
    """Step 5's "not supported", on the 95% interval [lo, hi]: a "no gain" claim when the
    interval lies above the margin; a "+"/"-" claim when it excludes an effect of the
    margin's size in the claimed direction."""
    if claim.direction == "<=":
        return lo > claim.margin
    sign = 1 if claim.direction == "+" else -1
    return max(sign * lo, sign * hi) < claim.margin


def _done(v: Verdict, verdict: str, notes: list[str], rule: str) -> Verdict:
    c = v.claim
    if c.size is not None:
        notes.append(f"paper: {'+' if c.direction != '-' else '-'}{c.size:g} points")
    v.note = "; ".join(notes)
    if verdict:
        v.verdict, v.rule = verdict, rule
    return v


def _pairs(claim: Claim, df: pd.DataFrame, ab: Ablation, scale: str,
           ran_with: str) -> tuple[list[Pair], int, int]:
    others = [a for a in ab.axes_for(scale) if a != claim.axis]
    data = of_setting(df, scale, ran_with)
    if claim.groups:
        in_group = pd.Series(False, index=data.index)
        for a in others:
            in_group |= data[a].isin(claim.groups)
        data = data[in_group]
    keys = [*others, "seed"]
    control = data[data[claim.axis] == claim.control].set_index(keys)
    pairs, incomplete, diverged = [], 0, 0
    for t in claim.treatment:
        for key, row in data[data[claim.axis] == t].set_index(keys).iterrows():
            key = key if isinstance(key, tuple) else (key,)
            at = key if len(keys) > 1 else key[0]  # a one-level index takes a scalar
            ctl = control.loc[at] if at in control.index else None
            if ctl is None or row["status"] not in FINISHED or ctl["status"] not in FINISHED:
                incomplete += 1
                continue
            d = 100 * (float(row[claim.metric]) - float(ctl[claim.metric]))
            pairs.append(Pair((*key[:-1], t), int(key[-1]), row, ctl, d))
            diverged += (row["status"] == "diverged") + (ctl["status"] == "diverged")
    return pairs, incomplete, diverged


def by_block(pairs: list[Pair]) -> dict[tuple, list[float]]:
    blocks: dict[tuple, list[float]] = {}
    for p in pairs:
        blocks.setdefault(p.block, []).append(p.d)
    return blocks


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _var(xs: list[float]) -> float:
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def _seed_variance(blocks: dict[tuple, list[float]]) -> tuple[float, float]:
    """V_s and its Welch-Satterthwaite degrees of freedom."""
    b2 = len(blocks) ** 2
    terms = [(_var(ds) / len(ds) / b2, len(ds) - 1) for ds in blocks.values()]
    v = sum(t for t, _ in terms)
    denom = sum(t**2 / k for t, k in terms)
    return v, (v**2 / denom if denom > 0 else math.inf)


def _test_variance(claim: Claim, pairs: list[Pair], blocks: dict, runs_dir: Path | None
                   ) -> tuple[float, bool]:
    """V_t (points^2): paired on per-point flags where every run has them, else the bound."""
    flags = _flags_reader(claim.metric, runs_dir)
    per_block: dict[tuple, list] = {}
    for p in pairs:
        t, c = flags(p.treat["run_id"]), flags(p.ctl["run_id"])
        if t is None or c is None or len(t) != len(c):
            return _unpaired_bound(claim, pairs, blocks), False
        per_block.setdefault(p.block, []).append([x - y for x, y in zip(t, c, strict=True)])
    n = len(next(iter(per_block.values()))[0])
    if any(len(r) != n for rs in per_block.values() for r in rs):
        return _unpaired_bound(claim, pairs, blocks), False
    block_means = [[sum(col) / len(col) for col in zip(*rs, strict=True)]
                   for rs in per_block.values()]
    d = [sum(col) / len(col) for col in zip(*block_means, strict=True)]
    return 1e4 * _var(d) / n, True


def _unpaired_bound(claim: Claim, pairs: list[Pair], blocks: dict) -> float:
    sds = []
    for b in blocks:
        ps = [p for p in pairs if p.block == b]
        a = _mean([float(p.treat[claim.metric]) for p in ps])
        c = _mean([float(p.ctl[claim.metric]) for p in ps])
        n = min(_n_for(p.treat, claim.metric) for p in ps)
        sds.append(math.sqrt(1e4 * (a * (1 - a) + c * (1 - c)) / max(n, 1)))
    return _mean(sds) ** 2


def _flags_reader(metric: str, runs_dir: Path | None) -> Callable[[str], list[float] | None]:
    attack = attack_of(metric)

    def read(run_id: str) -> list[float] | None:
        if runs_dir is None or attack is None:
            return None
        path = RunDir.of(runs_dir, run_id).eval_flags(attack.name)
        try:
            correct = json.loads(path.read_text())["correct"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return [float(all(c) if isinstance(c, list) else c) for c in correct]
    return read


def _n_for(row: pd.Series, metric: str) -> int:
    """Test examples behind `metric` (an attack run on a subset has its own count)."""
    attack = attack_of(metric)
    n = row.get(attack.count_column, None) if attack else None
    if n is None or pd.isna(n):
        n = row.get("n_eval")
    return int(n) if n is not None and not pd.isna(n) else 1


def p_supported(claim: Claim, theta: float, se: float, dof: float) -> float:
    """One-sided p of the test whose rejection supports the claim (step 5)."""
    if se == 0:
        return 0.0 if _toward(claim, theta) else 1.0
    if claim.direction == "<=":
        return float(stats.t.cdf((theta - claim.margin) / se, dof))   # H0: theta >= m
    sign = 1 if claim.direction == "+" else -1
    return float(stats.t.sf(sign * theta / se, dof))                   # H0: sign theta <= 0


def _toward(claim: Claim, theta: float) -> bool:
    if claim.direction == "<=":
        return theta < claim.margin
    return theta * (1 if claim.direction == "+" else -1) > 0


def _seeds_needed(claim: Claim, blocks: dict[tuple, list[float]], v_t: float) -> int | None:
    """Seeds a block for t_{1-ALPHA} SE below the target effect (None: seeds cannot)."""
    target = claim.size if claim.size is not None else claim.margin
    b = len(blocks)
    mean_var = sum(_var(ds) for ds in blocks.values()) / b
    for n in range(MIN_SEEDS, 201):
        dof = max(b * (n - 1), 1)
        if stats.t.ppf(1 - ALPHA, dof) * math.sqrt(mean_var / n / b + v_t) < target:
            return n
    return None


def seeds_to_decide(v: Verdict) -> str:
    """'7 (at 1.16 pts)': seeds a block to resolve the target effect; 'test points' if the
    test points' error alone is too large for any number of seeds."""
    if v.se is None:
        return "–"
    target = v.claim.size if v.claim.size is not None else v.claim.margin
    if v.seeds_needed is None:
        return f"– (test points: ±{v.test_se:.1f} alone)"
    return f"{v.seeds_needed} (at {target:.3g} pts)"


def rule(direction: str, margin: float = 1.0) -> str:
    """The procedure's rule for a direction, in words, for the pages' legends."""
    if direction == "<=":
        return (f"supported if the effect is significantly below +{margin:g} pts "
                f"(non-superiority); not supported if its 95% CI lies above +{margin:g}")
    word = "gain" if direction == "+" else "loss"
    return (f"supported if a {word} is significant (one-sided t, Holm); not supported if the "
            f"95% CI excludes a {word} of {margin:g} pts")


def interval(v: Verdict) -> str:
    """'+3.1 [-0.4, +6.6]' (95% CI, points) or '–'."""
    if v.ci is None:
        return "–" if v.effect is None else f"{v.effect:+.1f}"
    return f"{v.effect:+.1f} [{v.ci[0]:+.1f}, {v.ci[1]:+.1f}]"
