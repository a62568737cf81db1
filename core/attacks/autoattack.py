"""Croce & Hein's AutoAttack (pyautoattack), standard version, resumable attack by attack.

The library's own state file cannot be resumed in pyautoattack 0.2.0 (a restored run hits an
unbound `y_adv`), so we keep the state: after each of its four attacks on each chunk of
points, the per-example robust flags are written atomically. Each chunk runs exactly as one
standard run would (same attack objects and parameters, each attack only on the examples
still robust), seeded by the chunk's index.
The library reseeds the global RNG, so it runs inside `torch.random.fork_rng`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from core.infra.atomic import write_json
from core.infra.errors import UserError
from core.infra.seeding import derive_seed

log = logging.getLogger(__name__)


def autoattack_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int,
                       chunks: torch.Tensor, chunk_size: int, device: torch.device,
                       state_path: Path | None = None,
                       on_attack: Callable[[str, float], None] | None = None) -> torch.Tensor:
    """Per-example bool: still correctly classified after APGD-CE, APGD-T, FAB-T and Square.

    chunks[i]: the chunk (of the global evaluation order) point i belongs to. Each chunk is
    one standard AutoAttack run in one batch of at most `chunk_size` points, seeded by its
    chunk index, so a point's result is the same whichever rank (shard) evaluates it and
    whatever the eval batch. State is saved after every attack of every chunk."""
    from pyautoattack import AutoAttack

    state = _load_state(state_path, len(y))
    with torch.no_grad():
        classes = model(x[:1].to(device)).shape[1]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for chunk in chunks.unique().tolist():
            rows = (chunks == chunk).nonzero().squeeze(1)
            aa = AutoAttack(model, norm="Linf", eps=eps, version="standard",
                            seed=derive_seed(seed, "autoattack", chunk) % 2**31, device=device)
            aa.logger = log
            fit_to_classes(aa, classes)
            for name in list(aa.attacks_to_run):
                key = f"{chunk}:{name}"
                if key in state["done"]:
                    continue
                idx = rows[state["robust"][rows]]
                if len(idx):
                    aa.attacks_to_run = [name]  # the standard settings; one attack at a time
                    y_adv = _attack(aa, x[idx], y[idx], chunk_size)
                    state["robust"][idx] = y_adv.cpu() == y[idx].cpu()
                state["done"].append(key)
                _save_state(state_path, state)
                if on_attack:
                    on_attack(name, state["robust"].float().mean().item())
    return state["robust"]


def _attack(aa, x: torch.Tensor, y: torch.Tensor, chunk_size: int) -> torch.Tensor:
    try:
        return aa.run_standard_evaluation(x, y, batch_size=chunk_size)[1]
    except torch.cuda.OutOfMemoryError:  # never a smaller batch: that would change the numbers
        raise UserError(f"AutoAttack's chunk of eval.aa_chunk={chunk_size} points does not fit "
                        "in GPU memory: set eval.aa_chunk lower (a different evaluation: other "
                        "run and evaluation ids); finished attacks are kept") from None


DLR_TARGETED_CLASSES = 4  # APGD-T's targeted DLR loss reads the fourth-largest logit
STANDARD_TARGETS = 9      # the standard version's target classes for APGD-T and FAB-T


def target_classes(classes: int) -> int:
    """min(9, classes - 1): there are no more wrong classes to target."""
    return min(STANDARD_TARGETS, classes - 1)


def settings(classes: int) -> dict[str, int]:
    """What AutoAttack runs with on `classes` classes, for the result."""
    return {"aa_target_classes": target_classes(classes),
            "aa_apgd_t": int(classes >= DLR_TARGETED_CLASSES)}


def fit_to_classes(aa, classes: int) -> None:
    """Standard AutoAttack on fewer than 10 classes: APGD-T and FAB-T take min(9, classes - 1)
    target classes, and below 4 classes APGD-T, whose loss needs 4 logits, is left out
    (APGD-CE, FAB-T and Square still run). 10 or more classes: the standard attack unchanged."""
    aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = target_classes(classes)
    if not settings(classes)["aa_apgd_t"]:
        aa.attacks_to_run = [a for a in aa.attacks_to_run if a != "apgd-t"]


def _load_state(path: Path | None, n: int) -> dict:
    if path is not None and path.is_file():
        d = json.loads(path.read_text())
        if len(d["robust"]) == n:
            return {"done": d["done"], "robust": torch.tensor(d["robust"], dtype=torch.bool)}
        log.warning("ignoring AutoAttack state %s: it is for %d examples, not %d",
                    path, len(d["robust"]), n)
    return {"done": [], "robust": torch.ones(n, dtype=torch.bool)}


def _save_state(path: Path | None, state: dict) -> None:
    if path is not None:
        write_json(path, {"done": state["done"], "robust": state["robust"].tolist()})
