"""A GPU's first hour in one command, one JSON: `python -m core.bench --acceptance`.

On CUDA it measures, in about eight minutes of one H100 (an estimate: it has not yet run on a
GPU), what the first users' runs depend on:

- step: the paper's training step (ViT-B/4 at 32 px, PGD-10 AT, bf16, batch 128) as ours, as
  a bare loop at the same precision and as the official-style reference loop, with ARD+PRM
  and TRADES beside them (the figures of `python -m core.bench`);
- compile: our ARD+PRM step with compile off and on: first-step and later-step seconds, the
  graphs dynamo compiled and its graph breaks (a recompile shows as an extra graph);
- eval: the evaluation batch the memory probe picks, and PGD-20 images/s in FP32 (how
  evaluation runs) and in TF32;
- cuda_tests: `pytest -m cuda` (the tests that need a GPU), its exit code and summary;
- preflight: `ablations.run main_table --preflight` (two steps of every run, each run's
  memory and projected time) on the stand-in world that `core.prefetch synthetic` writes.

`--device cpu` runs the same code path on the tiny model and the tiny grid: a smoke (CI runs
it), not a measurement of any GPU. docs/speed.md says how to carry what a bare GPU machine
lacks and run it there.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from core.attacks import PGD, cross_entropy, pgd_eval
from core.bench.figures import Setup, bench_steps, sync
from core.config import changed
from core.evaluation import eval_batch_size
from core.infra.provenance import compile_stats, reset_compile_stats
from core.models import build_model
from core.training.precision import matmul_precision

ROOT = Path(__file__).resolve().parents[2]  # the checkout: its tests/ and its commands
PAPER = ("vit_b16", 128)                      # the paper step: model preset, batch
SMOKE = ("vit_micro", 32)


def acceptance(device: torch.device, repeats: int, overrides: tuple[str, ...] = ()) -> dict:
    """Every section's figures; a section that fails records its error, the others go on."""
    model, batch = PAPER if device.type == "cuda" else SMOKE
    record: dict = {"device": _device_name(device), "torch": torch.__version__,
                    "cuda": torch.version.cuda, "model": model, "batch": batch}
    if device.type != "cuda":  # the tiny configs take their batch as an override
        overrides = (f"batch_size={batch}", *overrides)
    setup = Setup(model, device, batch, overrides)
    sections = {"step": lambda: bench_steps(setup, repeats),
                "compile": lambda: compile_figures(setup),
                "eval": lambda: eval_figures(setup),
                "cuda_tests": cuda_tests,
                "preflight": lambda: preflight("paper" if device.type == "cuda" else "tiny")}
    for name, measure in sections.items():
        started = time.perf_counter()
        try:
            record[name] = measure()
        except Exception as e:  # noqa: BLE001 - a broken section is a finding, not the end
            record[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
        record[name]["seconds"] = round(time.perf_counter() - started, 1)
        print(f"{name}: {record[name]}", flush=True)
    return record


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def compile_figures(s: Setup, steps: int = 4) -> dict:
    """Our ARD+PRM step (warm-up r = 0.5) with compile off and on."""
    out = {}
    for flag in (False, True):
        reset_compile_stats()
        _, step = s.our_step(changed(s.cfg, compile=flag, warmup_epochs=0.5, ard=True,
                                     prm=True))
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            step()
            sync(s.device)
            times.append(time.perf_counter() - started)
        out["on" if flag else "off"] = {"first_step_s": times[0],
                                        "later_step_s": min(times[1:]), **compile_stats()}
    return out


def eval_figures(s: Setup) -> dict:
    """The probed evaluation batch, and PGD-20 throughput at FP32 and at TF32."""
    model = build_model(s.cfg.model, s.cfg.data.img_size, 10, s.cfg.runs_dir,
                        "none").model.to(s.device).eval()
    x = s.images.images[:s.cfg.batch_size].float().div(255).to(s.device)
    y = s.images.labels[:s.cfg.batch_size].to(s.device)
    out = {"eval_batch": eval_batch_size(None, model, x.shape[1:], s.device)}
    attack = PGD(8 / 255, 2 / 255, 20, cross_entropy)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)).to(s.device) * 2 - 1
    for precision in ("fp32", "tf32"):
        with matmul_precision(precision):
            pgd_eval(model, x, y, attack, noise)  # warm-up
            sync(s.device)
            started = time.perf_counter()
            pgd_eval(model, x, y, attack, noise)
            sync(s.device)
        out[f"pgd20_images_per_s_{precision}"] = len(x) / (time.perf_counter() - started)
    return out


def cuda_tests() -> dict:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-rs",
                           "-p", "no:cacheprovider", "tests"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return {"exit_code": proc.returncode, "summary": lines[-1] if lines else proc.stderr[-300:]}


def preflight(scale: str) -> dict:
    """main_table's pre-flight in a scratch folder; at paper scale on the stand-in world."""
    with tempfile.TemporaryDirectory(prefix="vitadv-acceptance-") as tmp:
        env = dict(os.environ)
        if scale == "paper":
            world = _command(["core.prefetch", "synthetic", "--root", f"{tmp}/world"], env)
            exports = world.stdout.strip().splitlines()[-1].removeprefix("export ")
            env.update(kv.split("=", 1) for kv in exports.split())
        proc = _command(["ablations.run", "main_table", "--scale", scale, "--preflight",
                         "--runs-dir", f"{tmp}/runs"], env)
    out = {"exit_code": proc.returncode,
           "lines": [ln for ln in proc.stdout.splitlines() if ln.strip()][-20:]}
    if proc.returncode:
        out["error"] = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
    return out


def _command(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
