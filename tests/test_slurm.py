"""Against a real SLURM (slurm/cluster.sh brings one up on localhost): submit, follow,
requeue, kill, resume, and compare with runs that were never interrupted.

Skipped, with the reason, only when no cluster can be started here (not root, no apt).
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from ablations import manifest as mf
from ablations.grid import expand
from ablations.jobs import jobs_for
from ablations.launchers import LAUNCHERS, LaunchOptions
from ablations.run import main as run_main
from ablations.spec import load_all
from ablations.status import main as status_main
from core.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slurm
FAST = ["epochs=1", "data.train_subset=128", "batch_size=32", "attack.steps=2", "eval.n=32",
        "eval.curve_n=16", "eval.batch_size=32", "pretrain.epochs=2", "pretrain.batch_size=32",
        "pretrain.train_subset=128", "warmup_epochs=0.5", "optim.decay_before_end=[0.5]"]
# the epochs grid (6 and 12 epochs), long enough to be caught mid-training (the 12-epoch
# cell trains for about half a minute), checkpoints every ~2 s
LONG = ["data.train_subset=512", "batch_size=64", "attack.steps=5", "eval.n=64",
        "eval.curve_n=16", "eval.batch_size=64", "model.source=none",
        "checkpoint_minutes=0.03"]


@pytest.fixture(scope="session")
def cluster():
    proc = subprocess.run(["bash", str(ROOT / "slurm" / "cluster.sh"), "up"], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        pytest.skip(f"no SLURM cluster could be started here: {reason}")
    conf = re.search(r"export SLURM_CONF=(\S+)", proc.stdout).group(1)
    os.environ["SLURM_CONF"] = conf
    return conf


def _squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    return set(out.split())


def _wait(predicate, timeout: float, what: str, every: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _launch_debug(cells, runs_dir):
    """The same grid run in this process, never interrupted: the reference numbers."""
    jobs = jobs_for(cells)
    group = mf.Group({"ref": mf.load(runs_dir, "ref", "tiny")}, {})
    out = LAUNCHERS.get("debug")(jobs, group, LaunchOptions(runs_dir=str(runs_dir), threads=1))
    assert not out.failed


def _metrics(runs_dir: Path, run_id: str) -> dict:
    r = RunDir.of(runs_dir, run_id).read_result()
    return {k: r[k] for k in r["metrics"] if k.endswith("_acc")}


def test_grid_on_slurm_moves_to_done_and_matches_a_local_run(cluster, tmp_path, capsys):
    runs = tmp_path / "slurm_runs"
    args = ["gradient_clipping", "--scale", "tiny", "--launcher", "slurm", "--profile", "cpu",
            *FAST, f"runs_dir={runs}"]
    t0 = time.time()
    assert run_main(args) == 0
    assert time.time() - t0 < 60  # it returns at once; SLURM does the work
    seen = set()

    def all_done():
        capsys.readouterr()
        status_main(["gradient_clipping", "--runs-dir", str(runs)])
        text = capsys.readouterr().out
        seen.update(s for s in ("pending", "running", "done") if f" {s} " in text)
        return "done" in text.splitlines()[0] and not re.search(r"pending|running|started",
                                                               text.splitlines()[0])
    _wait(all_done, 600, "the grid to finish", every=1)
    assert {"pending", "done"} <= seen  # watched cells go through the queue
    ref = tmp_path / "local_runs"
    cells = expand(load_all().get("gradient_clipping"), "tiny", 1, [*FAST, f"runs_dir={ref}"])
    _launch_debug(cells, ref)
    for c in cells:
        assert _metrics(runs, c.run_id) == _metrics(ref, c.run_id), c.name
    assert run_main(args) == 0  # nothing left to do: nothing is submitted
    assert "submitted 0, already finished 9" in capsys.readouterr().out


def _submit_long(runs: Path, *extra: str) -> RunDir:
    """Submit the epochs grid; return the run folder of its 12-epoch cell."""
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", "--profile", "cpu",
                     *extra, *LONG, f"runs_dir={runs}"]) == 0
    cells = expand(load_all().get("epochs"), "tiny", 1, [*LONG, f"runs_dir={runs}"])
    return RunDir.of(runs, cells[-1].run_id)


def _job_id(run_dir: RunDir) -> str:
    return mf.load(run_dir.path.parent, "epochs", "tiny")["jobs"][run_dir.name]["job_id"]


def _steps_saved(run_dir: RunDir) -> int:
    import torch

    try:
        return torch.load(run_dir.checkpoint, weights_only=True)["progress"]["step"]
    except Exception:  # not there yet, or being replaced
        return 0


def test_requeued_job_resumes_and_equals_an_uninterrupted_run(cluster, tmp_path):
    runs = tmp_path / "runs"
    run_dir = _submit_long(runs)
    _wait(lambda: _steps_saved(run_dir) >= 20, 300, "the job to be mid-training")
    subprocess.run(["scontrol", "requeue", _job_id(run_dir)], check=True)
    _wait(lambda: run_dir.result.is_file(), 600, "the requeued job to finish")
    log = run_dir.log.read_text()
    assert "interrupted: saved at step" in log and "resumed from step" in log
    ref = tmp_path / "ref"
    cells = expand(load_all().get("epochs"), "tiny", 1, [*LONG, f"runs_dir={ref}"])
    _launch_debug(cells[-1:], ref)
    assert _metrics(runs, run_dir.name) == _metrics(ref, run_dir.name)


def test_hard_killed_job_keeps_its_checkpoint_and_resumes(cluster, tmp_path, capsys):
    runs = tmp_path / "runs"
    run_dir = _submit_long(runs)
    _wait(lambda: _steps_saved(run_dir) >= 20, 300, "the job to be mid-training")
    job = _job_id(run_dir)
    subprocess.run(["scancel", "--signal=KILL", "--full", job], check=True)
    _wait(lambda: job not in _squeue_ids(), 120, "the kill")
    saved = _steps_saved(run_dir)
    assert saved >= 20 and not run_dir.result.exists()
    _wait(lambda: not _squeue_ids(), 300, "the 6-epoch cell to finish")
    capsys.readouterr()
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", "--profile", "cpu",
                     "--wait", *LONG, f"runs_dir={runs}"]) == 0
    assert "submitted 1, already finished 1" in capsys.readouterr().out
    log = run_dir.log.read_text()
    assert f"resumed from step {saved}" in log and run_dir.result.is_file()


def test_failures_are_visible_with_their_log(cluster, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", "--profile", "cpu",
                     "--wait", *FAST, "model.source=none", "data=imagefolder",
                     f"data.root={tmp_path / 'nothing'}", "data.img_size=16",
                     f"runs_dir={runs}"]) == 1
    capsys.readouterr()
    status_main(["epochs", "--runs-dir", str(runs)])
    text = capsys.readouterr().out
    assert "failed" in text and "| core.errors.DataNotFoundError: image folder not found" in text


def test_gpus_on_a_cpu_partition_is_slurms_refusal_in_one_line(cluster, tmp_path, capsys):
    profile = tmp_path / "gpu.yaml"
    profile.write_text("partition: null\ngpus_per_job: 1\ncpus_per_task: 1\nmem_gb: 1\n"
                       "time_min: 5\narray_parallelism: 2\nrequeue: 1\nsignal_delay_s: 30\n")
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", "--profile",
                     str(profile), *FAST, f"runs_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: SLURM refused the submission:")


def test_unreachable_controller_is_one_line(cluster, tmp_path, capsys, monkeypatch):
    conf = Path(cluster).read_text().replace("SlurmctldHost=", "SlurmctldPort=1\nSlurmctldHost=")
    (tmp_path / "slurm.conf").write_text(conf)
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", *FAST,
                     f"runs_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "controller does not answer" in err
