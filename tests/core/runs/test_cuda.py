"""On a GPU, what no CPU can show: a run on CUDA, end to end, resumes to the same numbers, and
AutoAttack's numbers do not depend on the eval batch there either. Skipped, saying so, without
a GPU; `device=cpu` is pinned wherever a test or the tiny scale means the CPU."""
from __future__ import annotations

import pytest
import torch

from core.config.compose import compose
from core.runs.run import resolve_device


def test_the_tiny_scale_means_the_cpu_even_beside_a_gpu(monkeypatch):
    """Its numbers are CPU numbers (README); on a GPU box `device=auto` would have taken CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    tiny = compose(["scale=tiny"])
    assert resolve_device(tiny.device) == torch.device("cpu")
    assert resolve_device(compose(["scale=tiny", "device=cuda"]).device).type == "cuda"
    assert resolve_device(compose(["scale=paper"]).device) == torch.device("cuda", 0)


@pytest.mark.cuda
@pytest.mark.slow
def test_a_tiny_run_on_the_gpu_ends_done_and_reads_back_the_same(fast_cfg):
    from core.runs.run import run

    cfg = fast_cfg("device=cuda", "precision=bf16", "ard=true", "prm=true")
    result = run(cfg)
    assert result["status"] == "done" and result["machine"]["device"].startswith("cuda")
    assert result["peak_memory"]["what"].startswith("CUDA")
    again = run(cfg)
    assert again["pgd20_acc"] == result["pgd20_acc"]


@pytest.mark.cuda
def test_autoattack_on_the_gpu_does_not_depend_on_the_eval_batch(trained_model, test_batch):
    from core.config import EvalCfg
    from core.evaluation import EvalContext, evaluate

    model, _ = trained_model
    model = model.cuda()
    x, y = test_batch[0][:32], test_batch[1][:32]
    got = []
    for batch in (8, 32):
        ctx = EvalContext(eps=8 / 255, seed=0, batch_size=batch, device=torch.device("cuda"),
                          eval=EvalCfg(aa_chunk=16))
        got.append(evaluate(model, x, y, ["aa"], ctx)["aa_acc"])
    assert got[0] == got[1]
