"""Shared fixtures: the real composed config, shrunk to seconds; a small trained model."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.infra.kernels import pin

ROOT = Path(__file__).resolve().parent.parent  # the checkout

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network
pin()  # as a run's entry point does, before this process's first kernel
torch.set_num_threads(min(2, torch.get_num_threads()))

NOT_QUICK = ("slow", "slurm", "compile_all")


def pytest_collection_modifyitems(items):
    """`pytest -m quick`, the inner loop: every test none of NOT_QUICK marks; `cuda` tests
    skip, with the reason, where torch sees no GPU."""
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False")
    for item in items:
        if not any(item.get_closest_marker(m) for m in NOT_QUICK):
            item.add_marker(pytest.mark.quick)
        if item.get_closest_marker("cuda") and not torch.cuda.is_available():
            item.add_marker(no_gpu)


# Shrinks a tiny-scale run to a few seconds while keeping every code path of a real run.
FAST = [
    "scale=tiny", "model.source=none", "data.train_subset=128", "batch_size=32", "epochs=2",
    "attack.steps=2", "eval=quick", "eval.n=48", "eval.curve_n=16", "eval.batch_size=16",
    "warmup_epochs=1", "optim.decay_before_end=[0.5]", "progress=false",
]


@pytest.fixture
def fast_cfg(tmp_path):
    """fast_cfg(*overrides) -> RunConfig writing its runs under this test's tmp folder."""
    from core.config.compose import compose

    def make(*overrides: str):
        return compose([*FAST, f"runs_dir={tmp_path / 'runs'}", *overrides])

    return make


@pytest.fixture(scope="session")
def digits():
    from core.config import DataCfg
    from core.data import load_splits

    return load_splits(DataCfg(name="digits", img_size=16))


@pytest.fixture(scope="session")
def test_batch(digits):
    from core.data.images import stack

    x, y = stack(digits.test, digits.test_order()[:128])
    return x.float() / 255, y


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """vit_micro trained cleanly on digits (~90% accuracy), for attack-strength tests."""
    from core.config import ModelCfg
    from core.config.compose import compose
    from core.models import build_model
    from core.runs.run import run

    runs = tmp_path_factory.mktemp("trained")
    cfg = compose(["scale=tiny", "method=clean", "model.source=none", "aug=none", "epochs=25",
                   "optim=adamw", "optim.lr=3e-3", "eval=quick", "eval.attacks=[clean]",
                   "progress=false", f"runs_dir={runs}"])
    result = run(cfg)
    model = build_model(ModelCfg(arch="vitadv_vit_micro", source=f"run:{result['run_id']}"),
                        16, 10, str(runs)).model.eval()
    return model, result


@contextlib.contextmanager
def interrupted_at(monkeypatch, k: int):
    """The k-th optimizer step raises KeyboardInterrupt (a kill mid-run); the others run."""
    import core.training.step as step

    original, calls = step.optimizer_step, []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(step, "optimizer_step", dies)
    try:
        yield
    finally:
        monkeypatch.setattr(step, "optimizer_step", original)


def cli(*args: str, cwd, module: str = "core.train",
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m <module> args` as a new user's shell runs it: offline, this checkout."""
    root = Path(__file__).resolve().parent.parent
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(root),
                                                       "PATH": "/usr/bin:/bin",
                                                       "HF_HUB_OFFLINE": "1", **(env or {})})


@pytest.fixture(scope="session")
def cluster():
    """A real single-node SLURM cluster on localhost (slurm/cluster.sh), or a skip saying why."""
    proc = subprocess.run(["bash", str(ROOT / "slurm" / "cluster.sh"), "up"], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        pytest.skip(f"no SLURM cluster could be started here: {reason}")
    conf = re.search(r"export SLURM_CONF=(\S+)", proc.stdout).group(1)
    os.environ["SLURM_CONF"] = conf
    return conf
