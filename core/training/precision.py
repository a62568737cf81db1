"""One precision string decides the matmul precision and the autocast context (as nanoGPT)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from core.infra.registry import Registry

PRECISIONS: Registry[str] = Registry("precision")
PRECISIONS.add("fp32", "highest")   # value: torch.set_float32_matmul_precision
PRECISIONS.add("tf32", "high")
PRECISIONS.add("bf16", "high")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """The step's precision; the process's matmul precision is put back afterwards, so one
    run never changes the numbers of the next one in the same process."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(PRECISIONS.get(precision))
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
           else contextlib.nullcontext())
    try:
        with amp:
            yield
    finally:
        torch.set_float32_matmul_precision(before)
