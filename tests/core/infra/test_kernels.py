"""The CPU kernel pin (core.infra.kernels): fp32 runs pinned to AVX2, a bf16 run on a CPU on the
CPU's own kernels, what the user set kept, jobs inheriting the pin as vitadv's."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FAST

VARS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "VITADV_CPU_KERNELS",
        "VITADV_PINNED")
SHOW = ("import json, os, torch; print(json.dumps({'env': {k: os.environ.get(k) for k in "
        f"{VARS!r}}}, 'capability': torch.backends.cpu.get_cpu_capability()}}))")

PIN = "from core.infra.kernels import pin; pin()\n"  # as a run's entry point does


def _child(code: str, **env: str) -> dict:
    """What a fresh process reports after `code`, started with none of VARS but `env`."""
    base = {k: v for k, v in os.environ.items() if k not in VARS}
    out = subprocess.run([sys.executable, "-c", f"{code}\n{SHOW}"], env={**base, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_fp32_is_pinned_and_bf16_on_a_cpu_gets_the_cpus_own_kernels():
    native = _child(PIN, VITADV_CPU_KERNELS="native")
    fp32 = _child(PIN + "from core.infra.kernels import for_run; for_run('fp32', 'cpu')")
    bf16 = _child(PIN + "from core.infra.kernels import for_run; for_run('bf16', 'cpu')")
    on_gpu = _child(PIN + "from core.infra.kernels import for_run; for_run('bf16', 'cuda')")
    assert fp32["capability"] == "AVX2" and fp32["env"]["MKL_CBWR"] == "AVX2"
    assert on_gpu["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert bf16["capability"] == native["capability"]
    assert not any(bf16["env"][k] for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR",
                                            "ONEDNN_MAX_CPU_ISA"))


@pytest.mark.slow
def test_what_the_user_set_stays_and_pinned_keeps_bf16_pinned():
    user = _child(PIN + "from core.infra.kernels import for_run; for_run('bf16', 'cpu')",
                  ONEDNN_MAX_CPU_ISA="AVX2")
    assert user["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and user["env"]["MKL_CBWR"] is None
    pinned = _child(PIN + "from core.infra.kernels import for_run; for_run('bf16', 'cpu')",
                    VITADV_CPU_KERNELS="pinned")
    assert pinned["capability"] == "AVX2" and pinned["env"]["MKL_CBWR"] == "AVX2"


@pytest.mark.slow
def test_a_job_lifts_the_pin_its_parent_set():
    """A launcher's job inherits the parent's pinned variables; they are still vitadv's."""
    parent = _child(PIN)["env"]
    inherited = {k: v for k, v in parent.items() if v is not None}
    assert set(inherited["VITADV_PINNED"].split(",")) == {"ATEN_CPU_CAPABILITY", "MKL_CBWR",
                                                          "ONEDNN_MAX_CPU_ISA"}
    job = _child(PIN + "from core.infra.kernels import for_run; for_run('bf16', 'cpu')",
                 **inherited)
    assert job["env"]["ATEN_CPU_CAPABILITY"] is None and job["env"]["MKL_CBWR"] is None


@pytest.mark.slow
def test_a_bf16_run_records_the_cpus_own_kernels_and_an_fp32_run_the_pin(tmp_path):
    kinds = {}
    for precision in ("fp32", "bf16"):
        runs = tmp_path / precision
        subprocess.run([sys.executable, "-m", "core.train", *FAST, "epochs=1", "eval.n=16",
                        f"precision={precision}", f"runs_dir={runs}"], check=True,
                       capture_output=True, env={k: v for k, v in os.environ.items()
                                                 if k not in VARS})
        result = json.loads(next(runs.glob("*/result.json")).read_text())
        kinds[precision] = result["machine"]
    assert kinds["fp32"]["cpu_capability"] == "AVX2" and "native" not in kinds["fp32"]["kind"]
    assert "native MKL/oneDNN" in kinds["bf16"]["kind"]
    assert kinds["bf16"]["cpu_kernels"]["MKL_CBWR"] is None
