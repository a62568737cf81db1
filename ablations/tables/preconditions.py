"""Conditions a claim needs of the data before it can be judged (`Claim.preconditions`).

Each check takes the claim and the grid's rows of one setting and returns None (met) or the
reason it is not, which the verdict shows as "not testable here: <reason>".
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ablations.grid.spec import Ablation, Claim
from ablations.tables.collect import curves, of_setting
from core.config import from_dict
from core.infra.registry import Registry
from core.infra.rundir import RunDir

Check = Callable[[Claim, pd.DataFrame, Ablation, str, str, Path | None], str | None]
PRECONDITIONS: Registry[Check] = Registry("precondition")
CURVE = "test_robust_acc"  # curve.csv: the curve attack (PGD-20) on eval.curve_n points


def plateau(curve: pd.Series, epochs: int, decay_before_end: float) -> tuple[float, int]:
    """The rise of robust accuracy (points) over the last window of the constant-lr phase
    (the k = max(2, round(epochs / 8)) epochs before the first lr decay) from the window
    before it; and k."""
    k = max(2, round(epochs / 8))
    end = math.floor(epochs - decay_before_end)  # the last epoch wholly at the first lr
    last, prev = curve.loc[end - k + 1:end], curve.loc[end - 2 * k + 1:end - k]
    return 100 * (last.mean() - prev.mean()), k


@PRECONDITIONS.register("converged_control")
def converged_control(claim: Claim, df: pd.DataFrame, ab: Ablation, scale: str, ran_with: str,
                      runs_dir: Path | None) -> str | None:
    """The control has converged: averaged over its seeds, its robust accuracy on the learning
    curve rises, from one window of the constant-lr phase to its last, by no more than two
    binomial standard errors of that difference (curve_n points, k epochs a window, S seeds:
    2 sqrt(2 p (1 - p) / (curve_n k S)), epochs taken as independent)."""
    data = of_setting(df, scale, ran_with)
    control = data[(data[claim.axis] == claim.control) & data["status"].isin(("done",))]
    if control.empty or runs_dir is None:
        return "the control has no finished run"
    rises, noise_terms = [], []
    for rid in control["run_id"]:
        run = RunDir.of(runs_dir, rid)
        curve, result = curves(run), run.read_result()
        if curve is None or result is None or CURVE not in curve:
            return f"control run {rid} keeps no learning curve (curve.csv)"
        cfg = from_dict(result["config"])
        series = curve.set_index("epoch")[CURVE].dropna()
        rise, k = plateau(series, cfg.epochs, cfg.optim.decay_before_end[0])
        p = float(series.iloc[-1])
        rises.append(rise)
        noise_terms.append(2 * p * (1 - p) / (cfg.eval.curve_n * k))
    rise = sum(rises) / len(rises)
    noise = 100 * 2 * math.sqrt(sum(noise_terms) / len(noise_terms) / len(rises))
    if rise > noise:
        return (f"the control ({claim.control}) is still rising: PGD-20 +{rise:.1f} pts over "
                f"the last window of its constant-lr phase, beyond its noise ({noise:.1f})")
    return None
