"""A config's identity: the experiment fields flattened and hashed into the run id (the
runtime, the requests and the labels stay out, so a run is found again wherever it ran)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from core.config.schema import EXPERIMENT, ROLE, RUNTIME, SINCE, RunConfig

# Before objectives declared their own hyper-parameters every config carried method.beta
# (6.0 unless set); the hash sees it where it is absent, so the ids of those runs hold.
HASHED_WHEN_ABSENT = {"method.beta": 6.0}


def _flatten(value: Any, prefix: str, roles: tuple[str, ...]) -> dict[str, Any]:
    """Dotted leaves of the fields whose role is in `roles` (dicts are flattened too)."""
    out: dict[str, Any] = {}
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if dataclasses.is_dataclass(v):
                out.update(_flatten(v, f"{prefix}{f.name}.", roles))
            elif f.metadata.get(ROLE, EXPERIMENT) in roles and not (
                    SINCE in f.metadata and v == f.metadata[SINCE]):
                out.update(_flatten(v, f"{prefix}{f.name}", roles))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}", roles))
    else:
        out[prefix] = value
    return out


def experiment_dict(cfg: RunConfig) -> dict[str, Any]:
    """The experiment part of `cfg`, flattened: what the run id hashes."""
    flat = {**HASHED_WHEN_ABSENT, **_flatten(cfg, "", (EXPERIMENT,))}
    return dict(sorted(flat.items()))


def runtime_dict(cfg: RunConfig) -> dict[str, Any]:
    """Where and how fast `cfg` runs, flattened."""
    return _flatten(cfg, "", (RUNTIME,))


def run_id(cfg: RunConfig) -> str:
    text = json.dumps(experiment_dict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
