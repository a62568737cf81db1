"""The run's one checkpoint file: saved atomically, loaded with weights_only=True, checked."""
from __future__ import annotations

import torch

from core.infra.atomic import save_torch
from core.infra.errors import CheckpointError
from core.infra.rundir import RunDir


def save_checkpoint(run_dir: RunDir, state: dict) -> None:
    save_torch(run_dir.checkpoint, state)


def load_checkpoint(run_dir: RunDir, run_id: str) -> dict | None:
    """The saved state, None if there is none; a corrupt or foreign file is an error (and is
    left untouched, so nothing is lost)."""
    path = run_dir.checkpoint
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e)[:80]}); "
            "move it away to restart the run from scratch") from None
    if not isinstance(state, dict) or state.get("run_id") != run_id:
        found = state.get("run_id") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path} belongs to run {found}, not {run_id}; "
                              "move it away to restart the run from scratch")
    return state
