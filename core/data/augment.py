"""Training augmentation: crop with padding and flip (batch-wise, on the device), timm's
RandAugment (per image, PIL) and timm's Mixup/CutMix with soft targets.

All randomness comes from seeds derived from (run seed, epoch, step or image), so a batch is
the same whether the run was resumed or not, whatever the number of loader workers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.config import AugCfg
from core.infra.distributed import Shard
from core.infra.seeding import global_rngs


def crop_flip(x: torch.Tensor, padding: int, flip: bool, g: torch.Generator,
              shard: Shard | None = None) -> torch.Tensor:
    """Random crop of a zero-padded batch back to its size, and random horizontal flip.
    The draws are made for the global batch (`shard.total`) and this rank takes its rows."""
    b, c, h, w = x.shape
    total = shard.total if shard else b
    take = shard.take if shard else (lambda t: t)
    if padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        dy = take(torch.randint(0, 2 * padding + 1, (total,), generator=g,
                                device=g.device)).to(x.device)
        dx = take(torch.randint(0, 2 * padding + 1, (total,), generator=g,
                                device=g.device)).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        mask = take(torch.rand(total, generator=g, device=g.device)).to(x.device) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


class RandAugment:
    """timm's RandAugment on one PIL image under its own seed."""

    def __init__(self, spec: str, img_size: int) -> None:
        from timm.data.auto_augment import rand_augment_transform

        # magnitude_max < 10: at magnitude 10 timm's PosterizeIncreasing asks Pillow for 0 bits,
        # which Pillow >= 11 rejects; 9.99 keeps every op valid and the ops' range unchanged.
        hparams = dict(translate_const=int(img_size * 0.45), img_mean=(128, 128, 128),
                       magnitude_max=9.99)
        self.transform = rand_augment_transform(spec, hparams)

    def __call__(self, img, seed: int):
        with global_rngs(seed):  # timm draws from numpy and `random`
            return self.transform(img)


class Mixer:
    """timm's Mixup/CutMix (batch mode) with its numpy draws taken from our seed."""

    def __init__(self, cfg: AugCfg, num_classes: int) -> None:
        from timm.data import Mixup

        self.num_classes = num_classes
        self.active = cfg.mix_prob > 0 and (cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0)
        self.mixup = Mixup(mixup_alpha=cfg.mixup_alpha, cutmix_alpha=cfg.cutmix_alpha,
                           prob=cfg.mix_prob, switch_prob=cfg.switch_prob, mode="batch",
                           label_smoothing=0.0, num_classes=num_classes) if self.active else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, seed: int,
                 enabled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, soft targets [B, classes]), or the labels untouched when mixing is off."""
        if not (self.active and enabled):
            return x, y
        with global_rngs(seed):
            x, soft = self.mixup(x.clone(), y)
        return x, soft.to(x.dtype)
