"""The benchmark's figures (what `python -m core.bench` prints): our training step and
evaluation against the official-style reference loop, and the plug-ins' costs, each measured
interleaved in one process so the ratios compare like with like."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from core.attacks import PGD, cross_entropy, pgd_eval, pgd_train
from core.attacks import pgd as pgd_module
from core.bench import reference as ref
from core.config import RunConfig, changed
from core.config.compose import compose
from core.data import Mixer, load_splits, train_batches, train_indices
from core.data.images import TensorImages, stack
from core.infra.distributed import SINGLE, Shard
from core.models import build_model
from core.models.families import patch_grid
from core.runs.run import run
from core.training.loop import Progress, setup
from core.training.precision import autocast, matmul_precision
from core.training.step import StepAt, optimizer_step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                device: torch.device) -> dict[str, float]:
    """Best time per contender over `repeats` rounds, alternating them so that machine
    noise hits all alike (one warm-up call each first)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}


def bare_at_step(model, opt, x, y, precision: str = "fp32", eps=8 / 255, alpha=2 / 255,
                 steps=10) -> None:
    """The textbook loop: PGD-10 from a uniform start, CE, clip 1.0, SGD step; at our step's
    precision, so that the ratio compares engines, not precisions."""
    delta = (torch.rand_like(x) * 2 - 1) * eps
    model.eval()
    with matmul_precision(precision):
        for _ in range(steps):
            delta.requires_grad_(True)
            with autocast(precision, x.device):
                loss = F.cross_entropy(model(x + delta), y)
            grad, = torch.autograd.grad(loss, delta)
            delta = ((delta + alpha * grad.sign()).clamp(-eps, eps) + x).clamp(0, 1) - x
        model.train()
        with autocast(precision, x.device):
            loss = F.cross_entropy(model(x + delta.detach()), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


class Setup:
    """A model config, its training images and, for evaluation, a trained model."""

    def __init__(self, preset: str, device: torch.device, batch: int,
                 overrides: tuple[str, ...] = ()) -> None:
        self.device, self.tiny = device, preset in ("vit_micro", "tiny")
        self.overrides = overrides  # hydra overrides for the tiny configs (a smoke test's)
        if self.tiny:
            self.cfg = compose(["scale=tiny", "aug=none", "progress=false", f"device={device}",
                                *overrides])

            self.splits = load_splits(self.cfg.data)
            self.images = self.splits.train
        else:
            self.cfg = compose([f"model={preset}", "data=cifar10", "model.source=none",
                                "aug=none", f"batch_size={batch}", "progress=false",
                                f"device={device}", "precision=" +
                                ("bf16" if device.type == "cuda" else "fp32")])
            self.images = random_images(batch * 4, 32)
        self.cfg = changed(self.cfg, **{"aug.crop_padding": 0, "aug.flip": False})

    def our_step(self, cfg: RunConfig):
        """Our training step (core.training.step.optimizer_step) fed by our data pipeline."""
        built = build_model(cfg.model, cfg.data.img_size, 10, cfg.runs_dir, "none")
        trainee = setup(cfg, built, self.device)
        mixer, progress = Mixer(cfg.aug, 10), Progress()
        idx = train_indices(len(self.images), None)
        batches = iter(_forever(lambda: train_batches(self.images, idx, cfg.batch_size, 0, 0, 0,
                                                      1, None, 0, self.device)))

        def run() -> None:
            x, y = next(batches)
            at = StepAt(0, 1, 4, Shard.of(len(x), SINGLE), SINGLE)
            optimizer_step(cfg, trainee, mixer, x, y, at, self.device, progress)

        return trainee, run


def _forever(make):
    while True:
        yield from make()


def random_images(n: int, size: int):
    g = torch.Generator().manual_seed(0)
    return TensorImages(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
                        torch.randint(0, 10, (n,), generator=g), size)


def bench_steps(s: Setup, repeats: int) -> dict[str, float]:
    """Ours against the bare loop and the reference loop: plain AT, AT with ARD+PRM in
    warm-up (r = 0.5), TRADES. Every contender takes its own batches the way it would."""

    plain = changed(s.cfg, warmup_epochs=0.5)
    trainee, ours = s.our_step(plain)
    _, with_plugins = s.our_step(changed(plain, ard=True, prm=True))
    _, trades = s.our_step(changed(plain, **{"method.name": "trades", "method.beta": 6.0}))
    net = trainee.model.net
    x, y = (s.images.images[:plain.batch_size].float() / 255).to(s.device), \
        s.images.labels[:plain.batch_size].to(s.device)
    bare_model = type(trainee.model)(net, trainee.model.mean.flatten().tolist(),
                                     trainee.model.std.flatten().tolist()).to(s.device)
    bare_opt = torch.optim.SGD(bare_model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    mean, std = trainee.model.mean.flatten().tolist(), trainee.model.std.flatten().tolist()
    loader = ref.reference_loader(s.images, mean, std, plain.batch_size, 4, workers=0)
    ref_batches = iter(_forever(lambda: loader))
    ref_opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    m, sd = torch.tensor(mean, device=s.device).view(3, 1, 1), torch.tensor(
        std, device=s.device).view(3, 1, 1)
    bounds = dict(eps=(8 / 255) / sd, alpha=(2 / 255) / sd, lower=(0 - m) / sd,
                  upper=(1 - m) / sd)

    patch = patch_grid(net)[1][0]

    def reference(step=ref.reference_train_step, **kw):
        def go() -> None:
            xr, yr = next(ref_batches)
            step(net, ref_opt, xr.to(s.device), yr.to(s.device), steps=10, **bounds, **kw)
        return go

    def reference_ard_prm() -> None:
        hooks = ref.add_ard_hooks(list(net.blocks), 0.5)
        try:
            reference(prm=(patch, 0.5))()
        finally:
            for h in hooks:
                h.remove()

    def bare() -> None:
        bare_at_step(bare_model, bare_opt, x, y, plain.precision)

    t = interleaved({"ours": ours, "bare": bare,
                     "ard_prm": with_plugins, "reference": reference(),
                     "reference_ard_prm": reference_ard_prm, "trades": trades,
                     "reference_trades": reference(ref.reference_trades_step)},
                    repeats, s.device)
    return {"at_step_seconds": t["ours"], "bare_step_seconds": t["bare"],
            "reference_step_seconds": t["reference"],
            "at_step_vs_bare_loop": t["ours"] / t["bare"],
            "ard_prm_overhead": t["ard_prm"] / t["ours"],
            "at_step_vs_reference": t["reference"] / t["ours"],
            "at_ard_prm_step_vs_reference": t["reference_ard_prm"] / t["ard_prm"],
            "trades_step_vs_reference": t["reference_trades"] / t["trades"],
            "train_images_per_s": plain.batch_size / t["ours"]}


def trained_model(s: Setup):
    """The adversarially trained tiny model (a run, cached in runs/); else random weights."""

    if not s.tiny:
        return build_model(s.cfg.model, 32, 10, s.cfg.runs_dir, "none").model.to(s.device).eval()

    cfg = changed(compose(["scale=tiny", "eval=quick", "progress=false", *s.overrides]),
                  device=str(s.device))
    result = run(cfg)
    return build_model(cfg.model, 16, 10, cfg.runs_dir,
                       f"run:{result['run_id']}").model.to(s.device).eval()


def bench_eval(s: Setup, repeats: int) -> dict[str, float]:
    import torchattacks  # a dev dependency: only this comparison needs it

    model = trained_model(s)
    if s.tiny:
        x, y = stack(s.splits.test, s.splits.test_order())
    else:
        x, y = s.images.images[:512], s.images.labels[:512]
    x, y = (x.float() / 255).to(s.device), y.to(s.device)
    attack = PGD(8 / 255, 2 / 255, 20, cross_entropy)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)).to(s.device) * 2 - 1
    ta = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
    m, sd = model.mean.view(3, 1, 1), model.std.view(3, 1, 1)
    norm_net = model.net
    xn = (x - m) / sd
    eps, alpha, lower, upper = (8 / 255) / sd, (2 / 255) / sd, (0 - m) / sd, (1 - m) / sd
    acc: dict[str, float] = {}

    def ours():
        acc["ours"] = pgd_eval(model, x, y, attack, noise)[1].float().mean().item()

    def theirs():
        adv = ta(x, y)
        with torch.no_grad():
            acc["torchattacks"] = (model(adv).argmax(1) == y).float().mean().item()

    def reference():
        correct = ref.reference_pgd_eval(norm_net, xn, y, eps, alpha, 20, lower, upper)
        acc["reference"] = correct.float().mean().item()

    t = interleaved({"ours": ours, "torchattacks": theirs, "reference": reference},
                    max(3, repeats // 3), s.device)
    train_acc = {p: training_attack_acc(model, x, y, p) for p in ("fp32", "bf16")}
    return {"pgd20_ours_seconds": t["ours"], "pgd20_reference_seconds": t["reference"],
            "pgd20_torchattacks_seconds": t["torchattacks"],
            "pgd20_eval_vs_reference": t["reference"] / t["ours"],
            "pgd20_eval_speedup_vs_torchattacks": t["torchattacks"] / t["ours"],
            "pgd20_acc_ours": acc["ours"], "pgd20_acc_reference": acc["reference"],
            "pgd20_acc_torchattacks": acc["torchattacks"],
            "pgd20_attack_steps_skipped": skipped_fraction(model, x, y, attack, noise),
            "train_attack_acc_fp32": train_acc["fp32"], "train_attack_acc_bf16": train_acc["bf16"],
            "bf16_vs_fp32_attack_acc_delta": train_acc["bf16"] - train_acc["fp32"]}


def training_attack_acc(model, x, y, precision: str) -> float:
    """Accuracy against our training attack (PGD-10) run at `precision`, judged in fp32."""

    with autocast(precision, x.device):
        x_adv = pgd_train(model, x, y, PGD(8 / 255, 2 / 255, 10, cross_entropy),
                          torch.Generator(x.device).manual_seed(0))
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()


def skipped_fraction(model, x, y, attack, noise) -> float:
    """Share of the (examples x steps) input gradients our early stop did not compute."""

    original, counted = pgd_module.input_grad, []

    def counting(model_, x_, *args, **kwargs):
        counted.append(len(x_))
        return original(model_, x_, *args, **kwargs)

    pgd_module.input_grad = counting
    try:
        pgd_module.pgd_eval(model, x, y, attack, noise)
    finally:
        pgd_module.input_grad = original
    return 1 - sum(counted) / (len(x) * attack.steps)
