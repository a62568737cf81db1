"""The command-line entries agree: one spelling of the runs folder, help that shows defaults
and answers without importing torch, GPU-hours priced per precision on a named GPU."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ablations.run import parse
from core.runs.gpus import GPUS, gpu_named

ENTRIES = ["ablations.run", "ablations.status", "ablations.report", "ablations.export",
           "core.train", "core.evaluate"]


@pytest.mark.parametrize("entry", ENTRIES)
def test_help_answers_without_importing_torch(entry):
    """torch takes seconds to import; --help must not wait for it (a time would be a flaky
    assert, the import is the cause)."""
    code = (f"import runpy, sys; sys.argv = ['{entry}', '--help']\n"
            f"try:\n    runpy.run_module('{entry}', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith("False") and f"python -m {entry}" in out


def test_run_help_shows_defaults_and_every_launcher(capsys):
    from ablations.launch.launchers import LAUNCHERS

    with pytest.raises(SystemExit):
        parse(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: paper)" in text and "(default: local)" in text
    assert "(default: h100)" in text and "(default: 0.28)" in text
    assert all(name in text for name in LAUNCHERS.names())  # the help names each launcher


def test_the_runs_folder_is_spelt_runs_dir_flag(capsys):
    args = parse(["warmup", "--runs-dir", "/x/runs", "epochs=1"])
    assert args.overrides == ["epochs=1", "runs_dir=/x/runs"]
    with pytest.raises(SystemExit) as e:
        parse(["warmup", "runs_dir=/x/runs"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "--runs-dir DIR" in err


def test_unknown_launcher_is_one_line_before_any_work(tmp_path, capsys):
    from ablations.run import main

    assert main(["warmup", "--scale", "tiny", "--launcher", "nosuch",
                 "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown launcher 'nosuch'" in err and "slurm" in err
    assert list(tmp_path.iterdir()) == []


def test_gpu_hours_price_training_and_evaluation_at_their_own_precision():
    from core.config.compose import compose
    from core.runs.cost import gpu_seconds, job_flops_parts

    cfg = compose(["scale=tiny", "precision=bf16"])
    train, evaluation = job_flops_parts(cfg)
    t, e = gpu_seconds(cfg, "a100", 0.5)
    assert t == pytest.approx(train / (312e12 * 0.5))        # bf16 peak
    assert e == pytest.approx(evaluation / (19.5e12 * 0.5))  # FP32 peak: 16x slower
    t32, e32 = gpu_seconds(compose(["scale=tiny", "precision=fp32"]), "a100", 0.5)
    assert t32 == pytest.approx(t * 312 / 19.5) and e32 == pytest.approx(e)


def test_cuda_device_names_map_to_their_datasheet():
    assert gpu_named("NVIDIA H100 80GB HBM3") == ("h100", True)
    assert gpu_named("NVIDIA H100 PCIe") == ("h100-pcie", True)
    assert gpu_named("NVIDIA A100-SXM4-80GB") == ("a100", True)
    assert gpu_named("Tesla V100-SXM2-32GB") == ("h100", False)  # priced as the default, said
    assert all(set(g.tflops) == {"bf16", "tf32", "fp32"} for g in GPUS.values())
