"""Hydra composition of run configs from core/conf presets plus command-line overrides."""
from __future__ import annotations

from collections.abc import Iterable

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from core.config import RunConfig, normalise
from core.infra.errors import ConfigError

ConfigStore.instance().store(name="schema", node=RunConfig)


def compose_many(override_lists: Iterable[list[str]]) -> list[RunConfig]:
    """Compose several configs in one Hydra session (the ablation grids use this)."""
    out = []
    with initialize_config_module(config_module="core.conf", version_base="1.3"):
        for overrides in override_lists:
            out.append(_compose_one(list(overrides)))
    return out


def compose(overrides: Iterable[str] = ()) -> RunConfig:
    return compose_many([list(overrides)])[0]


def _compose_one(overrides: list[str]) -> RunConfig:
    try:
        cfg = hydra_compose(config_name="config", overrides=overrides)
        obj = OmegaConf.to_object(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_one_line(e)) from None
    assert isinstance(obj, RunConfig)
    return normalise(obj)


def _one_line(e: Exception) -> str:
    """Hydra's message on one line: its first sentence, plus the valid options if it lists them."""
    text = str(e).strip()
    head = text.split("\n")[0].strip()
    if "Available options" in text:
        options = text.split("Available options", 1)[1].split("Config search path")[0]
        names = [w.strip() for w in options.split("\n")[1:] if w.strip()]
        return f"{head} Valid: {', '.join(names)}"
    if head.startswith("Could not override"):
        return f"{head} No such key; `python -m core.train --cfg` lists the keys"
    cause = e.__cause__ or e.__context__
    if cause is not None and str(cause).strip():
        return f"{head}: {str(cause).strip().splitlines()[0]}"
    return head
