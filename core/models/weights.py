"""Loaded weights and what a result records about them (source, SHA-256, normalisation)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Weights:
    state_dict: dict | None
    resolved: str
    sha256: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    num_classes: int | None = None
    info: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"source": self.resolved, "sha256": self.sha256, "mean": self.mean,
                "std": self.std, **self.info}
