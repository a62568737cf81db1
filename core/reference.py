"""The paper's training and evaluation loop written the way the official code does it: the
baseline every speed figure of `python -m core.bench` is measured against.

From ../shared/paper-recipe.md, in the official code's style: fp32; a CPU DataLoader with
per-image torchvision transforms and the normalisation in the data; attack steps that call
loss.backward() (so weight gradients are built at every attack step); the PRM mask built by
a Python loop over patches each step; ARD through module backward hooks; evaluation PGD that
attacks every example for every step, weight gradients included.
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
                     steps: int, lower, upper,
                     prm: tuple[int, float] | None = None) -> torch.Tensor:
    """PGD in normalised space with per-channel eps (official), loss.backward() each step."""
    delta = torch.zeros_like(x)
    for c in range(x.shape[1]):
        delta[:, c].uniform_(-eps[c].item(), eps[c].item())
    delta = torch.min(torch.max(delta, lower - x), upper - x).requires_grad_(True)
    for _ in range(steps):
        if prm is not None:
            delta.data = delta.data * prm_mask_loop(x, *prm)
        loss = F.cross_entropy(model(x + delta), y)
        loss.backward()  # weight gradients too, as the official loop
        grad = delta.grad.detach()
        d = torch.max(torch.min(delta + alpha * grad.sign(), eps), -eps)
        delta.data = torch.min(torch.max(d, lower - x), upper - x)
        delta.grad.zero_()
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


def reference_pgd_eval(model, x, y, eps, alpha, steps, lower, upper) -> torch.Tensor:
    """Every example, every step, then one forward: per-example 'still correct'."""
    model.eval()
    delta = reference_attack(model, x, y, eps, alpha, steps, lower, upper)
    with torch.no_grad():
        return model(x + delta).argmax(1) == y
