"""`--decide`'s group-sequential design: its bounds against the textbook, its level over
simulated null sequences, its power on the paper's effect size, and a decide loop on fixture
runs with a known effect."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ablations.grid import manifest as mf
from ablations.grid.cells import expand
from ablations.grid.spec import Claim
from ablations.questions import get
from ablations.report import main as report
from ablations.run import main as run_main
from ablations.tables.sequential import bounds, decide_at, looks
from ablations.tables.verdicts import ALPHA
from core.infra.rundir import RunDir

PLAN = (3, 5, 7, 9, 10)


def _claim(direction="+", size=1.16) -> Claim:
    return Claim(id="x", text="t", metric="pgd20_acc", axis="a", treatment=("t",),
                 control="c", direction=direction, reference="r", size=size)


def test_looks_are_planned_from_three_seeds_to_the_cap():
    assert looks(3, 2, 10) == [3, 5, 7, 9, 10]
    assert looks(1, 2, 5) == [3, 5] and looks(3, 4, 5) == [3, 5] and looks(3, 2, 3) == [3]


def test_bounds_match_the_textbook_two_look_design():
    """Lan-DeMets O'Brien-Fleming-type spending, two equally spaced looks, one-sided 0.025:
    2.963 and 1.969 (Jennison and Turnbull 2000, table 7.6's two-sided 0.05 design)."""
    assert bounds((5, 10), ALPHA) == pytest.approx((2.963, 1.969), abs=2e-3)
    one = bounds((3,), ALPHA)
    assert one == pytest.approx((1.95996,), abs=1e-4)  # a single look: the fixed test


def _sequence(rng, theta, direction="+", sd=1.0, v_t=0.1, blocks=3, alpha=ALPHA):
    """One simulated decide run: 3 blocks, seed noise sd, the test points' error a common
    offset of variance v_t (the same points evaluate every run), looks at PLAN."""
    offset = rng.normal(0, math.sqrt(v_t))
    data = {(b,): list(theta + offset + rng.normal(0, sd, PLAN[-1])) for b in range(blocks)}
    for k, n in enumerate(PLAN):
        out = decide_at(_claim(direction), {b: d[:n] for b, d in data.items()}, v_t, k, PLAN,
                        alpha)
        if out != "continue":
            return out, n
    raise AssertionError("the last look must decide or say inconclusive")


@pytest.mark.parametrize("direction, null", [("+", 0.0), ("<=", 1.0)])
def test_the_false_positive_rate_over_null_sequences_is_at_most_the_level(direction, null):
    """600 null sequences (no gain for "+"; a gain of exactly the margin for "<="), looking
    after every batch: supported at most at ALPHA (plus 2 Monte-Carlo SE). Measured here:
    0.018 and 0.028 over 1,000."""
    rng = np.random.default_rng(11)
    hits = sum(_sequence(rng, null, direction)[0] == "supported" for _ in range(600))
    assert hits / 600 <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / 600)


def test_the_papers_effect_is_found_with_the_stated_power():
    """ARD's +1.16 points (paper), 3 models, seed spread 1 point a pair, test error 0.1
    points^2 (paired, 10,000 points): found in 87.5% of 1,000 sequences (mean 6.8 seeds a
    block); we state at least 80%."""
    rng = np.random.default_rng(12)
    found = [_sequence(rng, 1.16) for _ in range(400)]
    assert sum(o == "supported" for o, _ in found) / 400 >= 0.80


def test_looking_at_every_batch_with_the_fixed_test_would_inflate_the_error():
    """What the design prevents: the fixed-sample bound 1.96 at each of 5 looks calls more
    null claims supported than the level (this is why --decide spends alpha)."""
    rng = np.random.default_rng(13)
    naive = 0
    for _ in range(600):
        data = rng.normal(0, 1.0, (3, PLAN[-1]))
        for n in PLAN:
            x = data[:, :n]
            se = math.sqrt((x.var(axis=1, ddof=1) / n).sum() / 9)
            if x.mean() / se > 1.96:
                naive += 1
                break
    assert naive / 600 > ALPHA + 0.01


# --- the decide loop on fixture runs: ard_prm, tiny; ARD and PRM each gain 3 points
def _fake_launcher(runs_dir, gain):
    ab = get("ard_prm")
    launched = []

    def launch(seeds):
        cells = expand(ab, "tiny", seeds, [f"runs_dir={runs_dir}"])
        m = mf.load(runs_dir, ab.name, "tiny")
        mf.record_cells(m, cells)
        mf.save(runs_dir, m)
        rng = np.random.default_rng(seeds)
        for c in cells:
            run = RunDir.of(runs_dir, c.run_id)
            if run.result.is_file():
                continue
            base = 0.5 + 0.01 * c.seed
            acc = base + gain.get(c.label("plugins"), 0.0) / 100 + rng.normal(0, 0.004)
            run.mkdir()
            metrics = {"clean_acc": acc + 0.3, "pgd20_acc": acc, "cw20_acc": acc,
                       "pgd100_acc": acc, "robust_acc": acc, "n_clean": 360, "n_pgd20": 360}
            run.result.write_text(json.dumps({
                "run_id": c.run_id, "status": "done", "metrics": metrics, **metrics,
                "n_eval": 360, "code": {"git_sha": "abc1234567", "dirty": False},
                "config": {"eval": {"attacks": ["clean", "pgd20", "cw20", "pgd100"]}},
                "train_seconds": 1.0, "train_images_per_s": 1.0}))
        launched.append(seeds)
        return type("Launched", (), {"failed": []})()
    return launch, launched


@pytest.mark.slow
def test_decide_adds_seeds_until_decided_and_the_report_says_so(tmp_path, monkeypatch,
                                                                  capsys):
    runs_dir = tmp_path / "runs"
    launch, launched = _fake_launcher(runs_dir, {"ARD": 10.0, "PRM": 10.0, "ARD+PRM": 0.0})
    monkeypatch.setattr("ablations.run._launch", lambda args, launcher, seeds: launch(seeds))
    rc = run_main(["ard_prm", "--scale", "tiny", "--decide", "--max-seeds", "7",
                   "--claims", "6a,6b,6c", "--runs-dir", str(runs_dir)])
    out = capsys.readouterr().out
    assert rc == 0 and launched[0] == 3
    record = mf.read_decision(runs_dir, "ard_prm", "tiny")
    final = {cid: c["decision"] for look in record["looks"] for cid, c in look["claims"].items()}
    # +10 points beside 360-point test error (unpaired bound, about 3.7 points): supported;
    # no gain: its interval excludes a 1-point gain only with many more test points
    assert final["6a"] == final["6b"] == "supported"
    assert final["6c"] in ("inconclusive", "not supported")
    assert record["plan"] == [3, 5, 7] and record["alpha_per_claim"] == pytest.approx(ALPHA / 3)
    assert "decided: 6a supported; 6b supported" in out
    assert report(["--runs-dir", str(runs_dir), "--out", str(tmp_path / "r")]) == 0
    claims = (tmp_path / "r" / "claims.md").read_text()
    assert "group-sequential (--decide): supported at" in claims
