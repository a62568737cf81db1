"""What a result must say about where it came from: code version, packages, machine."""
from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from core.infra.kernels import settings

PACKAGES = ("torch", "torchvision", "timm", "pyautoattack", "hydra-core", "submitit", "numpy",
            "scikit-learn", "pillow")
REPO = Path(__file__).resolve().parents[2]  # core/infra/provenance.py -> the checkout


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def code_version() -> dict:
    """git SHA of the checkout and whether tracked files differ from it."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_sha": sha or "unknown", "dirty": bool(status) if status is not None else None}


@functools.cache
def commit_date(sha: str) -> str | None:
    """The commit's date (YYYY-MM-DD, committer's), where this checkout knows the commit: a
    fact of the commit, so a report rebuilt later says the same."""
    return _git("show", "-s", "--format=%cs", f"{sha}^{{commit}}") or None


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    """Everything a number can depend on beyond the config and the code: the host, the CPU
    and the instruction set torch dispatches to, the GPU and its CUDA/cuDNN, the threads and
    the determinism settings in force."""

    out = {"host": platform.node(), "device": str(device), "python": platform.python_version(),
           "threads": torch.get_num_threads(), "cpu": cpu_model(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "cpu_kernels": settings(), "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
           "cudnn_deterministic": torch.backends.cudnn.deterministic,
           "cudnn_benchmark": torch.backends.cudnn.benchmark,
           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,  # convolutions (patch embedding)
           "matmul_precision": torch.get_float32_matmul_precision()}
    out["device_name"] = (torch.cuda.get_device_name(device) if device.type == "cuda"
                          else out["cpu"])
    out["kind"] = machine_kind(out)
    return out


def machine_kind(m: dict) -> str:
    """What makes float rounding differ between machines, in one string: a table whose runs
    have several kinds is flagged by the report. The CPU model is part of it: pinned to AVX2,
    an AMD EPYC and an Intel Xeon still gave the same tiny run different numbers (README)."""
    if str(m.get("device", "cpu")).startswith("cuda"):
        return f"{m.get('device_name')} (CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')})"
    kind = f"CPU {m.get('cpu_capability', '?')} on {m.get('cpu')}, {m.get('threads')} thread(s)"
    kernels = m.get("cpu_kernels") or {}
    if not (kernels.get("MKL_CBWR") and kernels.get("ONEDNN_MAX_CPU_ISA")):  # not pinned
        kind += ", native MKL/oneDNN"
    return kind


def reset_compile_stats() -> None:
    """A run that compiles starts from a clean dynamo: its graphs alone are counted."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()


def compile_stats() -> dict[str, int]:
    """What torch.compile did in this process since dynamo's counters were last cleared: the
    graphs it compiled (a recompile is one more) and its graph breaks (0: one graph a mode)."""
    from torch._dynamo.utils import counters

    return {"graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": sum(counters["graph_break"].values())}


def peak_memory(device: torch.device) -> dict:
    """The most memory this process held since the GPU's peak counter was last reset: the
    GPU's allocated bytes, or on a CPU the process's peak resident set (everything it loaded,
    not the run alone; never reset)."""
    if device.type == "cuda":
        return {"bytes": torch.cuda.max_memory_allocated(device), "what": "CUDA allocated"}
    import resource

    return {"bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "what": "process peak RSS"}
