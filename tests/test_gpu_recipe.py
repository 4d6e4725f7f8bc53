"""The GPU path (benchmarks/gpu_judge.sh): its dry run on the CPU, its metrics and its verdict."""

import json
import math

import pytest

from flame_reward.data import shared_data_dir
from flame_reward.errors import DataError, InvalidInput
from flame_reward.train.gpu_recipe import compare, headlines, kendall_tau_b, read_baseline

try:
    DATA = shared_data_dir()
except DataError:
    DATA = None

needs_data = pytest.mark.skipif(DATA is None, reason="shared data folder not found (set FLAME_REWARD_DATA)")


def test_kendall_tau_b_matches_hand_counts():
    assert kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # 4 concordant pairs, one tied in x only, one in y only: 4 / sqrt(5 * 5).
    assert kendall_tau_b([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert math.isnan(kendall_tau_b([2, 2, 2], [1, 2, 3]))


def _figures(hh, general, tau, qags, n=200):
    rows = {name: {"n": n, "accuracy": acc, "ci95": [acc - 0.07, acc + 0.07]}
            for name, acc in zip(("hh-helpful", "hh-harmless", "pandalm", "auto-j", "llmbar"), (*hh, *general))}
    return {"pairwise": rows, "classification": {"qags": {"n": n, "accuracy": qags, "ci95": [qags - 0.07, qags + 0.07]}},
            "pointwise": {"summeval/coherence": {"n": n, "tau": tau}, "openmeva/overall": {"n": n, "tau": 0.9}}}


def test_compare_needs_every_headline_and_no_set_below_its_interval():
    trained = _figures((0.70, 0.66), (0.58, 0.56, 0.60), 0.30, 0.70)
    base = {"hh-helpful": 0.68, "hh-harmless": 0.66, "pandalm": 0.56, "auto-j": 0.56, "llmbar": 0.56,
            "summeval/coherence": 0.25, "qags": 0.65}
    assert compare(trained, base) == (True, [])
    heads = headlines(base, {n: 200 for n in base})
    assert heads["hh_mean"] == pytest.approx(0.67) and heads["summary_tau_mean"] == pytest.approx(0.25)
    # OpenMEVA is no headline: only the summary sets' tau counts.
    assert headlines({"openmeva/overall": 0.9}, {})["summary_tau_mean"] != heads["summary_tau_mean"]
    worse_tau = compare(trained, {**base, "summeval/coherence": 0.31})
    assert worse_tau[0] is False and "summary_tau_mean" in worse_tau[1][0]
    # Headlines all up, but one set below the baseline by more than its interval.
    one_set = compare(_figures((0.80, 0.80), (0.70, 0.70, 0.40), 0.30, 0.70), {**base, "llmbar": 0.50})
    assert one_set[0] is False and one_set[1] == ["llmbar 0.400 below baseline 0.500 beyond ±0.070"]
    assert compare(trained, {"unrelated": 1.0})[0] is False


def test_baseline_file_forms(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"hh-helpful": 0.7, "summeval/coherence": {"tau": 0.2}, "qags": {"accuracy": 0.6}}))
    assert read_baseline(flat) == {"hh-helpful": 0.7, "summeval/coherence": 0.2, "qags": 0.6}
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"trained": {"pairwise": {"llmbar": {"accuracy": 0.5}},
                                              "pointwise": {"openmeva/overall": {"tau": None}}}}))
    got = read_baseline(report)
    assert got["llmbar"] == 0.5 and math.isnan(got["openmeva/overall"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hh-helpful": "high"}))
    with pytest.raises(InvalidInput) as err:
        read_baseline(bad)
    assert err.value.field == "--baseline.hh-helpful"


def test_time_budget_stops_training(tmp_path, tokenizer):
    from tests.conftest import make_tiny_loaded
    from tests.test_train import pair
    from flame_reward.train.examples import to_examples
    from flame_reward.train.sft import TrainConfig, train

    cfg = TrainConfig(out=str(tmp_path / "run"), max_length=256, max_steps=5, batch_size=4, eval_every=0,
                      save_every=10**9, max_seconds=0.0)
    report = train(cfg, to_examples([pair(i) for i in range(4)]), loaded=make_tiny_loaded(tokenizer, seed=1))
    assert report["steps"] == 1 and report["stopped_by_time"] is True


@needs_data
def test_dry_run_trains_in_bf16_and_reports_every_dev_set(tmp_path, capsys):
    from flame_reward.train.gpu_recipe import main
    from flame_reward.train.recipes import CLASSIFICATION_SETS, PAIRWISE_SETS, POINTWISE_SETS

    baseline = tmp_path / "cpu_judge.json"
    baseline.write_text(json.dumps({"hh-helpful": 0.0, "hh-harmless": 0.0, "qags": 0.0}))
    out = tmp_path / "gpu"
    assert main(["--dry-run", "--out", str(out), "--baseline", str(baseline)]) == 0
    report = json.loads((out / "report.json").read_text())
    # Every set's train split feeds the mixture; the matmuls ran under bf16 autocast.
    assert set(report["mixture"]) == {*PAIRWISE_SETS, *POINTWISE_SETS, *CLASSIFICATION_SETS}
    assert report["training"]["steps"] == 3 and report["training"]["bf16"] is True
    assert report["compute_dtypes"] == ["bfloat16"]
    assert (out / "lora" / "adapter" / "adapter_config.json").is_file()
    for judge in ("raw", "trained"):
        assert set(report[judge]["pairwise"]) == set(PAIRWISE_SETS)
        assert {k.split("/")[0] for k in report[judge]["pointwise"]} == set(POINTWISE_SETS)
        assert len([k for k in report[judge]["pointwise"] if k.startswith("summeval/")]) == 4
        assert set(report[judge]["classification"]) == set(CLASSIFICATION_SETS)
    # All-layer LoRA moved the model: some pointwise expectation differs from raw.
    assert report["trained"]["pointwise"] != report["raw"]["pointwise"] or \
        report["trained"]["pairwise"] != report["raw"]["pairwise"]
    assert report["beats_baseline"] is True
    assert capsys.readouterr().out.strip().splitlines()[-1] == "verdict: the trained LoRA BEATS the baseline"
    text = (out / "report.md").read_text()
    assert "| hh-helpful | accuracy [95% CI] |" in text and "DRY RUN" in text
    with pytest.raises(InvalidInput):
        from flame_reward.train.gpu_recipe import GpuRun, run

        run(GpuRun(out=str(out), dry_run=True))  # refuses to train over an earlier run


def test_full_run_refuses_a_machine_without_gpu(tmp_path):
    import torch

    from flame_reward.train.gpu_recipe import GpuRun, run

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the full run would start")
    with pytest.raises(InvalidInput) as err:
        run(GpuRun(out=str(tmp_path / "gpu")))
    assert err.value.field == "--device" and not (tmp_path / "gpu").exists()
