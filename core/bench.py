"""Benchmarks, printed as `name: value` lines (ratios measured in one run, on one device).

    python -m core.bench [--device cpu|cuda] [--repeats N]

- at_step_vs_bare_loop: our PGD-10 AT training step / a bare hand-written PyTorch step on
  the same tiny ViT and batch (target <= 1.05).
- ard_prm_overhead: AT step with ARD+PRM active / without (target <= 1.05).
- pgd20_eval_speedup_vs_torchattacks: torchattacks.PGD time / our PGD-20 evaluation time
  on the same adversarially trained tiny model (target >= 1.2), with both accuracies and
  the fraction of attack steps our early stop skipped.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from core.compose import compose
from core.config import replace


def _time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of `fn` over `repeats` calls (after one warm-up call)."""
    fn()
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def _interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                 device: torch.device) -> dict[str, float]:
    """Alternate the contenders so machine noise hits them alike; best time per contender."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(_time(fn, 1, device))
    return {k: min(v) for k, v in times.items()}  # min: the least disturbed run (as timeit)


def bare_at_step(model, opt, x, y, eps=8 / 255, alpha=2 / 255, steps=10) -> None:
    """The textbook loop: PGD-10 from a uniform start, CE, clip 1.0, SGD step."""
    delta = (torch.rand_like(x) * 2 - 1) * eps
    model.eval()
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y)
        grad, = torch.autograd.grad(loss, delta)
        delta = ((delta + alpha * grad.sign()).clamp(-eps, eps) + x).clamp(0, 1) - x
    model.train()
    loss = F.cross_entropy(model(x + delta.detach()), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def _our_step(cfg, device):
    """Our training step (core.training.loop._step) on a fixed batch, with state set up."""
    from core.data import Mixer
    from core.models import build_model
    from core.training.loop import Progress, setup
    from core.training.loop import _step as step

    built = build_model(cfg.model, cfg.data.img_size, 10, cfg.runs_dir, "none")
    trainee = setup(cfg, built, device)
    mixer, progress = Mixer(cfg.aug, 10), Progress()
    x = torch.randint(0, 256, (cfg.batch_size, 3, 16, 16), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (cfg.batch_size,), device=device)
    return trainee, lambda: step(cfg, trainee, mixer, x, y, 0, 1, 4, device, progress), x, y


def bench_train_steps(device: torch.device, repeats: int) -> dict[str, float]:
    base = compose(["scale=tiny", "aug=none", "aug.crop_padding=0", "warmup_epochs=0.5",
                    "progress=false"])
    plain = replace(base, device=str(device))
    trainee, ours, x, y = _our_step(plain, device)
    torch.manual_seed(0)
    bare_model = type(trainee.model)(trainee.model.net, trainee.model.mean.tolist(),
                                     trainee.model.std.tolist())
    bare_opt = torch.optim.SGD(bare_model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    xf = x.float() / 255
    _, with_plugins, _, _ = _our_step(replace(plain, ard=True, prm=True), device)
    t = _interleaved({"ours": ours, "bare": lambda: bare_at_step(bare_model, bare_opt, xf, y),
                      "ard_prm": with_plugins}, repeats, device)
    return {"at_step_seconds": t["ours"], "bare_step_seconds": t["bare"],
            "at_step_vs_bare_loop": t["ours"] / t["bare"],
            "ard_prm_step_seconds": t["ard_prm"], "ard_prm_overhead": t["ard_prm"] / t["ours"]}


def bench_pgd20(device: torch.device, repeats: int) -> dict[str, float]:
    import torchattacks

    from core.attacks import PGD, cross_entropy, pgd_eval
    from core.data import load_splits
    from core.data.images import stack
    from core.models import build_model
    from core.run import run

    cfg = compose(["scale=tiny", "eval=quick", "progress=false", f"device={device}"])
    result = run(cfg)  # an adversarially trained tiny model (cached in runs/ by its hash)
    model = build_model(cfg.model, 16, 10, cfg.runs_dir, f"run:{result['run_id']}").model
    model = model.to(device).eval()
    splits = load_splits(cfg.data)
    x, y = stack(splits.test, splits.test_order())
    x, y = (x.float() / 255).to(device), y.to(device)
    attack = PGD(8 / 255, 2 / 255, 20, cross_entropy)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    steps_done = []

    def ours():
        return pgd_eval(model, x, y, attack, noise)[1]

    ta = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)

    def theirs():
        adv = ta(x, y)
        with torch.no_grad():
            return model(adv).argmax(1) == y

    t = _interleaved({"ours": ours, "theirs": theirs}, repeats, device)
    ours_acc = ours().float().mean().item()
    torch.manual_seed(0)
    theirs_acc = theirs().float().mean().item()
    skipped = _skipped_fraction(model, x, y, attack, noise, steps_done)
    return {"pgd20_ours_seconds": t["ours"], "pgd20_torchattacks_seconds": t["theirs"],
            "pgd20_eval_speedup_vs_torchattacks": t["theirs"] / t["ours"],
            "pgd20_acc_ours": ours_acc, "pgd20_acc_torchattacks": theirs_acc,
            "pgd20_attack_steps_skipped": skipped}


def _skipped_fraction(model, x, y, attack, noise, counter) -> float:
    """Share of the (examples x steps) gradient computations the early stop did not run."""
    from core.attacks import pgd as pgd_module

    original = pgd_module.input_grad

    def counting(model_, x_, *args, **kwargs):
        counter.append(len(x_))
        return original(model_, x_, *args, **kwargs)

    pgd_module.input_grad = counting
    try:
        pgd_module.pgd_eval(model, x, y, attack, noise)
    finally:
        pgd_module.input_grad = original
    return 1 - sum(counter) / (len(x) * attack.steps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name} ({torch.get_num_threads()} threads)")
    for section in (bench_train_steps, bench_pgd20):
        for k, v in section(device, a.repeats).items():
            print(f"{k}: {v:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
