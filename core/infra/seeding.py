"""Random streams derived from (seed, purpose, epoch, step): a run is a pure function of its config.

Every consumer of randomness asks for its own stream by name, so a resumed run replays the
exact same numbers from any step without saving generator states, and adding a consumer
never shifts the numbers another one sees.
"""
from __future__ import annotations

import contextlib
import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed that depends on `seed` and every key (stable across processes)."""
    text = repr((int(seed), *keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def generator(seed: int, *keys: object, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *keys))
    return g


@contextlib.contextmanager
def global_rngs(seed: int):
    """Run library code that draws from the global `random`/numpy/torch RNGs (timm's Mixup and
    RandAugment, model dropout) from a seed of ours, and leave the global states as they were."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
