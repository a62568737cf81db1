"""Benchmarks, printed as `name: value` lines: ratios measured in one run on one device.

    python -m core.bench [--device cpu|cuda] [--model PRESET] [--repeats N] [overrides...]
    python -m core.bench --data       # JPEG decoding per worker vs an H100's demand
    python -m core.bench --acceptance [--out acceptance.json]   # a GPU's first hour, one JSON

Against a bare hand-written loop (core engine overhead) and against `core.bench.reference`, the
paper's loop in the official code's style (the baseline for every speed claim):
- at_step_vs_bare_loop: our PGD-10 AT step / a bare PyTorch step, same model and batch
  (target <= 1.05); ard_prm_overhead: with ARD+PRM active / without (target <= 1.05).
- at_step_vs_reference: reference step time / ours, data loading included (>= 1.3 on CPU).
- pgd20_eval_vs_reference and pgd20_eval_speedup_vs_torchattacks: their PGD-20 evaluation
  time / ours on the same adversarially trained model, with every accuracy printed.
- at_ard_prm_step_vs_reference, trades_step_vs_reference: the same with ARD+PRM in warm-up,
  and for TRADES (the reference recomputes the clean softmax at every attack step).
- train_images_per_s: our AT training throughput; bf16_vs_fp32_attack_acc_delta: accuracy
  against our training attack under bf16 autocast minus under fp32 (>0: bf16 is weaker).
The default model is the tiny ViT on digits (trained on first use, cached in runs/); other
presets (e.g. --model vit_b16) use random CIFAR-shaped data, which is fine for speed.
"""
from __future__ import annotations

import sys

import torch

from core.bench.acceptance import acceptance
from core.bench.figures import Setup, bench_eval, bench_steps
from core.bench.streaming import bench_data
from core.infra.atomic import write_json
from core.infra.cli import Parser
from core.infra.errors import UserError
from core.infra.kernels import pin
from core.runs.checks import check_device


def parser() -> Parser:
    p = Parser(prog="python -m core.bench", description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="vit_micro", help="a model preset (default: tiny ViT)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--data", action="store_true",
                   help="only the JPEG streaming figures (core/bench/streaming.py)")
    p.add_argument("--images", type=int, default=300, help="JPEGs for --data")
    p.add_argument("--acceptance", action="store_true",
                   help="the paper step (ours, bare, reference), compile off/on, the eval "
                        "batch and PGD-20 in FP32/TF32, the CUDA tests and main_table's "
                        "pre-flight, into one JSON (core/bench/acceptance.py); on a CPU, a "
                        "smoke of the same path on the tiny model")
    p.add_argument("--out", default="acceptance.json", help="where --acceptance writes")
    p.add_argument("overrides", nargs="*",
                   help="hydra overrides for the tiny model's configs (e.g. epochs=2 runs_dir=x)")
    return p


def main(argv: list[str] | None = None) -> int:
    pin()  # the runs' CPU kernels, before the first one
    a = parser().parse_args(argv)
    if a.data:
        for k, v in bench_data(a.images).items():
            print(f"{k}: {v:.1f}", flush=True)
        return 0
    try:  # a GPU that is not there: one line, before any work
        check_device(a.device)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    device = torch.device(a.device)
    if a.acceptance:
        record = acceptance(device, min(a.repeats, 5), tuple(a.overrides))
        print(f"acceptance -> {write_json(a.out, record)}")
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name} ({torch.get_num_threads()} threads)")
    print(f"model: {a.model}")
    s = Setup(a.model, device, a.batch_size, tuple(a.overrides))
    for section in (bench_steps, bench_eval):
        for k, v in section(s, a.repeats).items():
            print(f"{k}: {v:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
