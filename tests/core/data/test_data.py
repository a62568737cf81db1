"""Data: the embedded set, augmentation invariants, batch order and its determinism."""
from __future__ import annotations

import torch

from core.config import AugCfg
from core.data import Mixer, RandAugment, crop_flip, train_batches, train_indices
from core.data.loader import EpochBatches


def test_digits_is_the_fixed_embedded_split(digits):
    assert (len(digits.train), len(digits.test), digits.num_classes) == (1437, 360, 10)
    assert digits.train.images.shape[1:] == (3, 16, 16)
    assert digits.train.images.dtype == torch.uint8
    assert torch.equal(digits.test_order(), digits.test_order())
    assert set(digits.test.labels[digits.test_order()[:60]].tolist()) == set(range(10))


def test_crop_flip_moves_pixels_but_keeps_them():
    x = torch.rand(64, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = crop_flip(x, 2, True, g)
    assert out.shape == x.shape
    assert not torch.equal(out, x)
    assert torch.equal(crop_flip(x, 0, False, g), x)
    flipped = crop_flip(x, 0, True, torch.Generator().manual_seed(1))
    same = [torch.equal(a, b) or torch.equal(a, b.flip(2)) for a, b in zip(flipped, x, strict=True)]
    assert all(same) and 10 < sum(torch.equal(a, b) for a, b in zip(flipped, x, strict=True)) < 54


def test_mixer_gives_soft_targets_and_is_seeded():
    cfg = AugCfg(mixup_alpha=0.8, cutmix_alpha=1.0, mix_prob=1.0)
    mixer = Mixer(cfg, 10)
    x, y = torch.rand(8, 3, 8, 8), torch.arange(8)
    before = x.clone()
    a = mixer(x, y, seed=5)
    b = mixer(x, y, seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.allclose(a[1].sum(1), torch.ones(8)) and (a[1].max(1).values < 1).any()
    assert torch.equal(x, before)  # the caller's batch is not modified
    off = Mixer(AugCfg(), 10)(x, y, seed=5)[1]
    assert torch.equal(off, y)


def test_randaugment_is_seeded_and_valid(digits):
    ra = RandAugment("rand-m9-mstd0.5-inc1", 16)
    img = digits.train.pil(0)
    assert ra(img, 3).tobytes() == ra(img, 3).tobytes()
    for seed in range(200):  # magnitude 10 used to ask Pillow for 0 posterize bits
        ra(img, seed)


def test_batches_resume_at_any_step(digits):
    idx = train_indices(len(digits.train), 300)
    full = list(EpochBatches(idx, 64, seed=0, first=0, start=0, epochs=2))
    assert len(full) == 2 * (300 // 64)
    tail = list(EpochBatches(idx, 64, seed=0, first=1, start=2, epochs=2))
    assert tail == full[4 + 2:]
    assert sorted(i for b in full[:4] for i, _ in b) != sorted(i for b in full[4:] for i, _ in b)


def test_train_batches_are_uint8_images_with_labels(digits):
    idx = train_indices(len(digits.train), None)
    x, y = next(iter(train_batches(digits.train, idx, 32, 0, 0, 0, 1, None, 0)))
    assert x.shape == (32, 3, 16, 16) and x.dtype == torch.uint8 and y.shape == (32,)


def test_device_batches_equal_the_loader_path(digits):
    from torch.utils.data import DataLoader

    from core.data.loader import DeviceBatches, EpochBatches, SeededImages

    idx = train_indices(len(digits.train), 300)
    fast = DeviceBatches(digits.train, EpochBatches(idx, 64, 3, 0, 1, 2), torch.device("cpu"))
    slow = DataLoader(SeededImages(digits.train, None),
                      batch_sampler=EpochBatches(idx, 64, 3, 0, 1, 2))
    pairs = list(zip(fast, slow, strict=True))
    assert len(pairs) == 2 * 4 - 1
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
