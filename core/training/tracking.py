"""Live tracking of a run, off by default (`track=[tensorboard]`, `track=[wandb]`, or both):
TensorBoard event files in the run folder (readable offline on a cluster: `tensorboard
--logdir runs/`), and Weights & Biases in offline mode (`wandb sync runs/<id>/wandb/...`
later, from a machine with internet).

Logged: the learning rate, the loss and the gradient norm before clipping every LOG_EVERY
steps, images/s; per epoch the curve row (train loss/accuracy, test natural and robust
accuracy); at the end the final metrics; and the resolved config. Rank 0 alone tracks.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from core.infra.registry import Registry
from core.infra.rundir import RunDir

LOG_EVERY = 10  # steps between per-step scalars (each costs one device sync)


@dataclass
class Tracker:
    scalars: Callable[[str, dict[str, float], int], None]   # (group, values, step)
    close: Callable[[], None]


@dataclass(frozen=True)
class Backend:
    """open(run_dir, run_id, config) -> Tracker; package: what must be installed for it."""

    open: Callable[[RunDir, str, dict], Tracker]
    package: str


TRACKERS: Registry[Backend] = Registry("tracker")


def _tensorboard(run_dir: RunDir, run_id: str, config: dict) -> Tracker:
    import yaml
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run_dir.tensorboard))
    writer.add_text("config", "```\n" + yaml.safe_dump(config, sort_keys=True) + "```", 0)

    def scalars(group: str, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            writer.add_scalar(f"{group}/{k}", v, step)
        writer.flush()

    return Tracker(scalars, writer.close)


def _wandb(run_dir: RunDir, run_id: str, config: dict) -> Tracker:
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "vitadv"), id=run_id, name=run_id,
                     dir=str(run_dir.path), mode="offline", config=config, resume="allow",
                     reinit="finish_previous")

    def scalars(group: str, values: dict[str, float], step: int) -> None:
        run.log({f"{group}/{k}": v for k, v in values.items()} | {f"{group}/step": step})

    return Tracker(scalars, run.finish)


TRACKERS.add("tensorboard", Backend(_tensorboard, "tensorboard"))
TRACKERS.add("wandb", Backend(_wandb, "wandb"))


def missing_package(names: list[str]) -> str | None:
    """Why a tracker asked for cannot run here (its package is not installed), or None."""
    import importlib.util

    for name in names:
        package = TRACKERS.get(name).package
        if importlib.util.find_spec(package) is None:
            return (f"track={name} needs the {package} package: pip install {package} (or "
                    "pip install -e '.[track]'), or leave track empty")
    return None


class Tracking:
    """The trackers a run asked for, as one."""

    def __init__(self, names: list[str], run_dir: RunDir, run_id: str, config: dict) -> None:
        self.trackers = [TRACKERS.get(n).open(run_dir, run_id, config) for n in names]

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log(self, group: str, values: dict[str, float], step: int) -> None:
        for t in self.trackers:
            t.scalars(group, values, step)

    def close(self) -> None:
        for t in self.trackers:
            t.close()
