"""CPU kernels pinned to one instruction set: a CPU run's numbers depend on its config and
its machine's CPU model only, not on which instruction set each library happens to pick.

PyTorch picks its vectorised kernels (ATen), MKL its BLAS code path and oneDNN its convolutions
by the CPU it finds, and each choice changes float rounding (measured on an Intel Xeon with
AVX-512: moving any one of the three settings changes the weights of a short tiny run). The
three libraries read these settings once, at their first use; a run's entry point
(core.runs.run.choose_kernels; the benchmark's main) sets them before any of that (a variable
already set in the environment wins; VITADV_CPU_KERNELS=native leaves all three to the
libraries). The pin does not make CPUs of different models agree: pinned alike, an AMD EPYC and
that Xeon gave the same tiny run different robust accuracies (README, "Numbers across
machines"), so a result's machine kind names its CPU model
(core.infra.provenance.machine_kind).

The pin serves fp32, the precision whose CPU numbers are meant to repeat exactly (tiny). A
bf16 run on a CPU (a paper-scale pre-flight) gets the CPU's own kernels instead: pinned to
AVX2, oneDNN emulates bf16 even on a CPU with bf16 units (AMX, AVX512-BF16), and bf16 CPU
numbers are bound to their machine anyway. Measured on an Intel Xeon with AMX: a ViT-B/4 step
of 2 images took 16.9 s in bf16 pinned, 0.51 s native (1.15 s in fp32 pinned).
"""
from __future__ import annotations

import os

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SWITCH = "VITADV_CPU_KERNELS"   # native: never pin; pinned: pin bf16 runs too
OURS = "VITADV_PINNED"          # the variables pin() set, not the user (jobs inherit both)


def pin() -> None:
    if os.environ.get(SWITCH) == "native":
        return
    ours = set(filter(None, os.environ.get(OURS, "").split(",")))
    for key, value in PINNED.items():
        if key not in os.environ:
            os.environ[key] = value
            ours.add(key)
    os.environ[OURS] = ",".join(sorted(ours))


def for_run(precision: str, device_type: str) -> None:
    """A bf16 run on a CPU uses the CPU's own kernels: this process's pin is lifted (what the
    user set stays). Call before the process's first kernel, which is when the libraries read
    the settings; called later it changes nothing, and the result records what was in use."""
    if precision != "bf16" or device_type != "cpu" or os.environ.get(SWITCH) == "pinned":
        return
    for key in filter(None, os.environ.pop(OURS, "").split(",")):
        os.environ.pop(key, None)


def settings() -> dict[str, str | None]:
    return {key: os.environ.get(key) for key in (SWITCH, *PINNED)}
