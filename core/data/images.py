"""Stored images: uint8 tensors in memory, or an image folder read through PIL.

Both give uint8 CHW tensors at the configured size; augmentation happens later, batch-wise.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


class TensorImages(Dataset):
    """Images held as one uint8 tensor [N, C, H, W] with int64 labels [N]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: int) -> None:
        assert images.dtype == torch.uint8 and images.ndim == 4
        if images.shape[-1] != size or images.shape[-2] != size:
            images = resize_uint8(images, size)
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def pil(self, i: int):
        from torchvision.transforms.functional import to_pil_image

        return to_pil_image(self.images[i])

    def get(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.get(i)


class FolderImages(Dataset):
    """A torchvision ImageFolder, each image resized to size x size (as the official code)."""

    def __init__(self, folder: Path, size: int) -> None:
        from torchvision.datasets import ImageFolder

        self.folder = ImageFolder(str(folder))
        self.size = size
        self.labels = torch.tensor(self.folder.targets, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.folder)

    def pil(self, i: int):
        path, _ = self.folder.samples[i]
        img = self.folder.loader(path)
        return img.resize((self.size, self.size), resample=_bilinear())

    def get(self, i: int) -> tuple[torch.Tensor, int]:
        return pil_to_uint8(self.pil(i)), int(self.labels[i])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.get(i)


def _bilinear():
    from PIL import Image

    return Image.BILINEAR


def pil_to_uint8(img) -> torch.Tensor:
    from torchvision.transforms.functional import pil_to_tensor

    return pil_to_tensor(img.convert("RGB"))


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                        antialias=True)
    return out.round().clamp(0, 255).to(torch.uint8)


def stack(images: Dataset, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Load `indices` into one uint8 batch (the evaluation subsets)."""
    xs, ys = zip(*(images.get(int(i)) for i in indices), strict=True)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long)
