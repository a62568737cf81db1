"""What a scale's jobs ask of SLURM, the one-line refusal and the --wait progress, without a
cluster (sinfo, squeue and the clock are stand-ins here; test_slurm.py uses a real one)."""
from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from ablations.grid.cells import expand
from ablations.launch import launchers as la
from ablations.launch import states as st
from ablations.launch.jobs import jobs_for
from ablations.questions import load_all
from core.config import changed
from core.infra.errors import UserError
from core.infra.rundir import RunDir

TINY_GPU_CLUSTER = "gpu|64|512000|gpu:a100:4(S:0-1)|04:00:00\ncpu*|32|128000|(null)|infinite\n"


def _jobs(scale: str, tmp_path, *overrides: str):
    cells = expand(load_all().get("epochs"), scale, 1, [f"runs_dir={tmp_path}", *overrides])
    return jobs_for(cells)


def test_tiny_jobs_ask_for_one_cpu_and_no_gpu_on_any_profile(tmp_path):
    jobs = _jobs("tiny", tmp_path)
    assert la.launch_profile(jobs, None) == "cpu"
    for name in ("cpu", "default"):
        params = la.job_params(la.profile_params(la.load_profile(name)), jobs[-1].cfg)
        assert (params["gpus_per_node"], params["cpus_per_task"], params["nodes"]) == (0, 1, 1)
    gpu = la.job_params(la.profile_params(la.load_profile("default")), jobs[-1].cfg)
    assert gpu["slurm_partition"] == "gpu"  # the profile's own, the run's needs on top


def test_paper_jobs_keep_the_default_profiles_gpu(tmp_path):
    jobs = _jobs("paper", tmp_path)
    assert la.launch_profile(jobs, None) == "default"
    params = la.job_params(la.profile_params(la.load_profile("default")), jobs[-1].cfg)
    assert (params["gpus_per_node"], params["cpus_per_task"]) == (1, 8)
    two = changed(jobs[-1].cfg, **{"resources.nodes": 2, "resources.gpus_per_node": 4})
    params = la.job_params(la.profile_params(la.load_profile("default")), two)
    assert (params["nodes"], params["gpus_per_node"]) == (2, 4)


def test_explicit_profile_wins_and_disagreeing_runs_are_one_line(tmp_path):
    jobs = _jobs("tiny", tmp_path)
    assert la.launch_profile(jobs, "default") == "default"
    mixed = [*jobs, *_jobs("paper", tmp_path)]
    with pytest.raises(UserError) as e:
        la.launch_profile(mixed, None)
    assert "\n" not in str(e.value) and "cpu (3 runs), default (2 runs)" in str(e.value)
    assert "--profile" in str(e.value)
    assert la.launch_profile(mixed, "cpu") == "cpu"


def _sinfo(monkeypatch, text: str) -> None:
    real = subprocess.run

    def fake(cmd, *args, **kwargs):
        if cmd[0] == "sinfo":
            return subprocess.CompletedProcess(cmd, 0, stdout=text, stderr="")
        return real(cmd, *args, **kwargs)
    monkeypatch.setattr(la.subprocess, "run", fake)


def test_refusal_names_the_request_the_partitions_and_the_fitting_profile(monkeypatch,
                                                                          tmp_path):
    _sinfo(monkeypatch, TINY_GPU_CLUSTER)
    cfg = _jobs("paper", tmp_path)[-1].cfg
    params = la.job_params(la.profile_params(la.load_profile("default")), cfg)
    text = la.refusal("sbatch: error: invalid partition specified: gpu", params, cfg)
    assert "\n" not in text
    assert "asked for 1 GPU per job on partition gpu, 8 CPUs, 64 GB, 720 min" in text
    assert ("the cluster has: gpu (64 CPUs, 512000 MB, 4 GPUs, at most 240 min); "
            "cpu (default, 32 CPUs, 128000 MB, no GPUs, no time limit)") in text
    # default's 720 min exceed the gpu partition's 4 hours; cpu fits the default partition
    assert text.endswith("use --profile cpu or a slurm/profiles/*.yaml that fits "
                         "(resources.gpus_per_node=0 for CPU jobs)")


def test_refusal_without_sinfo_still_says_what_was_asked(monkeypatch, tmp_path):
    def broken(cmd, *args, **kwargs):
        raise FileNotFoundError(cmd[0])
    monkeypatch.setattr(la.subprocess, "run", broken)
    cfg = _jobs("tiny", tmp_path)[-1].cfg
    params = la.job_params(la.profile_params(la.load_profile("cpu")), cfg)
    text = la.refusal("sbatch: error: x", params, cfg)
    assert "asked for no GPU per job on the default partition, 1 CPU, 4 GB, 60 min" in text
    assert "(sinfo did not answer); use --profile with a slurm/profiles/*.yaml" in text


@pytest.mark.parametrize("limit, minutes", [("infinite", None), ("2-00:00:00", 2880),
                                            ("12:00:00", 720), ("30:00", 30), ("n/a", None)])
def test_sinfo_time_limits(limit, minutes):
    assert la._minutes(limit) == minutes


def test_progress_says_thirds_of_the_grid_and_a_heartbeat(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(la.time, "monotonic", lambda: clock[0])
    lines: list[str] = []
    progress = la._Progress(lines.append, 9)
    polls = [(0, 0, 0, 9), (0, 0, 2, 7), (0, 2, 0, 7), (2, 0, 1, 6), (3, 0, 2, 4), (4, 1, 2, 2),
             (5, 1, 1, 2), (6, 1, 2, 0), (7, 1, 1, 0)]
    for done, failed, running, pending in polls:  # a poll every 30 s, counts changing
        clock[0] += 30
        progress.show(Counter(done=done, failed=failed, running=running, pending=pending),
                      final=False)
    clock[0] += 700  # a long time with no finished job: the counts changed, one line
    progress.show(Counter(done=7, failed=1, running=0, pending=1), final=False)
    progress.show(Counter(done=8, failed=1), final=True)
    assert lines == ["waiting: 0 done, 0 running, 9 pending, 0 failed",
                     "waiting: 3 done, 2 running, 4 pending, 0 failed",   # a third finished
                     "waiting: 5 done, 1 running, 2 pending, 1 failed",   # two thirds
                     "waiting: 7 done, 0 running, 1 pending, 1 failed",   # the heartbeat
                     "finished: 8 done, 0 running, 0 pending, 1 failed"]


def test_live_state_trusts_slurm_over_an_old_failure_record(tmp_path):
    run = RunDir.of(tmp_path, "abc")
    run.record_failure("boom", "Traceback ...")  # a failed cell, now submitted again
    assert st.live_state(tmp_path, "abc", "RUNNING") == "running"
    assert st.live_state(tmp_path, "abc", "PENDING") == "pending"
    assert st.live_state(tmp_path, "abc", None) == "failed"      # left the queue, no result
    assert st.live_state(tmp_path, "abc", "CANCELLED by 0") == "failed"
