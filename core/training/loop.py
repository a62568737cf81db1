"""The training loop: one config, one model, resumable at any step with the same numbers.

Randomness at step s of epoch e comes from seeds derived from (seed, e, s), the batch order
from (seed, e); nothing depends on how many times the job was started.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import torch
from timm.utils import ModelEmaV3
from torch import nn
from tqdm import tqdm

from core.config import RunConfig
from core.data import Mixer, RandAugment, Splits, steps_per_epoch, train_batches
from core.data.images import stack
from core.data.loader import global_size
from core.data.sets import train_indices
from core.evaluation import CPU_BATCH, EVAL_ATTACKS, NATURAL, EvalContext, evaluate
from core.infra.distributed import Shard, world
from core.infra.errors import ConfigError
from core.infra.rundir import RunDir
from core.models import BuiltModel
from core.training import step as steps_mod
from core.training.ard_prm import ARD, PRM
from core.training.checkpoint import load_checkpoint, save_checkpoint
from core.training.curve import write_curve
from core.training.objectives import objective_of
from core.training.schedules import build_optimizer
from core.training.tracking import LOG_EVERY, Tracking

log = logging.getLogger(__name__)
_SAVE_REQUESTED = {"now": False}  # set by a job about to be requeued (rank 0's signal)


def request_save() -> None:
    """Save at the next step boundary (every rank: rank 0's request is broadcast)."""
    _SAVE_REQUESTED["now"] = True


@dataclass
class Progress:
    """Everything besides weights that a resumed run needs (stored in the checkpoint)."""

    step: int = 0                  # optimizer steps done
    images: int = 0
    train_seconds: float = 0.0
    epoch_loss: float = 0.0        # sums over the current epoch so far
    epoch_correct: float = 0.0
    epoch_seen: int = 0
    epoch_steps: int = 0
    epoch_grad_norm: float = 0.0   # before clipping: the clipping ablation's diagnostic
    epoch_grad_norm_max: float = 0.0
    curve: list[dict] = field(default_factory=list)
    last_step_seconds: float = 0.0  # the latest optimizer step, attack included
    status: str = "running"        # running | trained | diverged
    diverged_at: dict | None = None


@dataclass
class Trainee:
    model: nn.Module
    opt: torch.optim.Optimizer
    ema: ModelEmaV3 | None
    ard: ARD | None
    prm: PRM | None
    ddp: nn.Module | None = None   # the model wrapped for gradient averaging across ranks
    tracking: Tracking | None = None  # live tracking (rank 0, when asked for)
    meter: dict[str, torch.Tensor] = field(default_factory=dict)  # epoch sums, on the device
    last: dict = field(default_factory=dict)  # the latest step's loss, gradient norm, lr
    updating: bool = False         # inside the weight update: the state is not a step boundary

    def flush(self, progress: Progress) -> None:
        """Move the device-side sums into `progress` (syncs; done per epoch and per save)."""
        progress.epoch_loss += float(self.meter.pop("loss", 0.0))
        progress.epoch_correct += float(self.meter.pop("correct", 0.0))
        progress.epoch_grad_norm += float(self.meter.pop("grad_norm", 0.0))
        progress.epoch_grad_norm_max = max(progress.epoch_grad_norm_max,
                                           float(self.meter.pop("grad_norm_max", 0.0)))

    @property
    def trainer(self) -> nn.Module:
        """What the weight update's forward passes go through (DDP on several ranks)."""
        return self.ddp if self.ddp is not None else self.model

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model


def setup(cfg: RunConfig, built: BuiltModel, device: torch.device) -> Trainee:
    model = built.model.to(device)
    if cfg.compile:
        model.net.compile()  # in place: state-dict keys and ARD's hooks stay as they are
    ema = ModelEmaV3(model, decay=cfg.ema.decay) if cfg.ema.enabled else None
    ard = ARD(model.net, built.family, outer=model) if cfg.ard else None
    prm = (PRM(model.net, per_example=cfg.prm_mask == "example", cell=cfg.prm_cell)
           if cfg.prm else None)
    ddp = None
    if world().size > 1:  # the attack uses the bare model: input gradients need no syncing
        ddp = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    return Trainee(model, build_optimizer(model, cfg.optim), ema, ard, prm, ddp)


def train(cfg: RunConfig, run_id: str, run_dir: RunDir, built: BuiltModel, splits: Splits,
          device: torch.device, tracking: Tracking | None = None) -> tuple[Progress, Trainee]:
    t = setup(cfg, built, device)
    t.tracking = tracking
    progress = _restore(run_dir, run_id, t)
    if progress.status == "running":
        _loop(cfg, run_id, run_dir, t, splits, device, progress)
    return progress, t


def _restore(run_dir: RunDir, run_id: str, t: Trainee) -> Progress:
    """Every rank restores from the same checkpoint (rank 0 wrote it)."""
    state = load_checkpoint(run_dir, run_id)
    if state is None:
        return Progress()
    t.model.load_state_dict(state["model"])
    t.opt.load_state_dict(state["optimizer"])
    if t.ema is not None:
        t.ema.module.load_state_dict(state["ema"])
    progress = Progress(**state["progress"])
    log.info("resumed from step %d (%s)", progress.step, progress.status)
    return progress


def _save(run_dir: RunDir, run_id: str, t: Trainee, progress: Progress) -> None:
    """Rank 0 writes (the meters are global sums already: no collective here, so a rank
    interrupted alone can still save)."""
    t.flush(progress)
    if world().main:
        save_checkpoint(run_dir, {
            "run_id": run_id, "model": t.model.state_dict(), "optimizer": t.opt.state_dict(),
            "ema": t.ema.module.state_dict() if t.ema is not None else None,
            "progress": asdict(progress)})


def _loop(cfg: RunConfig, run_id: str, run_dir: RunDir, t: Trainee, splits: Splits,
          device: torch.device, progress: Progress) -> None:
    w = world()
    indices = train_indices(len(splits.train), cfg.data.train_subset)
    steps = steps_per_epoch(len(indices), cfg.batch_size, cfg.data.drop_last)
    if steps == 0:
        raise ConfigError(f"the training set has {len(indices)} images, fewer than one batch "
                          f"(batch_size={cfg.batch_size}); lower batch_size")
    first_epoch, start = divmod(progress.step, steps)
    randaug = RandAugment(cfg.aug.randaugment, cfg.data.img_size) if cfg.aug.randaugment else None
    mixer = Mixer(cfg.aug, splits.num_classes)
    batches = train_batches(splits.train, indices, cfg.batch_size, cfg.seed, first_epoch, start,
                            cfg.epochs, randaug, cfg.data.num_workers, device,
                            drop_last=cfg.data.drop_last, even=mixer.active, world=w)
    curve_x, curve_y = _curve_subset(splits, cfg.eval.curve_n)
    last_save = time.monotonic()
    bar = tqdm(total=cfg.epochs * steps, initial=progress.step,
               disable=not (cfg.progress and w.main), desc=f"train {run_id}", dynamic_ncols=True)
    for x, y in batches:
        epoch, step = divmod(progress.step, steps)
        total = global_size(len(indices), cfg.batch_size, step, mixer.active)
        at = steps_mod.StepAt(epoch, step, steps, Shard.of(total, w), w)
        tick = time.perf_counter()
        try:
            ok = steps_mod.optimizer_step(cfg, t, mixer, x.to(device, non_blocking=True),
                                          y.to(device, non_blocking=True), at, device,
                                          progress)
        except BaseException:  # preemption (SLURM's signal via submitit), Ctrl-C, kill
            _save_if_consistent(run_dir, run_id, t, progress)
            raise
        progress.last_step_seconds = time.perf_counter() - tick
        progress.train_seconds += progress.last_step_seconds
        if not ok:
            break
        progress.step += 1
        bar.update(1)
        if t.tracking and progress.step % LOG_EVERY == 0:
            t.tracking.log("train", {**{k: float(v) for k, v in t.last.items()},
                                     "images_per_s": progress.images / progress.train_seconds},
                           progress.step)
        if progress.step % steps == 0:
            _end_epoch(cfg, t, progress, epoch, curve_x, curve_y, device)
            if w.main:
                write_curve(run_dir, progress.curve)
            bar.set_postfix({k: f"{v:.3f}" for k, v in progress.curve[-1].items()
                             if k.endswith("acc")})
        # every rank decides alike (rank 0's clock), so saves stay in step
        due = w.broadcast(_SAVE_REQUESTED["now"]
                          or time.monotonic() - last_save > cfg.checkpoint_minutes * 60)
        if progress.step % steps == 0 or due:
            _save(run_dir, run_id, t, progress)
            last_save, _SAVE_REQUESTED["now"] = time.monotonic(), False
    bar.close()
    if progress.status == "running":
        progress.status = "trained"
    _save(run_dir, run_id, t, progress)


def _save_if_consistent(run_dir: RunDir, run_id: str, t: Trainee, progress: Progress) -> None:
    """Interrupted in the attack or the backward pass, nothing has changed since the last
    step: save, so the job resumes exactly here. Inside the update, keep the last save."""
    if not t.updating:
        _save(run_dir, run_id, t, progress)
        log.info("interrupted: saved at step %d", progress.step)


def _curve_subset(splits: Splits, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if n == 0:  # no curve: empty, and _end_epoch evaluates nothing
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    idx = splits.test_order()[:n]
    x, y = stack(splits.test, idx)
    return x.float() / 255, y


def _end_epoch(cfg: RunConfig, t: Trainee, progress: Progress, epoch: int, x: torch.Tensor,
               y: torch.Tensor, device: torch.device) -> None:
    ctx = EvalContext(eps=cfg.attack.eps, seed=cfg.seed,
                      batch_size=cfg.eval.batch_size or CPU_BATCH,  # small fixed subset
                      device=device, eval=cfg.eval)
    attacks = [NATURAL] + ([cfg.eval.curve_attack] if objective_of(cfg.method)[0].attacks else [])
    m = evaluate(t.eval_model, x, y, attacks, ctx) if len(y) else {}  # eval.curve_n=0: none
    t.flush(progress)
    seen = max(progress.epoch_seen, 1)
    row = {"epoch": epoch + 1, "lr": t.opt.param_groups[0]["lr"],
           "train_loss": progress.epoch_loss / seen, "train_acc": progress.epoch_correct / seen,
           "test_clean_acc": m.get(EVAL_ATTACKS.get(NATURAL).column, float("nan")),
           "test_robust_acc": m.get(EVAL_ATTACKS.get(cfg.eval.curve_attack).column, float("nan")),
           "grad_norm_mean": progress.epoch_grad_norm / max(progress.epoch_steps, 1),
           "grad_norm_max": progress.epoch_grad_norm_max,
           "images_per_s": progress.images / max(progress.train_seconds, 1e-9),
           "train_seconds": progress.train_seconds}
    progress.curve.append(row)
    if t.tracking:
        t.tracking.log("epoch", {k: v for k, v in row.items() if k != "epoch"}, epoch + 1)
    progress.epoch_loss = progress.epoch_correct = 0.0
    progress.epoch_grad_norm = progress.epoch_grad_norm_max = 0.0
    progress.epoch_seen = progress.epoch_steps = 0
    log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in row.items()})
