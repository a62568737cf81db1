"""`python -m ablations.run NAME --decide`: seeds a batch at a time until the grid's claims are
decided or the cap is reached, by the group-sequential design of ablations/tables/sequential.py.

Each look launches the grid with n seeds (runs already finished are not redone; a SLURM batch
is one submission, waited for), judges the claims still open on the runs, and stops a claim
when it is supported or not supported. What ran and why is printed, and recorded in
<runs>/_grids/decisions/<name>__<scale>.json, which the report shows beside the claims.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ablations.grid import manifest as mf
from ablations.grid.cells import expand, ran_with
from ablations.questions import get
from ablations.tables.collect import rows
from ablations.tables.sequential import bounds, decide_at, looks
from ablations.tables.verdicts import ALPHA, MIN_SEEDS, by_block, judge
from core.infra.atomic import write_json
from core.infra.errors import UserError

OPEN = ("continue",)


def decide(args: argparse.Namespace, launch: Callable[[int], object]) -> int:
    ab = get(args.name)
    claims = [c for c in ab.claims if args.scale in c.scales]
    if args.claims:
        wanted = set(args.claims.split(","))
        unknown = wanted - {c.id for c in claims}
        if unknown:
            raise UserError(f"--claims {args.claims}: {', '.join(sorted(unknown))} not a claim of "
                            f"{args.name} at {args.scale} scale (its claims: "
                            f"{', '.join(dict.fromkeys(c.id for c in claims))})")
        claims = [c for c in claims if c.id in wanted]
    plan = tuple(looks(max(args.seeds or 0, MIN_SEEDS), args.batch, args.max_seeds))
    alpha = ALPHA / len(claims)  # Bonferroni over the claims under decision
    c_k = bounds(plan, alpha)
    print(f"--decide {args.name} ({args.scale}): claims {', '.join(c.id for c in claims)}; "
          f"looks at {', '.join(map(str, plan))} seeds a block; level {ALPHA} one-sided, "
          f"{alpha:.4g} a claim; bounds z >= {', '.join(f'{c:.2f}' for c in c_k)}")
    grid = expand(ab, args.scale, 1, args.overrides)  # where the runs go, and their setting
    where = (Path(grid[0].cfg.runs_dir), ran_with(grid, args.overrides))
    state = {c.id + c.text: "continue" for c in claims}
    record = {"grid": args.name, "scale": args.scale, "plan": list(plan), "alpha": ALPHA,
              "alpha_per_claim": alpha, "bounds": list(c_k), "looks": []}
    for k, n in enumerate(plan):
        out = launch(n)
        if getattr(out, "failed", None):
            print(f"look {k + 1}: {len(out.failed)} run(s) failed; stopping (relaunch to retry)")
            return 1
        look = _look(args, ab, claims, state, (k, n, plan, alpha), where)
        record["looks"].append(look)
        write_json(mf.decision_path(where[0], args.name, args.scale, where[1]), record)
        if all(v not in OPEN for v in state.values()):
            break
    print("decided: " + "; ".join(f"{c.id} {state[c.id + c.text]}" for c in claims))
    return 0


def _look(args, ab, claims, state, design, where) -> dict:
    """Judge the open claims on the runs there are after look k (n seeds a block)."""
    k, n, plan, alpha = design
    runs_dir, setting = where
    df = rows(ab, runs_dir)
    look = {"seeds": n, "claims": {}}
    for c in claims:
        key = c.id + c.text
        if state[key] not in OPEN:
            continue
        v = judge(c, df, ab, args.scale, " ".join(setting), runs_dir)
        if v.verdict in ("not testable here", "too few seeds") or v.se is None:
            state[key] = v.verdict
            why = v.note
        else:
            state[key] = decide_at(c, by_block(v.pairs), v.test_se**2, k, plan, alpha)
            why = f"effect {v.effect:+.2f} pts, p {v.p:.3g}, {v.blocks} x {v.seeds} pairs"
        look["claims"][c.id] = {"text": c.text, "decision": state[key], "why": why}
        print(f"look {k + 1} ({n} seeds): {c.id} {c.text}: {state[key]} ({why})")
    return look
