"""``benchmarks/gpu.sh``: the GPU readiness run, checked on the CPU with ``--dry-run``.

The dry run is the real script (reference, ONNX export, every variant, parity, report) on
a tiny random Llama and 4 HH pairs; only the device and the model differ from the GPU run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flame_reward.data import shared_data_dir
from flame_reward.errors import DataError

ROOT = Path(__file__).resolve().parents[1]

try:
    DATA: Path | None = shared_data_dir()
except DataError:
    DATA = None

pytestmark = pytest.mark.skipif(DATA is None, reason="shared data folder not found (set FLAME_REWARD_DATA)")


def _run(*args, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), *args, "--out", str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)


def test_gpu_script_dry_run(tmp_path):
    proc = _run("--dry-run", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "gpu-dry-run.json").read_text())
    assert result["dry_run"] and result["pairs"] == 4 and not result["skipped"]
    rows = {r["variant"]: r for r in result["variants"]}
    assert list(rows) == ["torch CPU fp32", "torch CPU fp32 + prefix sharing", "torch CPU bf16",
                          "torch CPU bf16 + prefix sharing", "ORT CPU EP fp32", "ORT CPU EP fp32 + prefix sharing"]
    for name, row in rows.items():
        assert row["judgments_per_s"] > 0
        # fp32 equals the CPU fp32 reference (measured <= 3.1e-07); bf16 drifts (measured 0.016).
        assert row["max_abs_dP_vs_cpu_fp32"] < (1e-4 if "fp32" in name else 0.1), name
    assert rows["ORT CPU EP fp32 + prefix sharing"]["providers"] == ["CPUExecutionProvider"]
    assert "DRY RUN" in (tmp_path / "gpu-dry-run.md").read_text()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine runs the real thing")
def test_gpu_script_without_a_gpu_says_so(tmp_path):
    proc = _run(tmp_path=tmp_path)
    assert proc.returncode == 2 and "no NVIDIA GPU" in proc.stderr and "--dry-run" in proc.stderr
