"""Where pretrained weights come from: `none`, `timm:<tag>`, `file:<path>`, `run:<run-id>`.

Each source returns the raw state dict plus what the result must record: the resolved
source, the SHA-256 of the weights file and the normalisation the weights expect.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.errors import ConfigError, UserError
from core.registry import Registry

SOURCES: Registry = Registry("weight source")


@dataclass
class Weights:
    state_dict: dict | None
    resolved: str
    sha256: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    num_classes: int | None = None
    info: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"source": self.resolved, "sha256": self.sha256, "mean": self.mean,
                "std": self.std, **self.info}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_source(source: str) -> tuple[str, str]:
    kind, _, arg = source.partition(":")
    return kind, arg


def load_weights(source: str, runs_dir: str | Path = "runs") -> Weights:
    kind, arg = split_source(source)
    return SOURCES.get(kind)(arg, Path(runs_dir))


@SOURCES.register("none")
def _none(arg: str, runs_dir: Path) -> Weights:
    return Weights(None, "none")


@SOURCES.register("file")
def _file(arg: str, runs_dir: Path) -> Weights:
    """A timm-format state dict (.pth/.bin/.safetensors), e.g. on a cluster without internet."""
    from timm.models import load_state_dict

    path = Path(arg).expanduser()
    if not path.is_file():
        raise UserError(f"weights file not found: {path} (model.source=file:PATH needs a state "
                        "dict file; `python -m core.prefetch weights TAG --out FILE` writes one)")
    sd = load_state_dict(str(path), weights_only=True)
    return Weights(sd, f"file:{path.resolve()}", sha256_file(path))


@SOURCES.register("run")
def _run(arg: str, runs_dir: Path) -> Weights:
    """The final weights of a run of this project (e.g. a clean pretraining run)."""
    import json

    run_dir = runs_dir / arg
    path = run_dir / "weights.pth"
    if not path.is_file():
        raise UserError(f"no weights for run {arg}: {path} is missing (is the run finished, "
                        "and is runs_dir right?)")
    meta = json.loads((run_dir / "result.json").read_text())
    sd = torch.load(path, map_location="cpu", weights_only=True)
    norm = meta.get("pretrained") or {}
    return Weights(sd, f"run:{arg}", sha256_file(path), norm.get("mean"), norm.get("std"),
                   num_classes=meta.get("num_classes"))


@SOURCES.register("timm")
def _timm(tag: str, runs_dir: Path) -> Weights:
    """A timm pretrained tag, from the Hugging Face / torch hub cache or the network."""
    import timm
    from timm.models import get_pretrained_cfg

    arch, _, _ = tag.partition(".")
    cfg = get_pretrained_cfg(tag)
    if cfg is None or not timm.is_model(arch):
        raise ConfigError(f"unknown timm pretrained tag '{tag}'; "
                          f"see timm.list_pretrained('{arch}*')")
    try:
        net = timm.create_model(tag, pretrained=True)
    except Exception as e:  # network or cache problems come in many exception types
        raise UserError(
            f"cannot load timm weights '{tag}' ({type(e).__name__}); on a machine with internet "
            f"run `python -m core.prefetch weights {tag}` (fills the cache; set HF_HUB_OFFLINE=1 "
            "on the cluster) or use model.source=file:PATH") from None
    path = cached_weights_file(tag)
    return Weights(net.state_dict(), f"timm:{tag}", sha256_file(path) if path else None,
                   tuple(cfg.mean), tuple(cfg.std), num_classes=cfg.num_classes,
                   info={"weights_file": str(path) if path else None})


def cached_weights_file(tag: str) -> Path | None:
    """The local file timm loaded `tag` from (HF hub or torch hub cache), if it can be found."""
    from timm.models import get_pretrained_cfg
    from timm.models._builder import _resolve_pretrained_source

    cfg = get_pretrained_cfg(tag).to_dict()
    load_from, loc = _resolve_pretrained_source(cfg)
    if load_from == "hf-hub":
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = loc if isinstance(loc, tuple) else (loc, None)
        names = [filename] if filename else ["model.safetensors", "pytorch_model.bin",
                                             "open_clip_pytorch_model.bin"]
        for name in names:
            hit = try_to_load_from_cache(repo_id, name)
            if isinstance(hit, str):
                return Path(hit)
    elif load_from == "url":
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(loc)
        return path if path.is_file() else None
    elif load_from == "file":
        return Path(loc)
    return None
