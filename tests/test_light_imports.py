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


def test_the_front_door_loads_no_torch_until_a_model_name_is_used():
    light = ("import flame_reward as fr\n"
             "fr.TaskType, fr.Field, fr.criteria_line, fr.hookimpl, fr.Verdict, fr.ItemError, fr.InvalidInput\n")
    assert "torch" not in loaded_after(light)
    # The lazy names are real: the judge itself does bring torch in.
    assert "torch" in loaded_after(light + "fr.Autorater\n")


def test_the_front_door_exposes_its_documented_api():
    import flame_reward
    from flame_reward.autorater import Autorater
    from flame_reward.sidecar.client import RewardClient
    from flame_reward.tasks.base import TaskType, criteria_line
    from flame_reward.trl import flame_group_reward, flame_pointwise_reward, flame_reference_reward

    assert flame_reward.Autorater is Autorater and flame_reward.RewardClient is RewardClient
    assert flame_reward.TaskType is TaskType and flame_reward.criteria_line is criteria_line
    assert (flame_reward.flame_pointwise_reward, flame_reward.flame_reference_reward, flame_reward.flame_group_reward) \
        == (flame_pointwise_reward, flame_reference_reward, flame_group_reward)
    for name in flame_reward.__all__:
        assert getattr(flame_reward, name) is not None, name
    assert set(flame_reward.__all__) <= set(dir(flame_reward))
    assert len(flame_reward.__all__) == len(set(flame_reward.__all__))
    try:
        flame_reward.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_scoring_exports_only_its_own_names():
    from flame_reward import scoring

    assert sorted(scoring.__all__) == ["Cost", "OnError", "Scorer"]
    assert all(getattr(scoring, name).__module__ in ("flame_reward.scoring", "typing") for name in scoring.__all__
               if name != "OnError")
