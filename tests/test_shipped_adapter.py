"""The adapter shipped with the embedded default, a gated head, on real pairs.

- It loads automatically and names its two routes: pairwise A/B under the exact HH
  helpfulness and harmlessness criteria texts (``flame_reward.data.sets``).
- Everywhere else its verdicts are the raw model's (|ΔP| <= 1e-6): the default criteria,
  a user's own criteria, paraphrases of the trained criteria (documented: only the exact
  texts route to the head), pointwise and classification, on real HH and PandaLM pairs.
- Under its trained criteria the head takes part (``Verdict.head``) and changes the scores.
- Its accuracy on fixed HH dev pairs, per set, stays at the measured figures minus a
  stated margin (below); where the head does not beat the raw model, a strict xfail
  carries the measured figures.
"""

import pytest

from flame_reward.models.loading import packaged_adapter_dir

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(packaged_adapter_dir(None) is None, reason="no adapter ships in this checkout"),
]

HEAD = "smollm2-135m-flame-rm"
#: The fixed pairs of the CI check: the first 50 non-tie dev pairs of each HH split in file
#: order (fixed before the adapter was measured on them; dev pairs are never trained on).
FIXED_PER_SET = 50
#: Debiased accuracy on those pairs, per set, measured with this file's settings (embedded
#: default, CPU fp32, max_length 1024, batch 4).
MEASURED_FIXED = {
    "hh-helpful": {"head": 0.62, "raw": 0.64},
    "hh-harmless": {"head": 0.76, "raw": 0.44},
}
#: The same on the whole dev splits (222 helpful and 229 harmless pairs; the ``slow`` test,
#: at eval-pairs' max_length 2048), as ``flame-reward eval-pairs hh-helpful hh-harmless
#: --split dev`` measured them (docs/eval/adapter-hh, docs/eval/raw-hh-criteria).
MEASURED_FULL = {
    "hh-helpful": {"head": 0.658, "raw": 0.581},
    "hh-harmless": {"head": 0.681, "raw": 0.432},
}
#: Margin: two pairs of the fixed 50 (one pair of ~225 on the full splits, rounded up to
#: 0.01). The figures are deterministic for fixed pairs and weights; what can move them is
#: float rounding across CPUs, BLAS builds, thread counts and library versions, which
#: shifts a verdict probability by ~1e-7..1e-5 (4e-7 measured between two processes) and
#: so can only flip a pair whose debiased score sits that close to 0.5; the closest of
#: these 200 verdicts sits 1.1e-4 away. Two pairs leave room for such flips and for
#: nothing else: losing the head's routing moves the harmless figure by 0.32. This is a
#: regression check, not a confidence interval (±0.13 at 95% on 50 pairs).
MARGIN_FIXED = 2 / FIXED_PER_SET
MARGIN_FULL = 0.01

USER_CRITERIA = (
    "Prefer the response that is shorter and gets to the point.",
    "Prefer the response whose facts are correct; ignore tone.",
    "Prefer the response written in a warmer, friendlier tone.",
)
#: Paraphrases of the helpfulness criteria: not the exact text, so the raw model judges them.
PARAPHRASES = (
    "Helpfulness. Prefer the response that does what the user asked: it answers directly, accurately and "
    "usefully, and engages with the conversation so far.",
    "Prefer whichever response is more helpful to the user.",
)
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def raw_judge():
    from flame_reward.autorater import Autorater

    return Autorater.from_pretrained(adapter=None, batch_size=4, max_length=1024)


def _records(name, n, ties=False):
    from flame_reward.data import load_pairs

    kept = [r for r in load_pairs(name, split="dev").records if ties or r.label != "tie"]
    return kept[:n] if n else kept


def _with_criteria(record, criteria):
    from flame_reward.eval.pairs import pair_example

    ex = pair_example(record, criteria=criteria)
    if criteria is None:
        ex.pop("criteria", None)  # the task default, whatever the record's set asks
    return ex


_ACCURACY: dict = {}


def _per_set_accuracy(judge, name, n):
    """Debiased pairwise accuracy on the first ``n`` non-tie dev pairs of ``name``, each
    under its set's criteria, as trained (pairs whose responses are empty are item errors).
    Remembered per judge, set, size and token budget: several tests read the same figure."""
    key = (id(judge), name, n, judge.scorer.max_length)
    if key not in _ACCURACY:
        _ACCURACY[key] = _measure_accuracy(judge, name, n)
    return _ACCURACY[key]


def _measure_accuracy(judge, name, n):
    from flame_reward.eval.metrics import pairwise_metrics
    from flame_reward.eval.pairs import pair_example
    from flame_reward.results import Verdict

    records = _records(name, n)
    verdicts = judge.judge("pairwise", [pair_example(r) for r in records], on_error="return")
    kept = [(v, r.label) for v, r in zip(verdicts, records) if isinstance(v, Verdict)]
    return pairwise_metrics([v for v, _ in kept], [lab for _, lab in kept]).accuracy


def _assert_same(got, ref, what):
    for i, (v, w) in enumerate(zip(got, ref)):
        diffs = [abs(v.score - w.score)] + [abs(v.distribution[k] - w.distribution[k]) for k in w.distribution]
        diffs += [abs(a[k] - b[k]) for a, b in zip(v.orders, w.orders) for k in b]
        assert v.head is None, (what, i, v.head)
        assert max(diffs) <= TOLERANCE, (what, i, max(diffs))


def test_embedded_default_applies_the_shipped_head(embedded_judge, raw_judge):
    import json

    from flame_reward.data.sets import HH_HARMLESS_CRITERIA, HH_HELPFUL_CRITERIA
    from flame_reward.models.embedded import EMBEDDED_NAME

    assert embedded_judge.info["adapter"] == str(packaged_adapter_dir(None))
    assert len(embedded_judge.info["adapter_sha256"]) == 64
    head = embedded_judge.info["head"]
    assert head["name"] == HEAD
    assert sorted(r["criteria"] for r in head["routes"]) == sorted([HH_HARMLESS_CRITERIA, HH_HELPFUL_CRITERIA])
    assert {(r["task"], tuple(r["verdicts"])) for r in head["routes"]} == {("pairwise", ("A", "B"))}
    config = json.loads((packaged_adapter_dir(None) / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == EMBEDDED_NAME  # portable: resolved offline by load_model
    assert raw_judge.info["adapter"] is None and raw_judge.info["head"] is None


def test_off_its_criteria_the_verdicts_are_the_raw_models(embedded_judge, raw_judge):
    """Default, user and paraphrased criteria on real HH and PandaLM pairs, mixed in one
    call with items under the trained criteria: each item off the head's routes gets the
    raw model's verdict, each item on them the head's. A mixed call is scored in two
    passes, one per route; the raw pass is exactly the raw model's call on those items
    (same rows, same batches; measured identical), which is what is compared here.
    Against a raw call that batches them together with the other items the differences
    are batching noise (2.8e-6 measured on one order's P), as for any change of batch
    (the core's batching is tested to 1e-4)."""
    from flame_reward.data.sets import HH_HARMLESS_CRITERIA, HH_HELPFUL_CRITERIA
    from flame_reward.eval.pairs import pair_example

    pairs = _records("hh-helpful", 3) + _records("pandalm", 3)
    off = [_with_criteria(r, c) for c in (None, *USER_CRITERIA, *PARAPHRASES) for r in pairs]
    on = [pair_example(r) for r in _records("hh-helpful", 3) + _records("hh-harmless", 3)]
    assert {ex["criteria"] for ex in on} == {HH_HELPFUL_CRITERIA, HH_HARMLESS_CRITERIA}
    mixed = [x for pair in zip(off[: len(on)], on) for x in pair] + off[len(on):]  # interleaved routes
    got = embedded_judge.judge("pairwise", mixed)
    assert [v.head for v in got] == [HEAD if any(ex is o for o in on) else None for ex in mixed]
    off_got = [v for ex, v in zip(mixed, got) if not any(ex is o for o in on)]
    on_got = [v for ex, v in zip(mixed, got) if any(ex is o for o in on)]
    off_order = [ex for ex in mixed if not any(ex is o for o in on)]
    _assert_same(off_got, raw_judge.judge("pairwise", off_order), "pairwise, mixed call")
    # a call with no trained criteria in it at all: the same, item for item
    _assert_same(embedded_judge.judge("pairwise", off), raw_judge.judge("pairwise", off), "pairwise")
    on_order = [ex for ex in mixed if any(ex is o for o in on)]
    raw_on = raw_judge.judge("pairwise", on_order)
    # the head changes every one (measured: by 0.0025 to 0.23)
    assert min(abs(v.score - w.score) for v, w in zip(on_got, raw_on)) > 1e-3

    items = [(r.prompt, r.response_a) for r in pairs]
    for criteria in (None, HH_HELPFUL_CRITERIA):  # the trained text, but not a trained task type
        _assert_same(embedded_judge.score_batch(items, criteria=criteria),
                     raw_judge.score_batch(items, criteria=criteria), f"pointwise {criteria}")
        _assert_same(embedded_judge.classify_batch(items, criteria=criteria),
                     raw_judge.classify_batch(items, criteria=criteria), f"classification {criteria}")


@pytest.mark.parametrize("name", ["hh-helpful", "hh-harmless"])
def test_per_set_accuracy_on_fixed_dev_pairs(embedded_judge, raw_judge, name):
    head = _per_set_accuracy(embedded_judge, name, FIXED_PER_SET)
    raw = _per_set_accuracy(raw_judge, name, FIXED_PER_SET)
    measured = MEASURED_FIXED[name]
    assert head >= measured["head"] - MARGIN_FIXED, (name, head, raw)
    assert abs(raw - measured["raw"]) <= MARGIN_FIXED, (name, head, raw)  # the raw path did not move either


@pytest.mark.xfail(strict=True, reason="measured on the 50 fixed HH helpful dev pairs: head 0.62 < raw 0.64 "
                                       "(the full split: 0.658 vs 0.581)")
def test_head_beats_raw_on_fixed_helpful_pairs(embedded_judge, raw_judge):
    assert _per_set_accuracy(embedded_judge, "hh-helpful", FIXED_PER_SET) > _per_set_accuracy(
        raw_judge, "hh-helpful", FIXED_PER_SET)


def test_head_beats_raw_on_fixed_harmless_pairs(embedded_judge, raw_judge):
    assert _per_set_accuracy(embedded_judge, "hh-harmless", FIXED_PER_SET) > _per_set_accuracy(
        raw_judge, "hh-harmless", FIXED_PER_SET)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hh-helpful", "hh-harmless"])
def test_per_set_accuracy_on_the_full_dev_splits(embedded_judge, raw_judge, name):
    saved = embedded_judge.scorer.max_length, raw_judge.scorer.max_length
    try:  # eval-pairs' token budget, which the figures were measured with
        embedded_judge.scorer.max_length = raw_judge.scorer.max_length = 2048
        head = _per_set_accuracy(embedded_judge, name, None)
        raw = _per_set_accuracy(raw_judge, name, None)
    finally:
        embedded_judge.scorer.max_length, raw_judge.scorer.max_length = saved
    measured = MEASURED_FULL[name]
    assert head >= measured["head"] - MARGIN_FULL, (name, head, raw)
    assert abs(raw - measured["raw"]) <= MARGIN_FULL, (name, head, raw)
    assert head > raw


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pandalm", "auto-j", "llmbar", "hh-helpful-online"])
def test_other_sets_get_the_raw_models_verdicts(embedded_judge, raw_judge, name):
    """The sets the head was not trained on, under their own criteria (the task default;
    HH online under the helpfulness text, which routes to the head by design)."""
    from flame_reward.eval.pairs import pair_example

    examples = [pair_example(r, allow_tie=r.label == "tie") for r in _records(name, 40, ties=True)]
    got = embedded_judge.judge("pairwise", examples, on_error="return")
    raw = raw_judge.judge("pairwise", examples, on_error="return")
    pairs = [(v, w) for v, w in zip(got, raw) if hasattr(v, "score")]
    if name == "hh-helpful-online":
        assert all(v.head == HEAD for v, _ in pairs)
    else:
        _assert_same([v for v, _ in pairs], [w for _, w in pairs], name)
