"""The run configuration: a typed schema (dataclasses), composed by Hydra from core/conf presets.

`compose(overrides)` gives a resolved `RunConfig`; `run_id(cfg)` is the hash of the fields that
change the numbers, so two runs with the same id are the same experiment.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf


@dataclass
class ModelCfg:
    preset: str = "vit_b16"              # the name of the preset file (recorded, not used)
    arch: str = "vit_base_patch16_224"   # a timm model name
    # none | timm:<tag> | file:<path> | run:<run-id> | pretrain (the `pretrain` block below)
    source: str = "timm:vit_base_patch16_224.orig_in21k_ft_in1k"
    # this architecture's weight sets by pretraining data, e.g. {in1k: timm:..., in21k: ...}
    # (the pretraining ablation picks one with model.source=${model.sources.in21k})
    sources: dict[str, str] = field(default_factory=dict)
    img_size: int | None = None          # None: the data set's image size
    patch_size: int | None = None        # None: the architecture's own
    window_size: int | None = None       # Swin only; None: the architecture's own
    kernel_adapt: str = "block_sum"      # how a larger pretrained patch kernel is reduced
    drop_path: float = 0.0


@dataclass
class DataCfg:
    name: str = "cifar10"
    root: str | None = None
    img_size: int = 32
    train_subset: int | None = None      # first N of a fixed shuffle of the training set
    num_workers: int = 4


@dataclass
class AugCfg:
    preset: str = "mixup_cutmix"
    crop_padding: int = 4                # random crop with this zero padding (0: off)
    flip: bool = True
    randaugment: str | None = None       # a timm RandAugment spec, e.g. rand-m9-mstd0.5-inc1
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    mix_at_only: bool = False            # the official code mixed in the AT branch only


@dataclass
class AttackCfg:
    """The training attack. eps and step_size are in [0,1] pixel units; '8/255' is accepted."""

    eps: Any = "8/255"
    step_size: Any = "2/255"
    steps: int = 10
    start: str | None = None             # uniform | gaussian | none; None: the method's own
    restarts: int = 1


@dataclass
class MethodCfg:
    name: str = "at"                     # clean | at | trades | mart
    beta: float = 6.0


@dataclass
class OptimCfg:
    name: str = "sgd"                    # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-4
    schedule: str = "piecewise"          # piecewise | cyclic | constant
    decay_before_end: list[float] = field(default_factory=lambda: [5.0, 2.0])
    decay_factor: float = 0.1
    cyclic_peak: float = 0.4             # fraction of training at which the one-cycle lr peaks
    grad_clip: bool = True
    grad_clip_norm: float = 1.0


@dataclass
class EmaCfg:
    enabled: bool = False
    decay: float = 0.999


@dataclass
class EvalCfg:
    preset: str = "full"
    attacks: list[str] = field(default_factory=lambda: ["clean", "pgd20", "cw20", "pgd100", "aa"])
    n: int | None = None                 # test points for every attack (None: all)
    n_aa: int | None = None              # AutoAttack on the first n_aa of those (None: all)
    batch_size: int | None = None        # None: from free GPU memory (CPU: 256)
    cw_kappa: float = 50.0
    curve_n: int = 500                   # fixed test subset for the per-epoch curve
    curve_attack: str = "pgd20"


@dataclass
class PretrainCfg:
    """The clean run that `model.source: pretrain` trains on first use and then loads."""

    data: str = "digits"
    train_subset: int | None = None
    epochs: int = 40
    batch_size: int = 128
    optim: str = "adamw"                 # one-cycle schedule
    lr: float = 3e-3
    weight_decay: float = 0.05
    seed: int = 0                        # one pretraining shared by every fine-tuning seed


@dataclass
class RunConfig:
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    aug: AugCfg = field(default_factory=AugCfg)
    attack: AttackCfg = field(default_factory=AttackCfg)
    method: MethodCfg = field(default_factory=MethodCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    ema: EmaCfg = field(default_factory=EmaCfg)
    eval: EvalCfg = field(default_factory=EvalCfg)
    pretrain: PretrainCfg = field(default_factory=PretrainCfg)
    scale_name: str = "paper"
    epochs: int = 40
    batch_size: int = 128
    ard: bool = False
    prm: bool = False
    warmup_epochs: float = 10.0          # w: ARD/PRM warm-up length in epochs
    prm_mask: str = "batch"              # batch: one mask per step for the batch (official)
    precision: str = "fp32"              # fp32 | tf32 | bf16 (paper scale: bf16)
    compile: bool = False                # torch.compile the network (GPUs; slower on CPU)
    seed: int = 0
    device: str = "auto"
    threads: int | None = None           # CPU threads for torch (None: torch's default)
    runs_dir: str = "runs"
    progress: bool = True
    checkpoint_minutes: float = 10.0     # also save mid-epoch after this long


# Fields that say where or how fast a run happens, not what it computes (device, threads and
# compile can change float rounding, as any change of kernels does); and which attacks
# evaluate it, since a finished run can be asked for more (core.run evaluates only those).
NON_SEMANTIC = {
    "runs_dir", "device", "threads", "progress", "checkpoint_minutes", "data.root",
    "data.num_workers", "eval.batch_size", "model.preset", "aug.preset", "eval.preset",
    "eval.attacks", "eval.n_aa", "compile",
}
FRACTION_FIELDS = ("attack.eps", "attack.step_size")


def parse_fraction(value: Any, name: str) -> float:
    """'8/255' -> 0.0313..., numbers pass through; anything else is a ConfigError."""
    from core.errors import ConfigError

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


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def semantic_dict(cfg: RunConfig) -> dict[str, Any]:
    flat = _flatten(to_dict(cfg))
    return {k: v for k, v in sorted(flat.items()) if k not in NON_SEMANTIC}


def run_id(cfg: RunConfig) -> str:
    text = json.dumps(semantic_dict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def replace(cfg: RunConfig, **changes: Any) -> RunConfig:
    """A copy of `cfg` with dotted-path changes: replace(cfg, **{'optim.lr': 0.01})."""
    d = to_dict(cfg)
    for dotted, value in changes.items():
        node = d
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        if leaf not in node:
            raise KeyError(dotted)
        node[leaf] = value
    return from_dict(d)
