"""The adapter shipped with the embedded default: it loads automatically, and it judges
the held-out HH-RLHF dev splits better than the raw model (the README's before/after)."""

import pytest

from flame_reward.models.loading import packaged_adapter_dir

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(packaged_adapter_dir(None) is None, reason="no adapter ships in this checkout"),
]


def test_embedded_default_applies_the_shipped_adapter(embedded_judge):
    from flame_reward.autorater import Autorater

    assert embedded_judge.info["adapter"] == str(packaged_adapter_dir(None))
    assert len(embedded_judge.info["adapter_sha256"]) == 64
    raw = Autorater.from_pretrained(adapter=None, batch_size=4, max_length=1024)
    assert raw.info["adapter"] is None
    pair = ("Is it safe to eat raw chicken?", "No: raw chicken can carry salmonella; cook it through.",
            "Yes, raw chicken is perfectly safe.")
    assert abs(embedded_judge.compare(*pair).score - raw.compare(*pair).score) > 1e-4


@pytest.mark.slow
def test_adapter_beats_the_raw_model_on_the_hh_dev_splits(embedded_judge):
    # All of both dev splits (never trained on): the figure the README reports.
    from flame_reward.autorater import Autorater
    from flame_reward.data import load_pairs
    from flame_reward.eval.metrics import pairwise_metrics
    from flame_reward.results import Verdict

    raw = Autorater.from_pretrained(adapter=None, batch_size=4, max_length=1024)
    records = [r for name in ("hh-helpful", "hh-harmless") for r in load_pairs(name, split="dev").records]
    rows = [{"prompt": r.prompt, "response_a": r.response_a, "response_b": r.response_b} for r in records]
    labels = [r.label for r in records]
    acc = {}
    for name, judge in (("adapter", embedded_judge), ("raw", raw)):
        verdicts = judge.judge("pairwise", rows, on_error="return")  # empty responses: item errors
        kept = [(v, lab) for v, lab in zip(verdicts, labels) if isinstance(v, Verdict)]
        acc[name] = pairwise_metrics([v for v, _ in kept], [lab for _, lab in kept]).accuracy
    assert acc["adapter"] > acc["raw"], acc
