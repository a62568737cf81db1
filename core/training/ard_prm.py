"""The paper's two architectural plug-ins, used as a warm-up (Mo et al. 2022, Sec. 5).

r(t) = t / w rises from 0 to 1 over the first w epochs (t fractional), then stays at 1.
- ARD, attention random dropping: while the attack takes its input gradient, the gradient
  through each block's attention branch is kept with probability r(t), else zeroed (one coin
  per block per pass). The weight update always sees full gradients.
- PRM, perturbation random masking: at every attack step floor(P * (1 - r(t))) of the P
  patches of the model's patch grid get a zero perturbation.
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from core.infra.distributed import Shard
from core.infra.errors import ConfigError
from core.models.families import Family, patch_grid


def ramp(t_epochs: float, warmup_epochs: float) -> float:
    """r(t): 0 at the start of training, 1 from the end of warm-up on (1 if w = 0)."""
    if warmup_epochs <= 0:
        return 1.0
    return min(max(t_epochs / warmup_epochs, 0.0), 1.0)


class GradGate(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by a 0/1 gate tensor (no host sync)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate, = ctx.saved_tensors
        return grad * gate, None


class ARD:
    """Forward hooks on every attention branch; they gate gradients only inside `dropping`.

    A pre-hook on `outer`, the module the attack calls (the model wrapper, which is never
    compiled; default: `net`), draws one pass's coins for every branch at once, before the
    compiled network runs: the branch hooks only read their coin, so `compile=true` traces
    them without a break (a generator cannot enter a graph). The draws are those of one coin
    per branch in forward order from the one generator, as when each hook drew its own."""

    def __init__(self, net: nn.Module, family: Family, outer: nn.Module | None = None) -> None:
        self.keep_prob: float | None = None
        self.active = False  # a bool the compiled hooks read: one guard, two graphs at most
        self.generator: torch.Generator | None = None
        self.coins: torch.Tensor | None = None
        branches = family.attention_branches(net)
        self.handles = [m.register_forward_hook(functools.partial(self._hook, i))
                        for i, m in enumerate(branches)]
        self.handles.append((outer or net).register_forward_pre_hook(self._draw))
        self.branches = len(branches)

    def _draw(self, module: nn.Module, inputs: tuple) -> None:
        if self.active:
            g = self.generator
            self.coins = torch.rand(self.branches, generator=g, device=g.device) < self.keep_prob

    def _hook(self, i: int, module: nn.Module, inputs: tuple,
              out: torch.Tensor) -> torch.Tensor | None:
        if not self.active:
            return None  # nothing is dropped: the graph is exactly the plain model's
        return GradGate.apply(out, self.coins[i].to(device=out.device, dtype=out.dtype))

    @contextlib.contextmanager
    def dropping(self, keep_prob: float, g: torch.Generator) -> Iterator[None]:
        self.keep_prob, self.generator, self.active = keep_prob, g, keep_prob < 1.0
        try:
            yield
        finally:
            self.keep_prob, self.generator, self.active, self.coins = None, None, False, None

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class PRM:
    """Patch masks on the model's own patch grid (ViT 16x16 or 4x4 patches, Swin 4x4, ...),
    or on a grid of `cell`-pixel squares (the official code: 16 pixels for every model)."""

    def __init__(self, net: nn.Module, per_example: bool = False, cell: int | None = None) -> None:
        (self.rows, self.cols), (self.ph, self.pw) = patch_grid(net)
        if cell is not None:
            height, width = self.rows * self.ph, self.cols * self.pw
            if height % cell or width % cell:
                raise ConfigError(f"prm_cell={cell} does not divide the {height}x{width} image; "
                                  "pick a divisor or prm_cell=null (the model's own patches)")
            (self.rows, self.cols), (self.ph, self.pw) = (height // cell, width // cell), (cell,
                                                                                      cell)
        self.per_example = per_example

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    def num_masked(self, r: float) -> int:
        # the tiny slack keeps e.g. 64 * (1 - 0.25) from flooring to 47 through rounding
        return math.floor(self.num_patches * (1.0 - r) + 1e-9)

    def mask_fn(self, r: float, batch: int, g: torch.Generator, device: torch.device,
                shard: Shard | None = None) -> Callable[[int], torch.Tensor | None]:
        """mask(step): {0,1} of shape [1 or B, 1, H, W], a fresh draw at every call (per
        example: drawn for the global batch, this rank taking its rows)."""
        k = self.num_masked(r)
        if k == 0:
            return lambda step: None
        rows = (shard.total if shard else batch) if self.per_example else 1

        def mask(step: int) -> torch.Tensor:
            scores = torch.rand(rows, self.num_patches, generator=g, device=g.device)
            if self.per_example and shard is not None:
                scores = shard.take(scores)
            rows_here = len(scores)
            keep = torch.ones_like(scores).scatter_(1, scores.argsort(dim=1)[:, :k], 0.0)
            grid = keep.view(rows_here, 1, self.rows, self.cols)
            pixels = grid.repeat_interleave(self.ph, dim=2).repeat_interleave(self.pw, dim=3)
            return pixels.to(device)

        return mask
