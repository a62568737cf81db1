"""Cells larger than one device: torch.distributed set up from the job's environment (one
task per GPU under submitit, SLURM or local; or torchrun), and the layout that makes a run's
numbers the same on 1 or N ranks up to float summation order.

Randomness is drawn per example for the whole global batch on every rank, and each rank
takes its own rows (`Shard`), so no draw depends on the number of ranks. A rank's rows are
closed under Mixup/CutMix's pairing (example i with B-1-i, timm's batch mode): rank r holds
a block of the first half and its mirror in the second, so its local flip pairs exactly the
examples the global batch pairs. Rank 0 alone writes files.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

# How long a rank waits at a collective. Sharded evaluation gives ranks unequal AutoAttack
# work (whole chunks dealt round-robin: 10 chunks on 8 ranks leave 6 waiting a chunk's time,
# which on ImageNet ViT-B is past NCCL's usual 30 minutes); a task that dies takes its job
# down at once (srun --kill-on-bad-exit), so a long wait costs nothing.
TIMEOUT_MINUTES = float(os.environ.get("VITADV_COLLECTIVE_TIMEOUT_MIN", "240"))


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            dist.all_reduce(t)
        return t

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (on every rank)."""
        if self.size == 1:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = World()  # one process, no process group


def world() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def init_from_env(cuda: bool | None = None) -> World:
    """Join the job's process group when it has several tasks (submitit's environment, or
    torchrun's RANK/WORLD_SIZE); a single task stays a one-process world. `cuda`: whether the
    run computes on GPUs (NCCL, each rank bound to its GPU) or on CPUs (gloo), as its device
    says; default: whether there is a GPU. A CPU run beside a GPU must not take NCCL."""
    if dist.is_available() and dist.is_initialized():
        return world()
    if "SUBMITIT_EXECUTOR" in os.environ and _submitit_tasks() > 1:
        from submitit.helpers import TorchDistributedEnvironment

        # not CUDA_VISIBLE_DEVICES: CUDA has read the device list by now (choosing the kernels
        # asks for it) and ignores it; the rank is bound to its GPU below
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World()
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda:  # before the first collective: NCCL takes the current device as the rank's
        torch.cuda.set_device(local_device(int(os.environ.get("LOCAL_RANK", 0))))
    dist.init_process_group("nccl" if cuda else "gloo",
                            timeout=datetime.timedelta(minutes=TIMEOUT_MINUTES))
    return world()


def local_device(local_rank: int) -> torch.device:
    """This rank's GPU: its local rank's among the GPUs the task sees (all of the node's, or,
    where SLURM binds a GPU per task, its own one)."""
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def _submitit_tasks() -> int:
    try:
        import submitit

        return submitit.JobEnvironment().num_tasks
    except RuntimeError:  # not inside a submitit job
        return 1


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rows(total: int, size: int) -> list[list[int]]:
    """Each rank's positions in a global batch of `total`, closed under i <-> total-1-i and
    laid out so that the local flip pairs them alike (the identity for one rank)."""
    half = total // 2
    out = []
    for r in range(size):
        block = list(range(r * half // size, (r + 1) * half // size))
        out.append(block + [total - 1 - p for p in reversed(block)])
    if total % 2:  # the middle example pairs with itself: the last rank takes it
        mid = len(out[-1]) // 2
        out[-1].insert(mid, half)
    return out


@dataclass(frozen=True)
class Shard:
    """This rank's rows of a global batch of `total` examples."""

    positions: tuple[int, ...]
    total: int

    @classmethod
    def of(cls, total: int, w: World) -> Shard:
        return cls(tuple(rows(total, w.size)[w.rank]), total)

    def take(self, drawn: torch.Tensor) -> torch.Tensor:
        """This rank's rows of something drawn for the whole global batch."""
        if len(self.positions) == self.total:
            return drawn
        return drawn[torch.tensor(self.positions, device=drawn.device)]


def eval_shard(n: int, chunk: int, w: World) -> torch.Tensor:
    """The evaluation points of this rank: whole chunks of `chunk` points, dealt round-robin
    (an attack that batches, such as AutoAttack, sees the same chunks on 1 or N ranks)."""
    starts = range(w.rank * chunk, n, w.size * chunk)
    return torch.cat([torch.arange(s, min(s + chunk, n)) for s in starts] or
                     [torch.zeros(0, dtype=torch.long)])
