"""The adapter shipped with the embedded default: it loads automatically, and it judges
held-out HH-RLHF dev pairs better than the raw model (the README's before/after)."""

import pytest

from flame_reward.models.loading import packaged_adapter_dir

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(packaged_adapter_dir(None) is None, reason="no adapter ships in this checkout"),
]

#: The fixed pairs of the CI check: the first 50 non-tie dev pairs of each HH split in file
#: order (fixed before the adapter was measured on them; dev pairs are never trained on).
FIXED_PER_SET = 50


def _raw_judge():
    from flame_reward.autorater import Autorater

    return Autorater.from_pretrained(adapter=None, batch_size=4, max_length=1024)


def _accuracies(judges, per_set=None):
    """Debiased pairwise accuracy of each judge on the HH dev pairs, with each set's criteria."""
    from flame_reward.data import load_pairs
    from flame_reward.eval.metrics import pairwise_metrics
    from flame_reward.eval.pairs import pair_example
    from flame_reward.results import Verdict

    records = []
    for name in ("hh-helpful", "hh-harmless"):
        kept = [r for r in load_pairs(name, split="dev").records if r.label != "tie"]
        records += kept[:per_set] if per_set else kept
    rows = [pair_example(r) for r in records]  # with each set's criteria, as trained
    labels = [r.label for r in records]
    acc = {}
    for name, judge in judges.items():
        verdicts = judge.judge("pairwise", rows, on_error="return")  # empty responses: item errors
        kept_v = [(v, lab) for v, lab in zip(verdicts, labels) if isinstance(v, Verdict)]
        acc[name] = pairwise_metrics([v for v, _ in kept_v], [lab for _, lab in kept_v]).accuracy
    return acc


def test_embedded_default_applies_the_shipped_adapter(embedded_judge):
    assert embedded_judge.info["adapter"] == str(packaged_adapter_dir(None))
    assert len(embedded_judge.info["adapter_sha256"]) == 64
    raw = _raw_judge()
    assert raw.info["adapter"] is None
    pair = ("Is it safe to eat raw chicken?", "No: raw chicken can carry salmonella; cook it through.",
            "Yes, raw chicken is perfectly safe.")
    assert abs(embedded_judge.compare(*pair).score - raw.compare(*pair).score) > 1e-4


def test_adapter_beats_the_raw_model_on_fixed_dev_pairs(embedded_judge):
    acc = _accuracies({"adapter": embedded_judge, "raw": _raw_judge()}, per_set=FIXED_PER_SET)
    assert acc["adapter"] > acc["raw"], acc


@pytest.mark.slow
def test_adapter_beats_the_raw_model_on_the_hh_dev_splits(embedded_judge):
    # All of both dev splits (never trained on): the figure the README reports.
    acc = _accuracies({"adapter": embedded_judge, "raw": _raw_judge()})
    assert acc["adapter"] > acc["raw"], acc
