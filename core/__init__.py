"""vitadv's library: models, data, attacks, training, evaluation (no CLI parsing here)."""
from core.kernels import pin

pin()  # before torch runs its first kernel: the same CPU code path on every x86-64 machine
