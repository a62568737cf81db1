"""The CUDA paths on every CI run, without a GPU (tests/virtual_cuda.py): the real run() with
device=cuda under virtual CUDA, each path a GPU would take, with no device error and few host
syncs."""
from __future__ import annotations

import pytest
import torch

from tests.virtual_cuda import device_of, virtual_cuda


def test_the_harness_raises_what_a_gpu_raises(monkeypatch):
    with virtual_cuda(monkeypatch):
        a = torch.ones(3, device="cuda")
        b = torch.ones(3)
        assert a.device == torch.device("cuda", 0) and a.is_cuda and not b.is_cuda
        with pytest.raises(RuntimeError, match="same device"):
            a + b
        assert (a + torch.tensor(2.0)).device.type == "cuda"  # a CPU scalar is fine
        with pytest.raises(RuntimeError, match="indices should be"):
            b[torch.tensor([0, 1], device="cuda")]
        assert a[torch.tensor([0, 1])].is_cuda
        with pytest.raises(RuntimeError, match="generator"):
            torch.rand(3, device="cuda", generator=torch.Generator().manual_seed(0))
        assert torch.rand(3, device="cuda", generator=torch.Generator("cuda")).is_cuda
        with pytest.raises(TypeError, match="numpy"):
            a.numpy()
        assert device_of(a.cpu()) == torch.device("cpu") and a.to("cuda:3").device.index == 3
        net = torch.nn.Linear(3, 2).cuda()
        assert net.weight.is_cuda and net(a).is_cuda
        net(a).sum().backward()
        assert net.weight.grad.is_cuda


def _host_syncs_are_few(vc, result) -> None:
    """At most one host sync per optimizer step (the finiteness check) and none inside the
    training attack."""
    training = [x for x in vc.syncs if x.within("core/training/step.py")]
    assert len(training) <= result["steps"], "\n".join(map(str, training))
    assert not [x for x in training if x.within("core/attacks/")]


@pytest.mark.slow
@pytest.mark.parametrize("setting", [
    ("method=at", "ard=true", "prm=true", "precision=bf16", "ema.enabled=true"),
    ("method=trades",), ("method=mart",)], ids=["at-ard-prm-bf16-ema", "trades", "mart"])
def test_a_run_on_cuda_takes_every_gpu_path_without_a_device_error(fast_cfg, monkeypatch,
                                                                  setting):
    from core.runs.run import run

    with virtual_cuda(monkeypatch) as vc:
        result = run(fast_cfg("device=cuda", *setting))
    assert result["status"] == "done" and result["machine"]["device"] == "cuda"
    assert result["peak_memory"]["what"] == "CUDA allocated"
    _host_syncs_are_few(vc, result)


@pytest.mark.slow
def test_a_streamed_data_set_through_the_dataloader_on_cuda(fast_cfg, monkeypatch, tmp_path):
    """ImageFolder data goes through the DataLoader's workers and pinned memory."""
    from core.offline.standin import write_image_folder
    from core.runs.run import run

    root = write_image_folder(tmp_path / "folder", ["a", "b", "c"], {"train": 12, "val": 4},
                              size=(20, 20))
    cfg = fast_cfg("device=cuda", "data=imagefolder", f"data.root={root}", "data.img_size=16",
                   "data.train_subset=null", "batch_size=8", "eval.n=null")
    with virtual_cuda(monkeypatch) as vc:
        result = run(cfg)
    assert result["status"] == "done" and result["num_classes"] == 3
    _host_syncs_are_few(vc, result)


@pytest.mark.slow
def test_a_killed_run_on_cuda_resumes_to_the_uninterrupted_numbers(fast_cfg, monkeypatch):
    from core.runs.run import run
    from tests.conftest import interrupted_at

    with virtual_cuda(monkeypatch):
        whole = run(fast_cfg("device=cuda", "runs_dir=" + str(fast_cfg().runs_dir) + "/a"))
        cfg = fast_cfg("device=cuda", "runs_dir=" + str(fast_cfg().runs_dir) + "/b")
        with interrupted_at(monkeypatch, 5), pytest.raises(KeyboardInterrupt):
            run(cfg)
        resumed = run(cfg)
    assert resumed["pgd20_acc"] == whole["pgd20_acc"]
    assert resumed["clean_acc"] == whole["clean_acc"]


@pytest.mark.slow
def test_the_full_evaluation_with_autoattack_and_an_extension_on_cuda(fast_cfg, monkeypatch):
    from core.runs.run import run

    with virtual_cuda(monkeypatch):
        first = run(fast_cfg("device=cuda", "eval.attacks=[clean,pgd20]", "eval.n=16"))
        extended = run(fast_cfg("device=cuda", "eval.attacks=[clean,pgd20,cw20,aa]",
                                "eval.n=16"))
    assert first["run_id"] == extended["run_id"]
    assert extended["aa_acc"] <= extended["pgd20_acc"] + 1e-9


@pytest.mark.slow
def test_the_bench_on_cuda(monkeypatch, tmp_path, capsys):
    """`python -m core.bench --device cuda` died on its bare model's CPU buffers."""
    from core.bench.__main__ import main
    from tests.conftest import FAST

    shrunk = [o for o in FAST if o not in ("scale=tiny", "eval=quick")]
    with virtual_cuda(monkeypatch):
        assert main(["--device", "cuda", "--repeats", "1", *shrunk,
                     f"runs_dir={tmp_path / 'runs'}"]) == 0
    assert "at_step_vs_bare_loop" in capsys.readouterr().out


def test_rank_k_computes_on_cuda_k(monkeypatch):
    """Under torchrun or a multi-task job, rank 3 of a node puts what it makes on cuda:3."""
    import torch.distributed as dist

    from core.infra.distributed import World, init_from_env
    from core.runs.run import resolve_device

    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: None)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    with virtual_cuda(monkeypatch):
        init_from_env()
        assert torch.zeros(2, device="cuda").device == torch.device("cuda", 3)
        monkeypatch.setattr("core.runs.run.world", lambda: World(3, 4, 3))
        assert resolve_device("auto") == torch.device("cuda", 3)
        assert torch.nn.Linear(2, 2).to(resolve_device("auto")).weight.device.index == 3
