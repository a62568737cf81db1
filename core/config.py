"""The run configuration: a typed schema (dataclasses), composed by Hydra from core/conf presets.

Every field has a role, declared where the field is: the experiment (what changes the numbers;
the default), the runtime (where and how fast: `runtime(...)`), the evaluations asked for
(`request(...)`: a finished run can be asked for more) or a label for people (`label(...)`).
`run_id(cfg)` hashes the experiment fields and nothing else, so two runs with the same id are
the same experiment, wherever and however fast they ran.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

ROLE = "role"
EXPERIMENT, RUNTIME, REQUEST, LABEL = "experiment", "runtime", "request", "label"
SINCE = "hashed_unless"  # metadata: a field added after runs existed (see `added`)


def _role(role: str, default: Any, factory: Any = None) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata={ROLE: role})
    return field(default=default, metadata={ROLE: role})


def runtime(default: Any = None, factory: Any = None) -> Any:
    """Where or how fast a run happens (device, threads, folders, progress bars)."""
    return _role(RUNTIME, default, factory)


def request(default: Any = None, factory: Any = None) -> Any:
    """Which evaluations are asked for: a finished run evaluates only the ones it lacks."""
    return _role(REQUEST, default, factory)


def label(default: Any = None) -> Any:
    """A name for people (the preset a group came from); it computes nothing."""
    return _role(LABEL, default)


def added(default: Any) -> Any:
    """An experiment field added after runs were recorded: while it has this value (the
    behaviour those runs had) it stays out of the hash, so their run ids remain valid."""
    return field(default=default, metadata={ROLE: EXPERIMENT, SINCE: default})


@dataclass
class ModelCfg:
    preset: str = label("vit_b16")       # the name of the preset file
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
    root: str | None = runtime(None)
    img_size: int = 32
    train_subset: int | None = None      # first N of a fixed shuffle of the training set
    num_workers: int = runtime(4)


@dataclass
class AugCfg:
    preset: str = label("mixup_cutmix")
    crop_padding: int = 4                # random crop with this zero padding (0: off)
    flip: bool = True
    randaugment: str | None = None       # a timm RandAugment spec, e.g. rand-m9-mstd0.5-inc1
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    mix_at_only: bool = False            # mix only for objectives the official code mixed for


@dataclass
class AttackCfg:
    """The training attack. eps and step_size are in [0,1] pixel units; '8/255' is accepted."""

    eps: Any = "8/255"
    step_size: Any = "2/255"
    steps: int = 10
    start: str | None = None             # uniform | gaussian | none; None: the method's own
    restarts: int = 1


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
    preset: str = label("full")
    attacks: list[str] = request(factory=lambda: ["clean", "pgd20", "cw20", "pgd100", "aa"])
    n: int | None = None                 # test points for every attack (None: all)
    n_aa: int | None = request(None)     # AutoAttack on the first n_aa of those (None: all)
    batch_size: int | None = runtime(None)  # None: from free GPU memory (CPU: 256)
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
    # the objective and its own hyper-parameters (core/conf/method/<name>.yaml), e.g.
    # {name: trades, beta: 6.0}; core.training.objectives says which each one reads
    method: dict[str, Any] = field(default_factory=lambda: {"name": "at"})
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
    seed: int = 0
    # where and how fast (device, threads and compile can change float rounding, as any
    # change of kernels does: the tiny scale pins threads for that reason)
    compile: bool = runtime(False)       # torch.compile the network (GPUs; slower on CPU)
    device: str = runtime("auto")
    threads: int | None = runtime(None)  # CPU threads for torch (None: torch's default)
    runs_dir: str = runtime("runs")
    progress: bool = runtime(True)
    checkpoint_minutes: float = runtime(10.0)  # also save mid-epoch after this long


FRACTION_FIELDS = ("attack.eps", "attack.step_size")
# Before objectives declared their own hyper-parameters every config carried method.beta
# (6.0 unless set); the hash sees it where it is absent, so the ids of those runs hold.
HASHED_WHEN_ABSENT = {"method.beta": 6.0}


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


def _flatten(value: Any, prefix: str, roles: tuple[str, ...]) -> dict[str, Any]:
    """Dotted leaves of the fields whose role is in `roles` (dicts are flattened too)."""
    out: dict[str, Any] = {}
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if dataclasses.is_dataclass(v):
                out.update(_flatten(v, f"{prefix}{f.name}.", roles))
            elif f.metadata.get(ROLE, EXPERIMENT) in roles and not (
                    SINCE in f.metadata and v == f.metadata[SINCE]):
                out.update(_flatten(v, f"{prefix}{f.name}", roles))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}", roles))
    else:
        out[prefix] = value
    return out


def experiment_dict(cfg: RunConfig) -> dict[str, Any]:
    """The experiment part of `cfg`, flattened: what the run id hashes."""
    flat = {**HASHED_WHEN_ABSENT, **_flatten(cfg, "", (EXPERIMENT,))}
    return dict(sorted(flat.items()))


def runtime_dict(cfg: RunConfig) -> dict[str, Any]:
    """Where and how fast `cfg` runs, flattened."""
    return _flatten(cfg, "", (RUNTIME,))


def run_id(cfg: RunConfig) -> str:
    text = json.dumps(experiment_dict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def replace(cfg: RunConfig, **changes: Any) -> RunConfig:
    """A copy of `cfg` with dotted-path changes: replace(cfg, **{'optim.lr': 0.01})."""
    d = to_dict(cfg)
    for dotted, value in changes.items():
        _set(d, dotted, value)
    return from_dict(d)


def _set(d: dict, dotted: str, value: Any) -> None:
    """Set a dotted path; only the open `method` group takes keys it does not have yet."""
    *parents, leaf = dotted.split(".")
    for p in parents:
        d = d[p]
    if leaf not in d and parents != ["method"]:
        raise KeyError(dotted)
    d[leaf] = value


def _get(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d[part]
    return d


# The clean run that `model.source: pretrain` stands for, declared: the schema's defaults,
# the fine-tuning run's runtime (all of it), plus what pretraining depends on. Every
# fine-tuning cell that shares these shares one pretraining run, as the paper's cells share
# one ImageNet checkpoint.
PRETRAIN_KEEPS = ("model.preset", "model.arch", "model.img_size", "model.patch_size",
                  "model.window_size", "data.img_size", "aug.crop_padding", "aug.flip",
                  "eval.curve_n", "pretrain", "scale_name", "precision")
PRETRAIN_TAKES = {"data.name": "data", "data.train_subset": "train_subset", "epochs": "epochs",
                  "batch_size": "batch_size", "optim.name": "optim", "optim.lr": "lr",
                  "optim.weight_decay": "weight_decay", "seed": "seed"}  # from cfg.pretrain
PRETRAIN_SETS = {"model.source": "none", "aug.preset": "none", "method": {"name": "clean"},
                 "optim.schedule": "cyclic", "eval.preset": "clean", "eval.attacks": ["clean"]}


def pretrain_config(cfg: RunConfig) -> RunConfig:
    src, d = to_dict(cfg), to_dict(RunConfig())
    changes = {k: _get(src, k) for k in PRETRAIN_KEEPS}
    changes.update({k: src["pretrain"][v] for k, v in PRETRAIN_TAKES.items()})
    changes.update({**PRETRAIN_SETS, **runtime_dict(cfg)})
    if cfg.pretrain.data != cfg.data.name:  # the fine-tuning data's folder is not this set's
        changes["data.root"] = None
    for dotted, value in changes.items():
        _set(d, dotted, value)
    return from_dict(d)
