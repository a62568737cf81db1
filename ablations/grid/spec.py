"""What an ablation declares: the paper's question it asks, its grid's axes and the claims
it tests.

Ablations live in ablations/questions/, one module each exporting `ABLATION`; they are
discovered there (ablations.questions.load_all), and each is named by its module.
"""
from __future__ import annotations

from dataclasses import dataclass, field

Axis = dict[str, list[str]]  # value label -> Hydra overrides


@dataclass(frozen=True, kw_only=True)
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
    # the smallest effect that matters, in points: the equivalence margin of a "<=" claim and
    # the gain a "+"/"-" claim must be able to exclude to be "not supported"
    margin: float = 1.0
    preconditions: tuple[str, ...] = ()  # ablations.tables.preconditions names, checked first


@dataclass(frozen=True, kw_only=True)
class Ablation:
    question: str
    axes: dict[str, Axis]
    claims: tuple[Claim, ...]
    base: tuple[str, ...] = ()          # fixed overrides for every cell
    tiny_axes: dict[str, Axis] = field(default_factory=dict)  # replaces axes at tiny scale
    tiny_base: tuple[str, ...] = ()
    exclude: tuple[dict[str, str], ...] = ()  # label combinations that are not cells
    eval: str = "ablation"              # the eval preset (attacks); the scale sets sizes
    figure: str = "bars"                # bars | curves | table (the main table: one per scale)
    seeds: int = 1                      # default number of seeds
    name: str = ""                      # its module's name, set when it is discovered

    def axes_for(self, scale: str) -> dict[str, Axis]:
        return {**self.axes, **self.tiny_axes} if scale == "tiny" else dict(self.axes)

    def base_for(self, scale: str) -> tuple[str, ...]:
        return self.base + self.tiny_base if scale == "tiny" else self.base

    def all_axes(self) -> list[str]:
        """The axis names of both scales, in order."""
        return list(dict.fromkeys(a for s in ("tiny", "paper") for a in self.axes_for(s)))


