"""What an ablation declares: the question, its grid, the claim it tests (and the registry)."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.registry import Registry

Axis = dict[str, list[str]]  # value label -> Hydra overrides


@dataclass(frozen=True)
class Claim:
    """An expected effect of `treatment` over `control` on `metric`, per `group` value.

    direction: "+" (treatment higher), "-" (lower) or "<=" (not higher: no gain).
    Cells are paired on every other axis and on the seed.
    """

    id: str
    text: str
    metric: str
    axis: str
    treatment: tuple[str, ...]
    control: str
    direction: str
    reference: str
    size: float | None = None           # expected effect in accuracy points, where stated
    groups: tuple[str, ...] | None = None  # only these values of the other axes (None: all)
    scales: tuple[str, ...] = ("paper", "tiny")


@dataclass(frozen=True)
class Ablation:
    name: str
    question: str
    axes: dict[str, Axis]
    claims: tuple[Claim, ...]
    base: tuple[str, ...] = ()          # fixed overrides for every cell
    tiny_axes: dict[str, Axis] = field(default_factory=dict)  # replaces axes at tiny scale
    tiny_base: tuple[str, ...] = ()
    exclude: tuple[dict[str, str], ...] = ()  # label combinations that are not cells
    eval: str = "ablation"              # the eval preset (attacks); the scale sets sizes
    figure: str = "bars"                # bars | curves | table
    seeds: int = 1                      # default number of seeds

    def axes_for(self, scale: str) -> dict[str, Axis]:
        return {**self.axes, **self.tiny_axes} if scale == "tiny" else dict(self.axes)

    def base_for(self, scale: str) -> tuple[str, ...]:
        return self.base + self.tiny_base if scale == "tiny" else self.base

    def metrics(self) -> set[str]:
        return {c.metric for c in self.claims}


ABLATIONS: Registry[Ablation] = Registry("ablation")

MODULES = ("pretraining", "gradient_clipping", "epochs", "augmentation", "optimizer", "ard_prm",
           "methods", "warmup", "main_table")


def load_all() -> Registry[Ablation]:
    """Import every ablation module (each registers its one Ablation)."""
    import importlib

    for m in MODULES:
        importlib.import_module(f"ablations.{m}")
    return ABLATIONS


def get(name: str) -> Ablation:
    return load_all().get(name)
