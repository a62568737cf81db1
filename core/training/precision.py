"""One precision string decides the matmul precision and the autocast context (as nanoGPT)."""
from __future__ import annotations

import contextlib

import torch

from core.registry import Registry

PRECISIONS: Registry[str] = Registry("precision")
PRECISIONS.add("fp32", "highest")   # value: torch.set_float32_matmul_precision
PRECISIONS.add("tf32", "high")
PRECISIONS.add("bf16", "high")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    torch.set_float32_matmul_precision(PRECISIONS.get(precision))
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
