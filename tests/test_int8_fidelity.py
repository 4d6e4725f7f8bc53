"""``benchmarks/int8_fidelity.py``: the selection of what int8 keeps fp32, and its measures.

The selection rule and the fidelity measures run on synthetic numbers; the candidate
settings are checked against the embedded default's module paths; the outlier ranking and
the re-quantised copy run on the tiny random Llama (seconds).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from flame_reward.models.onnx_export import keeps_fp32
from flame_reward.results import Verdict

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("int8_fidelity", ROOT / "benchmarks" / "int8_fidelity.py")
fid = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fid)

#: The embedded default's decoder: 30 layers of q, k, v, o, gate, up, down (SmolLM2-135M shapes).
SHAPES = {"self_attn.q_proj": 576 * 576, "self_attn.k_proj": 576 * 192, "self_attn.v_proj": 576 * 192,
          "self_attn.o_proj": 576 * 576, "mlp.gate_proj": 576 * 1536, "mlp.up_proj": 576 * 1536,
          "mlp.down_proj": 1536 * 576}
WEIGHTS = {f"model.layers.{i}.{k}": n for i in range(30) for k, n in SHAPES.items()}


def _row(name, same, dp, kept):
    return {"candidate": name, "same_label": same, "mean_abs_dp": dp, "kept_fraction": kept}


def test_choose_takes_the_cheapest_setting_that_reaches_the_bar():
    rows = [_row("none", 0.80, 0.05, 0.0), _row("down_proj", 0.96, 0.02, 0.33),
            _row("last 2 layers", 0.95, 0.03, 0.067), _row("last 6 layers", 0.99, 0.01, 0.2)]
    got = fid.choose(rows, bar=0.95)
    assert got["candidate"] == "last 2 layers" and got["meets_bar"] is True


def test_choose_without_a_passing_setting_takes_the_most_agreeing():
    rows = [_row("none", 0.60, 0.05, 0.0), _row("a", 0.90, 0.03, 0.3), _row("b", 0.90, 0.02, 0.4),
            _row("c", 0.85, 0.001, 0.01)]
    got = fid.choose(rows, bar=0.95)
    assert got["candidate"] == "b" and got["meets_bar"] is False


def test_choose_ignores_settings_that_keep_most_weights_fp32():
    rows = [_row("none", 0.70, 0.05, 0.0), _row("almost fp32", 1.0, 0.0, 0.9)]
    assert fid.choose(rows, bar=0.95, max_kept=0.5)["candidate"] == "none"
    with pytest.raises(ValueError, match="no candidate"):
        fid.choose([_row("almost fp32", 1.0, 0.0, 0.9)], max_kept=0.5)


def _v(score):
    label = "A" if score > 0.5 else "B" if score < 0.5 else "tie"
    return Verdict(task="pairwise", label=label, score=score, distribution={"A": score, "B": 1 - score})


def test_compare_measures_agreement_accuracy_and_dp():
    ref = [_v(0.9), _v(0.2), _v(0.6), _v(0.5)]
    got = [_v(0.8), _v(0.3), _v(0.4), _v(0.5)]
    stats = fid.compare(ref, got, ["A", "B", "A", "A"])
    assert stats["same_label"] == pytest.approx(0.75)
    assert stats["mean_abs_dp"] == pytest.approx((0.1 + 0.1 + 0.2 + 0.0) / 4)
    assert stats["max_abs_dp"] == pytest.approx(0.2)
    assert stats["accuracy_fp32"] == pytest.approx(3.5 / 4)  # an exact 0.5 earns half a point
    assert stats["accuracy"] == pytest.approx(2.5 / 4)
    assert stats["accuracy_delta"] == pytest.approx(-0.25)
    assert not fid.meets_bar(stats)
    assert fid.meets_bar({**stats, "same_label": 0.95, "accuracy_delta": -0.01})
    assert not fid.meets_bar({**stats, "same_label": 0.95, "accuracy_delta": 0.02})
    with pytest.raises(ValueError):
        fid.compare(ref, got[:3], ["A"] * 4)


def test_candidates_select_the_layers_they_name():
    ranked = [f"model.layers.{i}.mlp.down_proj" for i in (1, 3, 5)]
    cands = fid.candidates(30, ranked)
    assert len(cands) <= 8 and cands["none"] == ()

    def kept(name):
        return {m for m in WEIGHTS if keeps_fp32(m, cands[name])}

    assert kept("none") == set()
    assert kept("down_proj") == {f"model.layers.{i}.mlp.down_proj" for i in range(30)}
    assert kept("last 2 layers") == {m for m in WEIGHTS if m.split(".")[2] in ("28", "29")}
    assert {m.split(".")[2] for m in kept("last 6 layers")} == {str(i) for i in range(24, 30)}
    assert kept("mlp of last 8 layers") == {m for m in WEIGHTS if ".mlp." in m and int(m.split(".")[2]) >= 22}
    assert {m.split(".")[2] for m in kept("first 2 + last 2 layers")} == {"0", "1", "28", "29"}
    assert kept("8 worst-outlier linears") == set(ranked)
    assert fid.kept_fraction(WEIGHTS, cands["last 2 layers"]) == pytest.approx(2 / 30)
    assert fid.kept_fraction(WEIGHTS, cands["down_proj"]) == pytest.approx(SHAPES["mlp.down_proj"] / sum(SHAPES.values()))
    assert "8 worst-outlier linears" not in fid.candidates(30)


def test_outlier_ranking_covers_every_linear_layer(tiny_judge):
    examples = [{"prompt": "What is 2+2?", "response_a": "4", "response_b": "5, surely"},
                {"prompt": "Name a colour.", "response_a": "Blue.", "response_b": "A fish."}]
    model = tiny_judge.scorer.backend.model
    ranked = fid.outlier_ranking(tiny_judge, "pairwise", examples)
    assert {name for name, _ in ranked} == set(fid.linear_weights(model))
    assert "lm_head" not in {name for name, _ in ranked}
    ratios = [r for _, r in ranked]
    assert ratios == sorted(ratios, reverse=True) and min(ratios) >= 1.0  # max |x| >= rms(x)
    # The hooks are gone: judging again leaves the counts as they were.
    assert not any(m._forward_pre_hooks for m in model.modules() if m is not model)


def test_int8_copy_requantises_without_touching_the_source(tokenizer, tmp_path):
    from flame_reward.models.onnx_export import export_loaded, int8_copy
    from tests.conftest import make_tiny_loaded

    src = export_loaded(make_tiny_loaded(tokenizer, seed=1, initializer_range=0.5), tmp_path / "src",
                        quantize="int8", verify=False, fuse=False)
    before = (src / "model.int8.onnx").read_bytes(), (src / "manifest.json").read_text()
    dst = int8_copy(src, tmp_path / "copy", ("model.layers.1",))
    assert ((src / "model.int8.onnx").read_bytes(), (src / "manifest.json").read_text()) == before
    assert (dst / "model.onnx").samefile(src / "model.onnx")  # the fp32 graph is linked, not copied
    kept = json.loads((dst / "manifest.json").read_text())["graphs"]["int8"]["quantization"]["kept_fp32_modules"]
    assert kept and all(m.startswith("model.layers.1.") for m in kept)
    judge = fid.onnx_judge(dst, None, {"batch_size": 4, "max_length": 512, "threads": 1})
    v = judge.judge("pairwise", [{"prompt": "Hi", "response_a": "Hello!", "response_b": "Go away."}])[0]
    assert 0.0 <= v.score <= 1.0


def test_compare_leaves_out_items_that_could_not_be_judged():
    from flame_reward.results import ItemError

    err = ItemError(index=1, field="max_length", message="too long")
    stats = fid.compare([_v(0.9), err, _v(0.2)], [_v(0.8), err, _v(0.7)], ["A", "A", "B"])
    assert stats["n"] == 2 and stats["errors"] == 1 and stats["same_label"] == pytest.approx(0.5)
