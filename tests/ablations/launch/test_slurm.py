"""Against a real SLURM (slurm/cluster.sh brings one up on localhost): submit, follow,
requeue, kill, resume, and compare with runs that were never interrupted.

Skipped, with the reason, only when no cluster can be started here (not root, no apt).
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ablations.grid import manifest as mf
from ablations.grid.cells import expand
from ablations.launch.jobs import jobs_for
from ablations.launch.launchers import LAUNCHERS, LaunchOptions
from ablations.questions import load_all
from ablations.run import main as run_main
from ablations.status import main as status_main
from core.infra.rundir import RunDir

pytestmark = pytest.mark.slurm
FAST = ["epochs=1", "data.train_subset=128", "batch_size=32", "attack.steps=2", "eval.n=32",
        "eval.curve_n=16", "eval.batch_size=32", "pretrain.epochs=2", "pretrain.batch_size=32",
        "pretrain.train_subset=128", "warmup_epochs=0.5", "optim.decay_before_end=[0.5]"]
# the epochs grid (40 and 80 epochs at tiny scale; 2 steps an epoch here), long enough to be
# caught mid-training (the 80-epoch cell trains for about a minute), checkpoints every ~2 s
LONG = ["data.train_subset=128", "batch_size=64", "attack.steps=5", "eval.n=64",
        "eval.curve_n=16", "eval.batch_size=64", "model.source=none",
        "checkpoint_minutes=0.03"]


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


def test_grid_on_slurm_moves_to_done_and_matches_a_local_run(cluster, tmp_path, capfd):
    """The issue's command, as a new user types it (no --profile): the tiny scale's jobs ask
    for one CPU and no GPU, and --wait prints a few progress lines, not SLURM's warnings."""
    runs = tmp_path / "slurm_runs"
    args = ["gradient_clipping", "--scale", "tiny", "--launcher", "slurm", "--wait", *FAST,
            "--runs-dir", str(runs)]
    assert run_main(args) == 0
    out, err = capfd.readouterr()  # fd level: what squeue/sacct/sbatch print lands here too
    lines = out.strip().splitlines()
    waiting = lines[1:-1]  # between "gradient_clipping (tiny, ran with ...): ..." and "submitted"
    assert "accounting storage is disabled" not in out + err and err.strip() == ""
    assert len(waiting) <= 5, waiting
    assert waiting[0].startswith("SLURM keeps no accounting here")
    assert " pending" in waiting[1] and waiting[-1].startswith("finished: 9 done, 0 running")
    assert lines[-1].startswith("submitted 9, already finished 0, failed 0")
    scripts = "".join(p.read_text() for p in runs.glob("_submitit/*/*_submission.sh"))
    assert scripts.count("--gpus-per-node=0") == scripts.count("--cpus-per-task=1") == 2
    assert "--gpus-per-node=1" not in scripts and "--partition" not in scripts
    status_main(["gradient_clipping", "--runs-dir", str(runs)])
    shrunk = " ".join(o for o in FAST if not o.startswith("eval.batch_size="))  # runtime: not
    assert capfd.readouterr().out.splitlines()[0] == (  # a shrunk grid is labelled as one
        f"gradient_clipping (tiny, ran with {shrunk}): 9 done")
    ref = tmp_path / "local_runs"
    cells = expand(load_all().get("gradient_clipping"), "tiny", 1, [*FAST, f"runs_dir={ref}"])
    _launch_debug(cells, ref)
    for c in cells:
        assert _metrics(runs, c.run_id) == _metrics(ref, c.run_id), c.name
    assert run_main(args) == 0  # nothing left to do: nothing is submitted
    assert "submitted 0, already finished 9" in capfd.readouterr().out


def _submit_long(runs: Path, *extra: str) -> RunDir:
    """Submit the epochs grid; return the run folder of its 80-epoch cell."""
    t0 = time.time()
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", *extra, *LONG,
                     "--runs-dir", str(runs)]) == 0
    assert time.time() - t0 < 60  # without --wait it returns at once; SLURM does the work
    cells = expand(load_all().get("epochs"), "tiny", 1, [*LONG, f"runs_dir={runs}"])
    return RunDir.of(runs, cells[-1].run_id)


def _job_id(run_dir: RunDir) -> str:
    """From the grid's record (a grid launched with overrides, LONG's, has one of its own)."""
    records = mf.all_manifests(run_dir.path.parent)
    return next(m["jobs"][run_dir.name]["job_id"] for m in records if run_dir.name in m["jobs"])


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
    _wait(lambda: not _squeue_ids(), 300, "the 40-epoch cell to finish")
    capsys.readouterr()
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", "--wait", *LONG,
                     "--runs-dir", str(runs)]) == 0
    assert "submitted 1, already finished 1" in capsys.readouterr().out
    log = run_dir.log.read_text()
    assert f"resumed from step {saved}" in log and run_dir.result.is_file()


def test_failures_are_visible_with_their_log(cluster, tmp_path, capsys):
    """A missing data set is refused before anything is submitted; a run that fails in its
    job (here a checkpoint that cannot be read) is failed in the status, with its log."""
    runs = tmp_path / "runs"
    args = ["epochs", "--scale", "tiny", "--launcher", "slurm", "--wait", *FAST,
            "model.source=none", "--runs-dir", str(runs)]
    assert run_main([*args, "data=imagefolder", f"data.root={tmp_path / 'nothing'}",
                     "data.img_size=16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "image folder not found" in err
    assert not runs.exists() or not any(runs.glob("*/result.json"))
    cells = expand(load_all().get("epochs"), "tiny", 1, [*FAST, "model.source=none",
                                                         f"runs_dir={runs}"])
    RunDir.of(runs, cells[0].run_id).mkdir().checkpoint.write_bytes(b"not a checkpoint")
    assert run_main(args) == 1
    capsys.readouterr()
    status_main(["epochs", "--runs-dir", str(runs)])
    text = capsys.readouterr().out
    assert "failed" in text and "| core.infra.errors.CheckpointError: checkpoint" in text


GPU_PROFILE = ("partition: null\ngpus_per_job: 1\ncpus_per_task: 1\nmem_gb: 1\ntime_min: 5\n"
               "array_parallelism: 2\nrequeue: 1\nsignal_delay_s: 30\n")


@pytest.mark.parametrize("asked, fix", [
    # a profile's GPU (the scale's gpus_per_node=0 lifted, so the profile's counts)
    (["--profile", "{gpu_yaml}", "resources.gpus_per_node=null"], "use --profile cpu "),
    # the paper's default profile: a GPU on partition gpu; --profile wins over the scale's
    (["--profile", "default", "resources.gpus_per_node=null"], "use --profile cpu "),
    # the run's own request, which no profile can meet here
    (["resources.gpus_per_node=1"], "resources.gpus_per_node=0 for CPU jobs, or use --profile"),
])
def test_gpus_on_a_cpu_partition_is_slurms_refusal_in_one_line(cluster, tmp_path, capsys,
                                                                asked, fix):
    (tmp_path / "gpu.yaml").write_text(GPU_PROFILE)
    asked = [a.format(gpu_yaml=tmp_path / "gpu.yaml") for a in asked]
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", *asked, *FAST,
                     "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: SLURM refused the submission (")
    partition, cpus = subprocess.run(["sinfo", "-h", "-o", "%P %c"], capture_output=True,
                                     text=True).stdout.split()[:2]
    assert "asked for 1 GPU per job" in err and fix in err, err
    assert f"the cluster has: {partition.rstrip('*')} (default, {cpus} CPUs" in err, err
    assert "no GPUs" in err and mf.load(tmp_path, "epochs", "tiny")["jobs"] == {}


def test_unreachable_controller_is_one_line(cluster, tmp_path, capsys, monkeypatch):
    conf = Path(cluster).read_text().replace("SlurmctldHost=", "SlurmctldPort=1\nSlurmctldHost=")
    (tmp_path / "slurm.conf").write_text(conf)
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", *FAST,
                     "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "controller does not answer" in err


# Cells on two processes (CPU, gloo) on the local cluster: one task per rank, one CPU each.
TWO = ["resources.tasks_per_node=2", "threads=1"]


def _epochs_cells(runs: Path, *extra: str):
    return expand(load_all().get("epochs"), "tiny", 1, [*LONG, *extra, f"runs_dir={runs}"])


def test_a_grid_of_two_task_runs_finishes_and_matches_one_process(cluster, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", "--wait", *LONG, *TWO,
                     "epochs=2", "--runs-dir", str(runs)]) == 0
    ref = tmp_path / "ref"
    cells = _epochs_cells(ref, "epochs=2")
    _launch_debug(cells, ref)
    for c in cells:
        two, one = _metrics(runs, c.run_id), _metrics(ref, c.run_id)
        assert RunDir.of(runs, c.run_id).read_result()["ranks"] == 2
        assert all(abs(two[k] - one[k]) <= 1 / 64 for k in one), (two, one)  # float order


def test_a_requeued_two_task_run_resumes_and_equals_an_uninterrupted_one(cluster, tmp_path):
    runs = tmp_path / "runs"
    run_dir = _submit_long(runs, *TWO)
    _wait(lambda: _steps_saved(run_dir) >= 20, 300, "the 2-task job to be mid-training")
    subprocess.run(["scontrol", "requeue", _job_id(run_dir)], check=True)
    _wait(lambda: run_dir.result.is_file(), 600, "the requeued job to finish")
    assert "resumed from step" in run_dir.log.read_text()
    ref = tmp_path / "ref"
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", "--wait", *LONG, *TWO,
                     "--runs-dir", str(ref)]) == 0
    assert _metrics(runs, run_dir.name) == _metrics(ref, run_dir.name)


def test_a_dead_task_fails_its_job_and_the_rerun_resumes(cluster, tmp_path, capsys):
    """Rank 1 of a 2-task job exits mid-training: SLURM ends the job (srun kills the other
    task), the grid reports it failed, and launching again resumes from its checkpoint."""
    import sys

    import cloudpickle

    from ablations.launch.jobs import job_callable
    from tests.core.infra.test_distributed import _DiesAtStep

    cloudpickle.register_pickle_by_value(sys.modules[_DiesAtStep.__module__])  # jobs get it
    runs = tmp_path / "runs"
    cells = _epochs_cells(runs, *TWO)[-1:]
    jobs = jobs_for(cells)
    m = mf.load(runs, "epochs", "tiny")
    mf.record_cells(m, cells)
    group = mf.Group({"epochs": m}, {j.run_id: {"epochs"} for j in jobs})
    opts = LaunchOptions(runs_dir=str(runs), wait=True, on_event=lambda line: None,
                         make_job=lambda j, t: _DiesAtStep(job_callable(j, t), 25))
    out = LAUNCHERS.get("slurm")(jobs, group, opts)
    assert out.failed == [cells[0].run_id]
    run_dir = RunDir.of(runs, cells[0].run_id)
    saved = _steps_saved(run_dir)
    assert saved >= 20 and not run_dir.result.exists()
    capsys.readouterr()
    assert run_main(["epochs", "--scale", "tiny", "--launcher", "slurm", "--wait", *LONG, *TWO,
                     "--runs-dir", str(runs)]) == 0
    assert f"resumed from step {saved}" in run_dir.log.read_text()
