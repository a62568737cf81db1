"""`python -m core.bench` runs: every figure it prints is produced and finite on the tiny model
(a smoke, so the benchmark cannot die silently again; speed is never asserted here)."""
from __future__ import annotations

import math

import pytest

from core.bench.__main__ import main
from tests.conftest import FAST

FIGURES = ("at_step_vs_bare_loop", "ard_prm_overhead", "at_step_vs_reference",
           "at_ard_prm_step_vs_reference", "trades_step_vs_reference", "train_images_per_s",
           "pgd20_eval_vs_reference", "pgd20_eval_speedup_vs_torchattacks", "pgd20_acc_ours",
           "pgd20_acc_reference", "pgd20_acc_torchattacks", "pgd20_attack_steps_skipped",
           "bf16_vs_fp32_attack_acc_delta")


def _printed(capsys) -> dict[str, str]:
    lines = capsys.readouterr().out.splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


@pytest.mark.slow
def test_every_figure_is_printed_and_finite(tmp_path, capsys):
    shrunk = [o for o in FAST if o not in ("scale=tiny", "eval=quick")]  # the bench sets both
    assert main(["--repeats", "1", *shrunk,
                 f"runs_dir={tmp_path / 'runs'}"]) == 0
    printed = _printed(capsys)
    assert set(FIGURES) <= set(printed), sorted(set(FIGURES) - set(printed))
    values = {k: float(v) for k, v in printed.items() if k not in ("device", "model")}
    assert all(math.isfinite(v) for v in values.values()), values
    # two PGD-20s with one budget on one model (random starts differ): about one accuracy
    assert abs(values["pgd20_acc_ours"] - values["pgd20_acc_reference"]) < 0.05
    assert 0 <= values["pgd20_attack_steps_skipped"] < 1


def test_the_streaming_figures_are_printed(capsys):
    assert main(["--data", "--images", "8"]) == 0
    printed = _printed(capsys)
    assert printed and all(math.isfinite(float(v)) for v in printed.values()), printed


@pytest.mark.parametrize("precision, dtype", [("bf16", "torch.bfloat16"),
                                              ("fp32", "torch.float32")])
def test_the_bare_loop_runs_at_our_steps_precision(precision, dtype):
    """at_step_vs_bare_loop compared our bf16 step with an fp32 bare loop: precisions, not
    engines. The bare loop now runs every forward at the precision it is given."""
    import timm
    import torch

    from core.bench.figures import bare_at_step
    from core.models.normalize import Normalized

    model = Normalized(timm.create_model("vitadv_vit_micro"), [0.5] * 3, [0.5] * 3)
    seen = []
    model.net.head.register_forward_hook(lambda m, i, out: seen.append(str(out.dtype)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    bare_at_step(model, opt, x, y, precision, steps=2)
    assert seen == [dtype] * 3


@pytest.mark.slow
def test_the_acceptance_command_runs_end_to_end_on_a_cpu(tmp_path, capsys):
    """`python -m core.bench --acceptance --device cpu`: the GPU's one prepared command, as a
    smoke of its code path (about 2.5 minutes here; no figure of it is a GPU's)."""
    import json

    out = tmp_path / "acceptance.json"
    assert main(["--acceptance", "--device", "cpu", "--repeats", "1", "--out", str(out),
                 f"runs_dir={tmp_path / 'runs'}", "epochs=1", "eval.n=32"]) == 0
    record = json.loads(out.read_text())
    sections = ("step", "compile", "eval", "cuda_tests", "preflight")
    assert {s: record[s].get("error") for s in sections} == dict.fromkeys(sections)
    assert record["step"]["at_step_vs_bare_loop"] > 0
    assert record["compile"]["on"]["graphs"] >= 1 and record["compile"]["off"]["graphs"] == 0
    assert record["eval"]["pgd20_images_per_s_fp32"] > 0
    assert record["cuda_tests"]["exit_code"] == 0 and "skipped" in record["cuda_tests"]["summary"]
    assert record["preflight"]["exit_code"] == 0
    assert any(ln.startswith("total: 8 runs, 8 ok") for ln in record["preflight"]["lines"])


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is here")
@pytest.mark.parametrize("flags", [[], ["--acceptance"]])
def test_a_missing_gpu_is_one_line_before_any_work(flags, capsys, tmp_path):
    """`--device cuda` without a GPU ended in CUDA's driver traceback."""
    assert main(["--device", "cuda", *flags, "--out", str(tmp_path / "a.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no CUDA GPU is visible here" in err
    assert not (tmp_path / "a.json").exists()
