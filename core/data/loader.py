"""Training batches for a whole run: a fixed order per (seed, epoch), resumable at any step."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from core.data.augment import RandAugment
from core.data.images import FolderImages, TensorImages, pil_to_uint8
from core.infra.distributed import SINGLE, Shard, World
from core.infra.seeding import derive_seed, generator


def steps_per_epoch(n_train: int, batch_size: int, drop_last: bool = True) -> int:
    """Full batches only (ours: the tail changes every epoch anyway), or with the last,
    smaller batch too (the official code's)."""
    return n_train // batch_size if drop_last else -(-n_train // batch_size)


def global_size(n_train: int, batch_size: int, step: int, even: bool = False) -> int:
    """Images in step `step`'s global batch (the last may be smaller, and even for Mixup)."""
    size = min(batch_size, n_train - step * batch_size)
    return size - 1 if even and size % 2 else size


class EpochBatches:
    """Batches of (image index, image seed) from step `start` of epoch `first` to the end.
    even=True: a last, smaller batch of odd size loses its last image (Mixup pairs images).
    world: this rank's rows of each global batch only (core.infra.distributed.rows)."""

    def __init__(self, indices: torch.Tensor, batch_size: int, seed: int, first: int,
                 start: int, epochs: int, drop_last: bool = True, even: bool = False,
                 world: World = SINGLE) -> None:
        self.indices, self.batch_size, self.seed = indices, batch_size, seed
        self.first, self.start, self.epochs = first, start, epochs
        self.drop_last, self.even, self.world = drop_last, even, world

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        steps = steps_per_epoch(len(self.indices), self.batch_size, self.drop_last)
        for epoch in range(self.first, self.epochs):
            order = self.indices[torch.randperm(len(self.indices),
                                                generator=generator(self.seed, "order", epoch))]
            for step in range(self.start if epoch == self.first else 0, steps):
                chunk = order[step * self.batch_size:(step + 1) * self.batch_size].tolist()
                chunk = chunk[:global_size(len(self.indices), self.batch_size, step, self.even)]
                if self.world.size > 1:
                    chunk = [chunk[p] for p in Shard.of(len(chunk), self.world).positions]
                yield [(i, derive_seed(self.seed, "image", epoch, i)) for i in chunk]

    def __len__(self) -> int:
        steps = steps_per_epoch(len(self.indices), self.batch_size, self.drop_last)
        return (self.epochs - self.first) * steps - self.start


class SeededImages(Dataset):
    """Images by (index, seed); the seed drives the per-image augmentation (RandAugment)."""

    def __init__(self, images: TensorImages | FolderImages, randaugment: RandAugment | None):
        self.images, self.randaugment = images, randaugment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        i, seed = key
        if self.randaugment is None:
            return self.images.get(i)
        img = self.randaugment(self.images.pil(i), seed)
        return pil_to_uint8(img), int(self.images.labels[i])


class DeviceBatches:
    """In-memory images held once on the device as uint8: a batch is one index operation,
    with no per-image host work (CIFAR-10 is 150 MB, digits 1 MB). The same batches, in the
    same order, as the DataLoader path."""

    def __init__(self, images: TensorImages, sampler: EpochBatches, device: torch.device):
        self.images = images.images.to(device)
        self.labels = images.labels.to(device)
        self.sampler, self.device = sampler, device

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self.sampler:
            idx = torch.tensor([i for i, _ in batch]).to(self.device, non_blocking=True)
            yield self.images[idx], self.labels[idx]

    def __len__(self) -> int:
        return len(self.sampler)


def train_batches(images: TensorImages | FolderImages, indices: torch.Tensor, batch_size: int,
                  seed: int, first_epoch: int, start_step: int, epochs: int,
                  randaugment: RandAugment | None, num_workers: int,
                  device: torch.device | None = None, drop_last: bool = True,
                  even: bool = False, world: World = SINGLE) -> DataLoader | DeviceBatches:
    """Batches for the rest of the run: (uint8 images, labels), from step `start_step` of
    epoch `first_epoch` on, this rank's rows only. In-memory sets without per-image work
    stay on the device; folders stream through `num_workers` worker processes."""
    sampler = EpochBatches(indices, batch_size, seed, first_epoch, start_step, epochs,
                           drop_last, even, world)
    if isinstance(images, TensorImages) and randaugment is None:
        return DeviceBatches(images, sampler, device or torch.device("cpu"))
    return DataLoader(SeededImages(images, randaugment), batch_sampler=sampler,
                      num_workers=num_workers, persistent_workers=False,
                      pin_memory=torch.cuda.is_available())
