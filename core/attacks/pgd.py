"""The one L-inf PGD: training attacks, evaluation attacks, and the hooks ARD and PRM use.

Pixels are in [0,1]; eps and step are in pixel units. The attack runs the model in eval
mode with the weights frozen, asks autograd for the input gradient only (no weight gradients
are built), and puts every module and weight back as it found them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from core.infra.distributed import Shard
from core.infra.registry import Registry

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
START: Registry = Registry("attack start")


@START.register("uniform")
def _uniform(shape: torch.Size, g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=g.device) * 2 - 1  # scaled by eps


@START.register("gaussian")
def _gaussian(shape: torch.Size, g: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=g, device=g.device)  # scaled by gaussian_std


@START.register("none")
def _zero(shape: torch.Size, g: torch.Generator) -> torch.Tensor:
    return torch.zeros(shape, device=g.device)


@dataclass(frozen=True)
class PGD:
    eps: float
    step_size: float
    steps: int
    loss: Loss
    start: str = "uniform"        # uniform in the eps-ball | gaussian (TRADES/MART) | none
    gaussian_std: float = 0.001

    def initial(self, noise: torch.Tensor) -> torch.Tensor:
        return noise * (self.gaussian_std if self.start == "gaussian" else self.eps)


@dataclass
class Plugins:
    """What ARD and PRM change in an attack; the defaults change nothing.

    mask(step) gives a {0,1} tensor broadcastable to the perturbation (PRM) or None;
    input_grad() is entered while the attack takes its input gradient (ARD).
    """

    mask: Callable[[int], torch.Tensor | None] = lambda step: None
    input_grad: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the attack, with the weights frozen (autograd then keeps nothing it would
    need for weight gradients); afterwards every module and weight is as it was."""
    modes = [(m, m.training) for m in model.modules()]
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p in trainable:
            p.requires_grad_(True)


def project(x: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Into the eps-ball and so that x + delta stays a valid image in [0,1]."""
    delta = delta.clamp(-eps, eps)
    return (x + delta).clamp(0, 1) - x


def input_grad(model: nn.Module, x: torch.Tensor, delta: torch.Tensor, target: torch.Tensor,
               loss: Loss, plugins: Plugins) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, d loss / d delta); autograd is asked for the input gradient only."""
    delta = delta.detach().requires_grad_(True)
    with torch.enable_grad(), plugins.input_grad():
        logits = model(x + delta)
        grad, = torch.autograd.grad(loss(logits, target).sum(), delta)
    return logits.detach(), grad


def pgd_train(model: nn.Module, x: torch.Tensor, target: torch.Tensor, attack: PGD,
              g: torch.Generator, plugins: Plugins | None = None,
              shard: Shard | None = None) -> torch.Tensor:
    """The training attack: every example, every step; returns x_adv (detached). The start
    is drawn for the global batch (`shard.total`), this rank taking its rows."""
    plugins = plugins or Plugins()
    shape = (shard.total, *x.shape[1:]) if shard else x.shape
    noise = START.get(attack.start)(shape, g)
    noise = shard.take(noise) if shard else noise
    with eval_mode(model):
        delta = project(x, attack.initial(noise), attack.eps)
        for step in range(attack.steps):
            delta = _masked(delta, plugins.mask(step))
            _, grad = input_grad(model, x, delta, target, attack.loss, plugins)
            delta = project(x, delta + attack.step_size * grad.sign(), attack.eps)
        delta = _masked(delta, plugins.mask(attack.steps))
    return (x + delta).detach()


def _masked(delta: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    # The perturbation itself is zeroed (as the official code does), not only its view.
    return delta if mask is None else delta * mask


@torch.no_grad()
def pgd_eval(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: PGD,
             noise: torch.Tensor, target: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """One evaluation run (one restart): (x_adv, still correct [B] bool).

    An example is dropped as soon as it is misclassified (at the start or after any step):
    its adversarial example is kept and no more work is spent on it. `noise` is the start
    draw per example, so the result of an example does not depend on its batch.
    """
    target = y if target is None else target
    delta = project(x, attack.initial(noise), attack.eps)
    x_adv = x + delta
    correct = torch.ones(len(x), dtype=torch.bool, device=x.device)
    active = torch.arange(len(x), device=x.device)
    with eval_mode(model):
        for step in range(attack.steps + 1):
            xa, da = x[active], delta[active]
            if step == attack.steps:
                logits = model(xa + da)
            else:
                logits, grad = input_grad(model, xa, da, target[active], attack.loss, Plugins())
            wrong = logits.argmax(dim=1) != y[active]
            x_adv[active] = xa + da
            correct[active[wrong]] = False
            if step == attack.steps:
                break
            keep = ~wrong
            active, grad = active[keep], grad[keep]
            if len(active) == 0:
                break
            delta[active] = project(x[active], delta[active] + attack.step_size * grad.sign(),
                                    attack.eps)
    return x_adv, correct
