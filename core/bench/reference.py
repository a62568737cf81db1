"""The paper's training and evaluation loop written the way the official code does it: the
baseline every speed figure of `python -m core.bench` is measured against.

From ../shared/paper-recipe.md, in the official code's style: fp32; a CPU DataLoader with
per-image torchvision transforms and the normalisation in the data (so eps and the image
bounds are per-channel tensors); the PRM mask built by a Python loop over patches at every
attack step; ARD through module backward hooks; TRADES recomputing the clean softmax at every
attack step; evaluation PGD that runs the whole batch at every step and calls
loss.backward(), so weight gradients are built too.
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


class PILDigits(Dataset):
    """Images as PIL with torchvision transforms per image (as torchvision's CIFAR10 does)."""

    def __init__(self, images, transform) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images.pil(i)), int(self.images.labels[i])


def reference_loader(images, mean, std, batch_size: int, padding: int, workers: int) -> DataLoader:
    from torchvision import transforms

    size = images.images.shape[-1]
    t = transforms.Compose([transforms.RandomCrop(size, padding=padding),
                            transforms.ToTensor(), transforms.Normalize(mean, std)])
    return DataLoader(PILDigits(images, t), batch_size=batch_size, shuffle=True,
                      num_workers=workers, drop_last=True)


def prm_mask_loop(x: torch.Tensor, patch: int, drop_rate: float) -> torch.Tensor:
    """The official mask: a Python loop over a shuffled list of patch ids."""
    mask = torch.ones_like(x)
    grid = x.shape[-1] // patch
    ids = list(range(grid * grid))
    random.shuffle(ids)
    for pid in ids[:int(grid * grid * (1 - drop_rate))]:
        r, c = divmod(pid, grid)
        mask[:, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0
    return mask


def add_ard_hooks(blocks: list[nn.Module], drop_rate: float) -> list:
    """Module backward hooks that zero a block's gradient with probability 1 - drop_rate."""
    def hook(module, grad_in, grad_out):
        keep = 1.0 if random.random() <= drop_rate else 0.0
        return tuple(None if g is None else g * keep for g in grad_in)

    return [b.register_full_backward_hook(hook) for b in blocks]


def reference_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps, alpha,
                     steps: int, lower, upper, prm: tuple[int, float] | None = None,
                     weight_grads: bool = False) -> torch.Tensor:
    """PGD in normalised space with per-channel eps, as the official code does it: training
    asks autograd for the input gradient; evaluation calls loss.backward() (weight gradients
    too) and keeps attacking the whole batch, updating only still-correct examples."""
    delta = torch.zeros_like(x)
    for c in range(x.shape[1]):
        delta[:, c].uniform_(-eps[c].item(), eps[c].item())
    delta = torch.min(torch.max(delta, lower - x), upper - x).requires_grad_(True)
    for _ in range(steps):
        if prm is not None:
            delta = delta * prm_mask_loop(x, *prm)
        out = model(x + delta)
        loss = F.cross_entropy(out, y)
        if weight_grads:
            loss.backward()
            grad = delta.grad.detach()
            delta.grad = None
        else:
            grad = torch.autograd.grad(loss, delta)[0].detach()
        d = torch.max(torch.min(delta + alpha * grad.sign(), eps), -eps)
        d = torch.min(torch.max(d, lower - x), upper - x)
        if weight_grads:  # evaluation: only still-correct examples move
            d = torch.where((out.argmax(1) == y).view(-1, 1, 1, 1), d, delta)
        delta = d.detach().requires_grad_(True)
    return delta.detach()


def reference_trades_attack(model: nn.Module, x: torch.Tensor, eps, alpha, steps: int,
                            lower, upper) -> torch.Tensor:
    """The official TRADES attack: the clean softmax is recomputed at every step."""
    delta = (0.001 * torch.randn_like(x))
    delta = torch.min(torch.max(delta, lower - x), upper - x).requires_grad_(True)
    for _ in range(steps):
        kl = F.kl_div(F.log_softmax(model(x + delta), 1), F.softmax(model(x), 1),
                      reduction="sum")
        grad = torch.autograd.grad(kl, delta)[0]
        d = torch.max(torch.min(delta + alpha * grad.sign(), eps), -eps)
        delta = torch.min(torch.max(d, lower - x), upper - x).detach().requires_grad_(True)
    return delta.detach()


def reference_train_step(model, opt, x, y, eps, alpha, steps, lower, upper, prm=None) -> None:
    model.eval()
    delta = reference_attack(model, x, y, eps, alpha, steps, lower, upper, prm)
    model.train()
    loss = F.cross_entropy(model(x + delta), y)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def reference_trades_step(model, opt, x, y, eps, alpha, steps, lower, upper, beta=6.0) -> None:
    model.eval()
    delta = reference_trades_attack(model, x, eps, alpha, steps, lower, upper)
    model.train()
    logits = model(x)  # and model(x) again below: the official loss computes it twice
    kl = F.kl_div(F.log_softmax(model(x + delta), 1), F.softmax(model(x), 1), reduction="sum")
    loss = F.cross_entropy(logits, y) + beta * kl / len(x)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def reference_pgd_eval(model, x, y, eps, alpha, steps, lower, upper) -> torch.Tensor:
    """Every example, every step, then one forward: per-example 'still correct'."""
    model.eval()
    delta = reference_attack(model, x, y, eps, alpha, steps, lower, upper, weight_grads=True)
    with torch.no_grad():
        return model(x + delta).argmax(1) == y
