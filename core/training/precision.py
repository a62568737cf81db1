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
def matmul_precision(precision: str) -> Iterator[None]:
    """The FP32 matmul precision of `precision` (TF32 for tf32 and bf16), put back afterwards,
    so one run never changes the numbers of the next one in the same process. A step holds it
    over its backward too: outside it an update's backward would run in true FP32."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(PRECISIONS.get(precision))
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """The step's forward precision: its matmul precision, and bf16 autocast for bf16."""
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
           else contextlib.nullcontext())
    with matmul_precision(precision), amp:
        yield
