"""The ablations, one module each exporting `ABLATION` (an ablations.grid.spec.Ablation) that
asks one of the paper's questions; and their registry.

A new ablation is a new module here: it is discovered and named by its file name.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from ablations.grid.spec import Ablation
from core.infra.registry import Registry

ABLATIONS: Registry[Ablation] = Registry("ablation")


def load_all() -> Registry[Ablation]:
    """Discover every ablation module in ablations/questions (each exports ABLATION)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ABLATIONS:
            module = importlib.import_module(f"{__name__}.{info.name}")
            ABLATIONS.add(info.name, dataclasses.replace(module.ABLATION, name=info.name))
    return ABLATIONS


def get(name: str) -> Ablation:
    return load_all().get(name)
