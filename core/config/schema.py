"""The run configuration: a typed schema (dataclasses), composed by Hydra from core/conf presets.

Every field has a role, declared where the field is: the experiment (what changes the numbers;
the default), the runtime (where and how fast: `runtime(...)`), the evaluations asked for
(`request(...)`: a finished run can be asked for more) or a label for people (`label(...)`).
`run_id(cfg)` hashes the experiment fields and nothing else, so two runs with the same id are
the same experiment, wherever and however fast they ran.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from core.infra.errors import ConfigError

ROLE = "role"
EXPERIMENT, RUNTIME, REQUEST, LABEL = "experiment", "runtime", "request", "label"
SINCE = "hashed_unless"  # metadata: a field added after runs existed (see `added`)
BOUNDS = "bounds"        # metadata: (ge, gt, le, lt) a value must respect (None: no bound)


def param(default: Any = None, *, factory: Any = None, role: str = EXPERIMENT, ge: Any = None,
          gt: Any = None, le: Any = None, lt: Any = None, since: bool = False) -> Any:
    """A field with its role and the range its value must lie in (core.runs.checks checks it).
    since=True: a field added after runs were recorded; while it has its default (the
    behaviour those runs had) it stays out of the hash, so their run ids remain valid."""
    meta: dict[str, Any] = {ROLE: role, BOUNDS: (ge, gt, le, lt)}
    if since:
        meta[SINCE] = default
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def runtime(default: Any = None, factory: Any = None, **bounds: Any) -> Any:
    """Where or how fast a run happens (device, threads, folders, progress bars)."""
    return param(default, factory=factory, role=RUNTIME, **bounds)


def request(default: Any = None, factory: Any = None, **bounds: Any) -> Any:
    """Which evaluations are asked for: a finished run evaluates only the ones it lacks."""
    return param(default, factory=factory, role=REQUEST, **bounds)


def label(default: Any = None) -> Any:
    """A name for people (the preset a group came from); it computes nothing."""
    return param(default, role=LABEL)


def added(default: Any, **bounds: Any) -> Any:
    """An experiment field added after runs were recorded (see `param`'s since)."""
    return param(default, since=True, **bounds)


@dataclass
class ModelCfg:
    preset: str = label("vit_b16")       # the name of the preset file
    arch: str = "vit_base_patch16_224"   # a timm model name
    # none | timm:<tag> | file:<path> | run:<run-id> | pretrain (the `pretrain` block below)
    source: str = "timm:vit_base_patch16_224.orig_in21k_ft_in1k"
    # this architecture's weight sets by pretraining data, e.g. {in1k: timm:..., in21k: ...}
    # (the pretraining ablation picks one with model.source=${model.sources.in21k})
    sources: dict[str, str] = field(default_factory=dict)
    img_size: int | None = param(None, ge=1)     # None: the data set's image size
    patch_size: int | None = param(None, ge=1)   # None: the architecture's own
    window_size: int | None = param(None, ge=1)  # Swin only; None: the architecture's own
    kernel_adapt: str = "block_sum"      # how a larger pretrained patch kernel is reduced
    # how a pretrained position-embedding grid is resized (14x14 -> 8x8 on CIFAR-10):
    # bicubic_antialias (timm's) | bilinear (the official code's; the paper scale's default)
    pos_resize: str = added("bicubic_antialias")
    drop_path: float = param(0.0, ge=0, lt=1)
    # where drop path acts: both (timm's: both residual branches) | attention (the official Swin's)
    drop_path_on: str = added("both")


@dataclass
class DataCfg:
    name: str = "cifar10"
    root: str | None = runtime(None)
    img_size: int = param(32, ge=1)
    train_subset: int | None = param(None, ge=1)  # first N of a fixed shuffle of the train set
    # the last, smaller batch of an epoch is dropped (ours) or kept (the official code's;
    # the paper scale's default: kept, less its last image when Mixup needs an even batch)
    drop_last: bool = added(True)
    num_workers: int = runtime(4, ge=0)


@dataclass
class AugCfg:
    preset: str = label("mixup_cutmix")
    crop_padding: int = param(4, ge=0)   # random crop with this zero padding (0: off)
    flip: bool = True
    randaugment: str | None = None       # a timm RandAugment spec, e.g. rand-m9-mstd0.5-inc1
    mixup_alpha: float = param(0.0, ge=0)
    cutmix_alpha: float = param(0.0, ge=0)
    mix_prob: float = param(1.0, ge=0, le=1)
    switch_prob: float = param(0.5, ge=0, le=1)
    mix_at_only: bool = False            # mix only for objectives the official code mixed for


@dataclass
class AttackCfg:
    """The training attack. eps and step_size are in [0,1] pixel units; '8/255' is accepted."""

    eps: Any = "8/255"
    step_size: Any = "2/255"
    steps: int = param(10, ge=0)
    start: str | None = None             # uniform | gaussian | none; None: the method's own
    restarts: int = param(1, ge=1)


@dataclass
class OptimCfg:
    name: str = "sgd"                    # sgd | adamw
    lr: float = param(0.1, gt=0)
    momentum: float = param(0.9, ge=0, lt=1)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = param(1e-4, ge=0)
    schedule: str = "piecewise"          # piecewise | cyclic | constant
    decay_before_end: list[float] = field(default_factory=lambda: [5.0, 2.0])
    decay_factor: float = param(0.1, gt=0, le=1)
    cyclic_peak: float = param(0.4, gt=0, lt=1)  # fraction of training at the one-cycle peak
    grad_clip: bool = True
    grad_clip_norm: float = param(1.0, gt=0)


@dataclass
class EmaCfg:
    enabled: bool = False
    decay: float = param(0.999, gt=0, lt=1)


@dataclass
class EvalCfg:
    preset: str = label("full")
    attacks: list[str] = request(factory=lambda: ["clean", "pgd20", "cw20", "pgd100", "aa"])
    n: int | None = param(None, ge=1)    # test points for every attack (None: all)
    # which test points, in which order: shuffled (a fixed shuffle) | robustbench (its 5,000
    # ImageNet ids, core/data/points.py); eval.n takes the first n
    points: str = added("shuffled")
    n_aa: int | None = request(None, ge=1)  # AutoAttack on the first n_aa of those (None: all)
    batch_size: int | None = runtime(None, ge=1)  # None: from free GPU memory (CPU: 256)
    # AutoAttack attacks this many points as one batch (its random starts depend on which points
    # share a batch), so its numbers and its resume never depend on the eval batch, i.e. on the
    # GPU's free memory. 500 keeps the tiny scale's 360 points one chunk, as they always ran.
    aa_chunk: int = added(500, ge=1)
    cw_kappa: float = param(50.0, gt=0)
    # the evaluation PGD/CW step in pixel units (the official --alpha: 2/255; ImageNet 1/255)
    step_size: Any = added(2 / 255)
    curve_n: int = param(500, ge=0)      # fixed test subset for the per-epoch curve
    curve_attack: str = "pgd20"


@dataclass
class PretrainCfg:
    """The clean run that `model.source: pretrain` trains on first use and then loads."""

    data: str = "digits"
    train_subset: int | None = param(None, ge=1)
    epochs: int = param(40, ge=1)
    batch_size: int = param(128, ge=1)
    optim: str = "adamw"                 # one-cycle schedule
    lr: float = param(3e-3, gt=0)
    weight_decay: float = param(0.05, ge=0)
    seed: int = 0                        # one pretraining shared by every fine-tuning seed


@dataclass
class ResourcesCfg:
    """What one run's job asks of a cluster; the SLURM profile gives the rest (partition,
    memory, time). The scale sets these (tiny: the `cpu` profile, no GPU)."""

    profile: str = runtime("default")    # slurm/profiles/<name>.yaml unless --profile says
    gpus_per_node: int | None = runtime(None, ge=0)  # None: the profile's gpus_per_job
    nodes: int = runtime(1, ge=1)
    # processes per node, one rank each (torch.distributed): None, one per GPU (or one);
    # on CPUs (gloo) set it to run a cell on several processes
    tasks_per_node: int | None = runtime(None, ge=1)


@dataclass
class RunConfig:
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    aug: AugCfg = field(default_factory=AugCfg)
    attack: AttackCfg = field(default_factory=AttackCfg)
    # the objective and its own hyper-parameters (core/conf/method/<name>.yaml), e.g.
    # {name: trades, beta: 6.0}; core.training.objectives says which each one reads
    method: dict[str, Any] = field(default_factory=lambda: {"name": "at"})
    optim: OptimCfg = field(default_factory=OptimCfg)
    ema: EmaCfg = field(default_factory=EmaCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    pretrain: PretrainCfg = field(default_factory=PretrainCfg)
    scale_name: str = "paper"
    epochs: int = param(40, ge=1)
    batch_size: int = param(128, ge=1)
    ard: bool = False
    prm: bool = False
    warmup_epochs: float = param(10.0, ge=0)  # w: ARD/PRM warm-up length in epochs
    prm_mask: str = "batch"              # batch: one mask per step for the batch (official)
    # PRM's grid cell in pixels: None, the model's own patches (Swin: 4 px); the official
    # code masks a 16-pixel grid for every model at 224 (the Imagenette preset sets 16)
    prm_cell: int | None = added(None, ge=1)
    precision: str = "fp32"              # fp32 | tf32 | bf16 (paper scale: bf16)
    seed: int = param(0, ge=0)
    # where and how fast (device, threads and compile can change float rounding, as any
    # change of kernels does: the tiny scale pins threads for that reason)
    compile: bool = runtime(False)       # torch.compile the network (GPUs; slower on CPU)
    device: str = runtime("auto")
    threads: int | None = runtime(None, ge=1)  # CPU threads for torch (None: torch's default)
    runs_dir: str = runtime("runs")
    progress: bool = runtime(True)
    checkpoint_minutes: float = runtime(10.0, ge=0)  # also save mid-epoch after this long
    # live tracking, off by default: [tensorboard] and/or [wandb] (offline mode)
    track: list[str] = runtime(factory=list)
    resources: ResourcesCfg = field(default_factory=ResourcesCfg)


FRACTION_FIELDS = ("attack.eps", "attack.step_size", "eval.step_size")


def parse_fraction(value: Any, name: str) -> float:
    """'8/255' -> 0.0313..., numbers pass through; anything else is a ConfigError."""

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        if "/" in text:
            num, den = text.split("/")
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{name}={value!r} is not a number; write e.g. {name}=8/255") from None


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(d: dict[str, Any]) -> RunConfig:
    """Rebuild (and type-check) a RunConfig from a plain dict, e.g. a stored result's."""
    merged = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.create(d))
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, RunConfig)
    return normalise(cfg)


def normalise(cfg: RunConfig) -> RunConfig:
    """Turn fraction strings into floats so '8/255' and 0.031372... hash alike."""
    for dotted in FRACTION_FIELDS:
        node_name, leaf = dotted.split(".")
        node = getattr(cfg, node_name)
        setattr(node, leaf, parse_fraction(getattr(node, leaf), dotted))
    return cfg


def fields_with(cfg: Any, key: str, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted name, value, metadata[key]) of every leaf field whose metadata has `key`."""
    out = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out += fields_with(v, key, f"{prefix}{f.name}.")
        elif key in f.metadata:
            out.append((f"{prefix}{f.name}", v, f.metadata[key]))
    return out


