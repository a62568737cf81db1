"""Expand an ablation into cells: one composed RunConfig per (axis values, seed)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from ablations.grid.spec import Ablation
from core.config import RunConfig, run_id
from core.config.compose import compose_many
from core.config.identity import runtime_dict


@dataclass(frozen=True)
class Cell:
    ablation: str
    labels: tuple[tuple[str, str], ...]   # ((axis, value label), ...) in axis order
    seed: int
    cfg: RunConfig
    overrides: tuple[str, ...]

    @property
    def run_id(self) -> str:
        return run_id(self.cfg)

    @property
    def name(self) -> str:
        return " ".join(f"{a}={v}" for a, v in self.labels) + f" seed={self.seed}"

    def label(self, axis: str) -> str:
        return dict(self.labels)[axis]


def expand(ab: Ablation, scale: str, seeds: int,
           extra: list[str] | tuple[str, ...] = ()) -> list[Cell]:
    """All cells of `ab` at `scale` with seeds 0..seeds-1; `extra` overrides go last."""
    axes = ab.axes_for(scale)
    combos = list(itertools.product(*[list(v.items()) for v in axes.values()]))
    specs, overrides = [], []
    for combo in combos:
        chosen = {axis: label for axis, (label, _) in zip(axes, combo, strict=True)}
        if any(all(chosen.get(a) == v for a, v in ex.items()) for ex in ab.exclude):
            continue
        for seed in range(seeds):
            ov = [f"scale={scale}", f"eval={ab.eval}", *ab.base_for(scale)]
            for _, (_, axis_overrides) in zip(axes, combo, strict=True):
                ov += axis_overrides
            ov += [f"seed={seed}", *extra]
            labels = tuple((axis, label) for axis, (label, _) in zip(axes, combo, strict=True))
            specs.append((labels, seed))
            overrides.append(ov)
    cfgs = compose_many(overrides)
    return [Cell(ab.name, labels, seed, cfg, tuple(ov))
            for (labels, seed), cfg, ov in zip(specs, cfgs, overrides, strict=True)]


def ran_with(cells: list[Cell], extra: list[str] | tuple[str, ...]) -> list[str]:
    """The `extra` overrides that change what the cells are: those naming only where or how
    fast they run (runs_dir=, data.root=, device=, threads=) do not set them apart."""
    runtime = runtime_dict(cells[0].cfg) if cells else {}
    return [o for o in extra if _key(o) not in runtime]  # a group (eval=quick) sets apart


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")
