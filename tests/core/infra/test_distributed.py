"""Cells on several processes (CPU, gloo) through submitit's local executor, the code path of
the local launcher: two ranks with a global batch B end with the parameters one process with
batch B ends with (float summation order aside), and sharded evaluation gives every example
the result it gets unsharded."""
from __future__ import annotations

import functools

import pytest
import submitit
import torch

from ablations.launch.jobs import RunJob
from core.config import changed, run_id, to_dict
from core.infra.distributed import Shard, World, eval_shard, rows
from core.runs.run import run, run_dir_of

TOLERANCE = 1e-5  # largest parameter difference allowed (float32, summation order)


def _two_tasks(fn, folder):
    """Run `fn` in a submitit local job of two tasks; the tasks' return values."""
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the helpers below travel
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="local")
    executor.update_parameters(tasks_per_node=2, timeout_min=10)
    return executor.submit(fn).results()


def test_rows_pair_like_the_global_batch_and_cover_it():
    for total in (8, 12, 6, 7):
        for size in (1, 2, 3):
            parts = rows(total, size)
            assert sorted(p for part in parts for p in part) == list(range(total))
            for part in parts:  # the local flip pairs i with total-1-i, as the global one
                assert all(part[-1 - i] == total - 1 - part[i] for i in range(len(part) // 2))
    assert rows(8, 1) == [list(range(8))]  # one rank: the batch as it is
    drawn = torch.arange(8)
    assert Shard.of(8, World(1, 2)).take(drawn).tolist() == [2, 3, 4, 5]


def test_eval_shards_are_whole_chunks_dealt_round_robin():
    a, b = (eval_shard(10, 3, World(r, 2)).tolist() for r in (0, 1))
    assert a == [0, 1, 2, 6, 7, 8] and b == [3, 4, 5, 9]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["at_ard_prm", "trades", "mart"])
def test_two_ranks_train_the_same_parameters_as_one(fast_cfg, tmp_path, method, capsys):
    over = {"at_ard_prm": ["ard=true", "prm=true", "prm_mask=example"],
            "trades": ["method=trades"], "mart": ["method=mart"]}[method]
    one = fast_cfg(*over, "aug=mixup_cutmix", "epochs=1", "eval=quick", "threads=1")
    two = changed(one, runs_dir=str(tmp_path / "two"), **{"resources.tasks_per_node": 2})
    assert run_id(one) == run_id(two)  # how many ranks is not the experiment
    single = run(one)
    results = _two_tasks(RunJob(to_dict(two), 1), tmp_path / "jobs")
    assert [r["status"] for r in results] == ["done", "done"]
    a = torch.load(run_dir_of(one).weights, weights_only=True)
    b = torch.load(run_dir_of(two).weights, weights_only=True)
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    with capsys.disabled():
        print(f"\n{method}: largest parameter difference, 2 ranks vs 1: {diff:.2e}")
    assert diff < TOLERANCE
    double = run_dir_of(two).read_result()
    assert double["ranks"] == 2 and double["pgd20_acc"] == pytest.approx(single["pgd20_acc"],
                                                                         abs=1 / 48 + 1e-9)


class _ShardedEval:
    """In each task: join the group, evaluate the attacks, return the flags."""

    def __init__(self, weights: str, attacks: list[str]) -> None:
        self.weights, self.attacks = weights, attacks

    def __call__(self) -> dict:
        from core.infra.distributed import init_from_env

        w = init_from_env(cuda=False)  # a CPU evaluation: gloo, even beside a GPU
        model, x, y, ctx = _eval_setup(self.weights)
        return _flags(model, x, y, self.attacks, replace_world(ctx, w))


def replace_world(ctx, w):
    import dataclasses

    return dataclasses.replace(ctx, world=w)


def _eval_setup(weights: str):
    from core.config import ModelCfg
    from core.config.compose import compose
    from core.data import load_splits
    from core.data.images import stack
    from core.evaluation import EvalContext
    from core.models import build_model

    _cheaper_autoattack()
    torch.set_num_threads(1)
    cfg = compose(["scale=tiny", "eval.n_aa=null"])
    model = build_model(ModelCfg(arch="vitadv_vit_micro", source=f"file:{weights}"), 16,
                        10).model.eval()
    splits = load_splits(cfg.data)
    x, y = stack(splits.test, splits.test_order()[:20])
    ctx = EvalContext(eps=2 / 255, seed=0, batch_size=4, device=torch.device("cpu"),
                      eval=cfg.eval)
    return model, x.float() / 255, y, ctx


def _cheaper_autoattack() -> None:
    """FAB-T and Square take minutes on a CPU; the sharding logic is the same."""
    import pyautoattack

    original = pyautoattack.AutoAttack._set_version

    def cheaper(self, version):
        original(self, version)
        self.square.n_queries = 50
        self.fab.n_target_classes = self.apgd_targeted.n_target_classes = 2

    pyautoattack.AutoAttack._set_version = cheaper


def _flags(model, x, y, attacks, ctx) -> dict:
    from core.evaluation.suite import EVAL_ATTACKS, _sharded

    return {a: _sharded(EVAL_ATTACKS.get(a), model, x, y, ctx).tolist() for a in attacks}


@pytest.mark.slow
def test_sharded_evaluation_equals_unsharded_example_by_example(trained_model, tmp_path):
    from core.evaluation import EVAL_ATTACKS

    model, _ = trained_model
    path = tmp_path / "w.pth"
    torch.save(model.net.state_dict(), path)
    attacks = EVAL_ATTACKS.names()
    sharded = _two_tasks(_ShardedEval(str(path), attacks), tmp_path / "jobs")
    model1, x, y, ctx = _eval_setup(str(path))
    unsharded = _flags(model1, x, y, attacks, ctx)
    assert sharded[0] == sharded[1] == unsharded
    assert 0 < sum(unsharded["clean"]) and sum(unsharded["pgd20"]) < sum(unsharded["clean"])


@pytest.mark.slow
def test_a_dead_task_takes_the_job_down_and_the_rerun_resumes(fast_cfg, tmp_path):
    """One rank dies mid-training: the job fails (its other task does not hang), the saved
    checkpoint stays, and running the job again resumes and finishes."""
    cfg = changed(fast_cfg("epochs=3", "checkpoint_minutes=0", "threads=1"),
                  **{"resources.tasks_per_node": 2})
    job = RunJob(to_dict(cfg), 1)
    with pytest.raises(Exception):  # noqa: B017 - submitit's failure, whatever its type
        _two_tasks(_DiesAtStep(job, 5), tmp_path / "jobs")
    state = torch.load(run_dir_of(cfg).checkpoint, weights_only=True)
    assert 0 < state["progress"]["step"] <= 5 and not run_dir_of(cfg).result.exists()
    results = _two_tasks(job, tmp_path / "jobs")
    assert [r["status"] for r in results] == ["done", "done"]
    assert f"resumed from step {state['progress']['step']}" in run_dir_of(cfg).log.read_text()


class _DiesAtStep:
    """The job, with rank 1 exiting at optimizer step `k` (a lost node, an OOM kill)."""

    def __init__(self, job: RunJob, k: int) -> None:
        self.job, self.k = job, k

    def __call__(self):
        import os

        import core.training.step as step
        from core.infra.distributed import world

        original, calls = step.optimizer_step, []

        def dying(*args, **kwargs):
            calls.append(1)
            if len(calls) == self.k and world().rank == 1:
                os._exit(3)
            return original(*args, **kwargs)

        step.optimizer_step = functools.update_wrapper(dying, original)
        return self.job()


@pytest.mark.parametrize("local_rank, visible, expected", [(2, 4, 2), (5, 4, 1), (3, 1, 0)])
def test_each_rank_is_bound_to_its_gpu_before_the_first_collective(monkeypatch, local_rank,
                                                                   visible, expected):
    """Every rank stayed on cuda:0 (NCCL: "Duplicate GPU detected"): CUDA_VISIBLE_DEVICES was
    exported after CUDA had read the device list. Now rank k sets cuda:k (modulo the GPUs it
    sees: one where SLURM binds a GPU per task) before the process group starts, and a
    submitit job exports no CUDA_VISIBLE_DEVICES."""
    import submitit.helpers
    import torch.distributed as dist

    import core.infra.distributed as d
    from core.runs.run import resolve_device

    calls: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: calls.append(torch.device(dev)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(backend))
    monkeypatch.setattr(submitit.helpers.TorchDistributedEnvironment, "__init__",
                        lambda self: None)
    monkeypatch.setattr(submitit.helpers.TorchDistributedEnvironment, "export",
                        lambda self, **kw: calls.append(kw))
    monkeypatch.setattr(d, "_submitit_tasks", lambda: 4)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    d.init_from_env()
    assert calls == [{"set_cuda_visible_devices": False}, torch.device("cuda", expected), "nccl"]
    monkeypatch.setattr("core.runs.run.world", lambda: World(local_rank, 4, local_rank))
    assert resolve_device("auto") == torch.device("cuda", expected)


def test_torchrun_makes_one_run_over_its_ranks(monkeypatch):
    """`torchrun -m core.train` started N independent runs: core.train joins the group."""
    import core.infra.distributed as d
    import core.runs.run as run_module
    from core.train import main

    joined: list = []
    monkeypatch.setattr(d, "init_from_env", lambda **kw: joined.append(kw) or World(1, 2, 1))
    monkeypatch.setattr(run_module, "run", lambda cfg: {"run_id": "x", "status": "done"})
    assert main(["scale=tiny", "model.source=none", "epochs=1"]) == 0
    assert joined == [{"cuda": False}]  # the tiny scale is a CPU run: gloo


def test_a_cpu_run_beside_a_gpu_takes_gloo_and_no_gpu(monkeypatch):
    """The 2-rank tests (device=cpu) on a GPU box asked NCCL for CPU tensors on one GPU."""
    import torch.distributed as dist

    import core.infra.distributed as d

    calls: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: calls.append(dev))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(backend))
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    d.init_from_env(cuda=False)
    assert calls == ["gloo"]
