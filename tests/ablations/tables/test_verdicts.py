"""The verdict procedure (ablations/tables/verdicts.py) on simulated results with a known truth,
and its numbers against a hand computation."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablations.grid.spec import Ablation, Claim
from ablations.tables.verdicts import ALPHA, adjust, holm, judge
from core.infra.rundir import RunDir

N = 360  # test points


def _claim(direction="+", **kw) -> Claim:
    return Claim(id="x", text="t", metric="pgd20_acc", axis="arm", treatment=("T",),
                 control="C", direction=direction, reference="r", **kw)


def _ablation(models=("A",)) -> Ablation:
    return Ablation(question="q", axes={"model": {m: [] for m in models},
                                        "arm": {"T": [], "C": []}}, claims=())


def _rows(acc: dict[tuple[str, str, int], float], n: int = N) -> pd.DataFrame:
    """Rows as ablations.tables.collect.rows gives them: (model, arm, seed) -> accuracy."""
    return pd.DataFrame([{"scale": "tiny", "ran_with": "", "model": m, "arm": a, "seed": s,
                          "status": "done", "run_id": f"{m}{a}{s}", "pgd20_acc": v,
                          "n_eval": n} for (m, a, s), v in acc.items()])


def _simulate(rng, effect_pts, models=("A",), seeds=3, base=0.5, seed_sd=1.0, model_sd=0.0):
    """Paired runs: a per-model effect around `effect_pts` (model_sd), seed noise seed_sd."""
    acc = {}
    for m in models:
        eff = effect_pts + rng.normal(0, model_sd)
        for s in range(seeds):
            c = base + rng.normal(0, seed_sd) / 100
            acc[(m, "C", s)] = c
            acc[(m, "T", s)] = c + (eff + rng.normal(0, seed_sd)) / 100
    return _rows(acc)


def test_one_seed_gives_no_verdict():
    df = _simulate(np.random.default_rng(0), effect_pts=10.0, seeds=1)
    v = judge(_claim(), df, _ablation(), "tiny")
    assert v.verdict == "too few seeds" and v.se is None
    two = judge(_claim(), _simulate(np.random.default_rng(0), 10.0, seeds=2), _ablation(), "tiny")
    assert two.verdict == "too few seeds"


def test_student_t_interval_by_hand():
    """One block, diffs 1, 2, 3 points at accuracies 0.5: V_s = 1/3, V_t = 0.5 / 360 * 1e4
    (unpaired bound: no per-point flags), df = 2 (V_s + V_t)^2 / V_s^2."""
    acc = {}
    for s, d in enumerate((1.0, 2.0, 3.0)):
        acc[("A", "C", s)] = 0.5 - d / 200
        acc[("A", "T", s)] = 0.5 + d / 200
    v = judge(_claim(), _rows(acc), _ablation(), "tiny")
    c_mean = 0.5 - 2 / 200
    t_mean = 0.5 + 2 / 200
    v_t = 1e4 * (t_mean * (1 - t_mean) + c_mean * (1 - c_mean)) / N
    v_s = 1.0 / 3
    assert v.effect == pytest.approx(2.0)
    assert v.se == pytest.approx(math.sqrt(v_s + v_t))
    assert v.df == pytest.approx(2 * (v_s + v_t) ** 2 / v_s**2)
    half = stats.t.ppf(0.975, v.df) * v.se
    assert v.ci == pytest.approx((2.0 - half, 2.0 + half))
    assert v.verdict == "inconclusive" and v.test_se == pytest.approx(math.sqrt(v_t))


def test_models_are_blocks_with_welch_satterthwaite_df():
    """Two models with effects +10 and 0: theta = 5 (each model once), and the spread is each
    model's own seed spread (1 and 4 points), not the 5-point gap between the models."""
    acc = {}
    for m, diffs in (("A", (9.0, 10.0, 11.0)), ("B", (-4.0, 0.0, 4.0))):
        for s, d in enumerate(diffs):
            acc[(m, "C", s)] = 0.5
            acc[(m, "T", s)] = 0.5 + d / 100
    v = judge(_claim(), _rows(acc), _ablation(("A", "B")), "tiny")
    terms = [1.0 / 3 / 4, 16.0 / 3 / 4]  # s_b^2 / n_b / B^2
    v_s = sum(terms)
    df_s = v_s**2 / sum(t**2 / 2 for t in terms)
    assert v.effect == pytest.approx(5.0) and v.blocks == 2 and v.seeds == 3
    v_t = v.test_se**2
    assert v.df == pytest.approx(df_s * (v_s + v_t) ** 2 / v_s**2)
    pooled = np.std([9, 10, 11, -4, 0, 4], ddof=1)  # the old pooled spread: about 6.5
    assert v.se < pooled / math.sqrt(6) + 1e-9 or v.se == pytest.approx(math.sqrt(v_s + v_t))


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.001, 0.2]) == pytest.approx([0.002, 0.2])


def test_holm_turns_a_marginal_claim_inconclusive_in_a_family():
    """p just under ALPHA alone is 'supported'; beside two null claims Holm multiplies it."""
    acc = {}
    for s, d in enumerate((7.0, 8.0, 9.0, 8.0, 8.0)):  # p about 0.016 alone
        acc[("A", "C", s)], acc[("A", "T", s)] = 0.5, 0.5 + d / 100
    df = _rows(acc)
    alone = judge(_claim(), df, _ablation(), "tiny")
    assert alone.verdict == "supported" and ALPHA / 3 < alone.p < ALPHA
    family = adjust([judge(_claim(), df, _ablation(), "tiny") for _ in range(3)])
    assert all(v.p_holm == pytest.approx(min(1, 3 * alone.p)) for v in family)
    assert {v.verdict for v in family} == {"inconclusive"}


@pytest.mark.parametrize("effect, verdict", [(0.0, "supported"), (4.5, "inconclusive"),
                                             (12.0, "not supported")])
def test_no_gain_is_decided_against_the_margin(effect, verdict):
    """A small seed spread on CIFAR-10's 10,000 test points (unpaired test SE 0.7 pts), a
    margin of 5 points: 0 is within it, +4.5 leaves it open, +12 is beyond it."""
    claim = _claim("<=", margin=5.0)
    rng = np.random.default_rng(1)
    acc = {}
    for s in range(3):
        acc[("A", "C", s)] = 0.5
        acc[("A", "T", s)] = 0.5 + effect / 100 + rng.normal(0, 0.2) / 100
    v = judge(claim, _rows(acc, n=10_000), _ablation(), "tiny")
    assert v.verdict == verdict, v


def test_a_null_effect_does_not_support_no_gain_unless_within_the_margin():
    """Absence of evidence is not evidence of absence: a null effect with a large spread is
    inconclusive for "no gain"; the same null with a small spread is within the margin."""
    rng = np.random.default_rng(2)
    noisy = [judge(_claim("<=", margin=1.0), _simulate(rng, 0.0, seed_sd=3.0), _ablation(),
                   "tiny").verdict for _ in range(50)]
    assert noisy.count("supported") == 0  # the 360 test points alone keep +-7 pts open
    assert "inconclusive" in noisy


def test_null_false_positive_rate_is_at_most_alpha():
    """500 simulated nulls (3 models x 3 seeds, no effect): "+" is supported at most at the
    level (binomial slack for 500 draws)."""
    rng = np.random.default_rng(3)
    hits = sum(judge(_claim(), _simulate(rng, 0.0, models=("A", "B", "C"), seed_sd=2.0),
                     _ablation(("A", "B", "C")), "tiny").verdict == "supported"
               for _ in range(500))
    assert hits / 500 <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / 500)


def _flag_runs(runs_dir, acc_flags: dict[str, list[bool]]) -> None:
    for rid, flags in acc_flags.items():
        run = RunDir.of(runs_dir, rid)
        run.eval_flags("pgd20").parent.mkdir(parents=True)
        run.eval_flags("pgd20").write_text(json.dumps({"correct": flags}))


def test_per_point_flags_pair_the_test_error(tmp_path):
    """With flags, V_t = Var_x(D(x)) / N, D the per-point difference averaged over seeds: two
    models that differ on 20 of 360 points the same way every seed give 1e4 Var(D) / 360."""
    acc, flags = {}, {}
    for s in range(3):
        c = [True] * 180 + [False] * 180
        t = [True] * 190 + [False] * 170  # +10 points
        t[0:10] = [False] * 10            # ... and 10 lost: 20 discordant points, net 0
        acc[("A", "C", s)], acc[("A", "T", s)] = sum(c) / N, sum(t) / N
        flags[f"AC{s}"], flags[f"AT{s}"] = c, t
    _flag_runs(tmp_path, flags)
    v = judge(_claim(), _rows(acc), _ablation(), "tiny", runs_dir=tmp_path)
    d = np.array(flags["AT0"], float) - np.array(flags["AC0"], float)
    assert v.paired_points and v.test_se**2 == pytest.approx(1e4 * d.var(ddof=1) / N)
    unpaired = judge(_claim(), _rows(acc), _ablation(), "tiny")
    assert not unpaired.paired_points and unpaired.test_se > 2 * v.test_se


def test_a_grid_with_one_axis_pairs_by_seed_alone():
    """The warm-up and epochs grids have no other axis: pairs are keyed by the seed only."""
    ab = Ablation(question="q", axes={"arm": {"T": [], "C": []}}, claims=())
    rows = _rows({("A", a, s): 0.5 + (0.1 if a == "T" else 0.0) for a in "TC" for s in range(3)})
    v = judge(_claim(), rows.drop(columns="model"), ab, "tiny")
    assert v.n_pairs == 3 and v.effect == pytest.approx(10.0) and v.blocks == 1


def test_a_measurement_two_claims_share_is_marked_and_a_subset_named():
    """Treatment runs the same, control runs equal number for number (other ids): shared;
    one claim's pairs among another's (more seeds): both say so."""
    from ablations.tables.verdicts import mark_shared

    ab = Ablation(question="q", axes={"arm": {"T": [], "C": []}}, claims=())
    acc = {("A", a, s): 0.5 + (0.1 if a == "T" else 0.0) + s / 100 for a in "TC"
           for s in range(5)}
    five = _rows(acc).drop(columns="model")
    other = five.copy()
    other.loc[other["arm"] == "C", "run_id"] = "w0_" + other["run_id"]  # other ids, same numbers
    three = other[other["seed"] < 3]
    vs = {"methods": [judge(_claim(), five, ab, "tiny")],
          "warmup": [judge(_claim(), other, ab, "tiny"), judge(_claim(), three, ab, "tiny")]}
    mark_shared(vs)
    assert vs["warmup"][0].shared_with == "methods x"
    assert "the same measurement as methods x" in vs["warmup"][0].note
    assert "its 3 pairs are 3 of the 5 of methods x" in vs["warmup"][1].note
    assert "3 of its pairs are those of warmup x" in vs["methods"][0].note
