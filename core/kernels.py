"""CPU kernels pinned to one instruction set, so a CPU run gives the same numbers on any
x86-64 CPU with AVX2, not only on CPUs of one kind.

PyTorch picks its vectorised kernels (ATen), MKL its BLAS code path and oneDNN its
convolutions by the CPU it finds: an AVX-512 CPU and an AVX2 CPU round differently, so the
same run id gave different numbers on two machines. The three libraries read these settings
once, at their first use; `core/__init__.py` sets them before any of that (a variable already
set in the environment wins; VITADV_CPU_KERNELS=native leaves all three to the libraries).
Measured on an AMD EPYC (AVX2): pinned AVX2 is what these libraries pick there anyway (no
cost); each result records the capability in use (core.provenance.machine).
"""
from __future__ import annotations

import os

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SWITCH = "VITADV_CPU_KERNELS"


def pin() -> None:
    if os.environ.get(SWITCH, "pinned") == "native":
        return
    for key, value in PINNED.items():
        os.environ.setdefault(key, value)


def settings() -> dict[str, str | None]:
    return {key: os.environ.get(key) for key in (SWITCH, *PINNED)}
