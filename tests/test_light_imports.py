"""What importing a module loads: the light modules must not pull in torch (or onnx).

Each check runs in a fresh interpreter, since this test process has long imported torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loaded_after(code: str) -> set[str]:
    """Top-level package names in ``sys.modules`` after running ``code`` in a new interpreter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    script = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_checking_an_onnx_directory_loads_neither_torch_nor_onnx():
    loaded = loaded_after("import flame_reward.models.onnx_format")
    assert "flame_reward" in loaded
    assert not loaded & {"torch", "onnx", "onnxruntime", "transformers"}
