"""GPUs a cost can be projected on: datasheet peaks per precision, and the fraction of peak a
run is assumed to sustain.

Peaks are NVIDIA's dense (no sparsity) figures for the SXM boards unless the name says
otherwise. Training runs at its config's precision; evaluation always runs in true FP32
(core.training.precision puts "highest" back outside the step), so it is priced at the FP32
peak, which is 15x slower than bf16 on an H100.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.infra.registry import Registry

UTILISATION = 0.28  # a typical fraction of peak for ViT training (model FLOPs utilisation)


@dataclass(frozen=True)
class GPU:
    label: str
    tflops: dict[str, float]  # precision -> dense datasheet peak, TFLOP/s
    matches: str              # how torch.cuda.get_device_name spells it

    def flops_per_s(self, precision: str, utilisation: float = UTILISATION) -> float:
        return self.tflops[precision] * 1e12 * utilisation


GPUS: Registry[GPU] = Registry("GPU")
GPUS.add("h100", GPU("H100 SXM", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}, "H100"))
GPUS.add("h100-pcie", GPU("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
                          "H100 PCIe"))
GPUS.add("h200", GPU("H200 SXM", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}, "H200"))
GPUS.add("a100", GPU("A100 SXM", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}, "A100"))
GPUS.add("l40s", GPU("L40S", {"bf16": 362.1, "tf32": 183.0, "fp32": 91.6}, "L40S"))

DEFAULT_GPU = "h100"


def gpu_named(device_name: str) -> tuple[str, bool]:
    """(registry name, whether it was recognised) of a CUDA device name; the longest match
    wins, so 'NVIDIA H100 PCIe' is the PCIe board. Unknown boards are priced as the default."""
    found = [(len(g.matches), n) for n, g in GPUS.items() if g.matches in device_name]
    return (max(found)[1], True) if found else (DEFAULT_GPU, False)


def eval_speed(device: str, device_name: str, precision: str) -> float:
    """How fast evaluation (FP32) runs next to a training step at `precision` on that device:
    the GPU's FP32 peak over its peak at `precision` (an H100 in bf16: 0.068); 1 on a CPU,
    whose measured rate is the only one there is."""
    if not device.startswith("cuda"):
        return 1.0
    g = GPUS.get(gpu_named(device_name)[0])
    return g.tflops["fp32"] / g.tflops.get(precision, g.tflops["fp32"])


def describe(name: str, utilisation: float = UTILISATION) -> str:
    g = GPUS.get(name)
    peaks = ", ".join(f"{p} {t:g}" for p, t in g.tflops.items())
    return f"{g.label} ({peaks} TFLOP/s datasheet peaks) at {utilisation:.0%} of peak"
