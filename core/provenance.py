"""What a result must say about where it came from: code version, packages, machine."""
from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "timm", "pyautoattack", "hydra-core", "submitit", "numpy",
            "scikit-learn", "pillow")
REPO = Path(__file__).resolve().parent.parent


@functools.cache
def code_version() -> dict:
    """git SHA of the checkout and whether tracked files differ from it."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_sha": sha or "unknown", "dirty": bool(status) if status is not None else None}


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {"host": platform.node(), "device": str(device), "device_name": name or "cpu",
            "python": platform.python_version(), "threads": torch.get_num_threads()}
