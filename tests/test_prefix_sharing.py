"""Prefix sharing: the plan (which rows share what) and shared == unshared scores."""

from __future__ import annotations

import pytest
import torch

from flame_reward.models.backends import TorchBackend
from flame_reward.prefix import common_prefix, plan_prefixes
from flame_reward.scoring import Scorer

PROMPT = "Explain, step by step and with one worked example, how photosynthesis turns light into sugar. " * 3
CANDIDATES = [
    "Plants use light.",
    "Chlorophyll absorbs light; the light reactions make ATP and NADPH, and the Calvin cycle fixes CO2 into sugar.",
    "I don't know.",
    "Photosynthesis happens in chloroplasts. " * 6,
    "Sugar comes from the soil.",
    "Light splits water, releasing oxygen; the energy is stored as ATP, then used to build glucose.",
    "It is a process.",
    "Plants eat sunlight.",
]


def _covered(loose, nodes):
    out = list(loose)
    for n in nodes:
        out += n.all_rows()
    return sorted(out)


def test_plan_groups_rows_by_shared_prefix():
    base = list(range(100, 200))  # 100 shared tokens
    rows = [base + [1, 2, 3], base + [1, 2, 4, 5], list(range(300, 340)), base + [9]]
    loose, nodes = plan_prefixes(rows, min_tokens=64)
    assert loose == [2]
    [node] = nodes
    assert (node.start, node.end) == (0, 100) and sorted(node.all_rows()) == [0, 1, 3]
    assert _covered(loose, nodes) == [0, 1, 2, 3]
    # Below the threshold nothing is shared.
    loose, nodes = plan_prefixes(rows, min_tokens=103)  # rows 0 and 1 share 102
    assert sorted(loose) == [0, 1, 2, 3] and nodes == []


def test_plan_nests_and_keeps_a_suffix():
    head = list(range(1000, 1070))  # shared by all (70)
    p1, p2 = list(range(2000, 2080)), list(range(3000, 3080))  # shared by two each (80 more)
    rows = [head + p1 + [1], head + p1 + [2, 3], head + p2 + [4], head + p2 + [5], head + [7, 8]]
    loose, nodes = plan_prefixes(rows, min_tokens=64)
    assert loose == []
    [root] = nodes
    assert (root.start, root.end) == (0, 70) and root.rows == [4]
    assert sorted((c.start, c.end, tuple(sorted(c.rows))) for c in root.children) == [(70, 150, (0, 1)), (70, 150, (2, 3))]
    # Identical rows and a row that is another's prefix still keep >= min_suffix own tokens.
    same = list(range(500, 600))
    loose, nodes = plan_prefixes([same, same, same + [1, 2]], min_tokens=64, min_suffix=[1, 1, 2])
    [node] = nodes
    assert node.end == 99 and _covered(loose, nodes) == [0, 1, 2]
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2 and common_prefix([], [1]) == 0


def _judges(tokenizer, min_tokens):
    from flame_reward.autorater import Autorater
    from tests.conftest import make_tiny_loaded

    loaded = make_tiny_loaded(tokenizer, seed=3, initializer_range=0.5)  # spread-out verdicts
    shared = Autorater(Scorer(TorchBackend(loaded), tokenizer, batch_size=4, max_length=768,
                              prefix_min_tokens=min_tokens))
    plain = Autorater(Scorer(TorchBackend(loaded), tokenizer, batch_size=4, max_length=768, prefix_min_tokens=None))
    return shared, plain


def _assert_same(a, b, tol=1e-4):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.label == y.label
        assert x.score == pytest.approx(y.score, abs=tol)
        for ox, oy in zip(x.orders, y.orders):
            for k in ox:
                assert ox[k] == pytest.approx(oy[k], abs=tol)


def test_group_of_candidates_shared_equals_unshared(tokenizer):
    shared, plain = _judges(tokenizer, 16)
    items = [(PROMPT, c) for c in CANDIDATES] + [("A different, short question?", "Yes.")]
    for scale in ((1, 5), (1, 10)):  # 1-10 has two-token labels ("1" + end of turn)
        a = shared.score_batch(items, scale=scale)
        b = plain.score_batch(items, scale=scale)
        _assert_same(a, b)
    cost = shared.scorer.cost
    assert cost.prefix_forwards >= 1 and cost.reused_tokens > 7 * 60
    assert plain.scorer.cost.prefix_forwards == 0
    # Logical cost is unchanged: same judgments, same batched passes, same tokens judged.
    assert (cost.judgments, cost.tokens) == (plain.scorer.cost.judgments, plain.scorer.cost.tokens)


def test_pairs_and_multi_token_labels_shared_equals_unshared(tokenizer):
    shared, plain = _judges(tokenizer, 16)
    pairs = [(PROMPT, a, b) for a, b in zip(CANDIDATES[:4], CANDIDATES[4:])] + [("Hi?", "Hello.", "Go away.")]
    _assert_same(shared.compare_batch(pairs), plain.compare_batch(pairs))
    _assert_same(shared.compare_batch(pairs, allow_tie=True), plain.compare_batch(pairs, allow_tie=True))
    labels = ["supported", "contradicted", "not enough information"]  # multi-token labels
    items = [(PROMPT, c) for c in CANDIDATES[:5]]
    _assert_same(shared.classify_batch(items, labels=labels), plain.classify_batch(items, labels=labels))
    assert shared.scorer.cost.prefix_forwards > 0


def test_prefix_pass_matches_a_whole_row(tiny_loaded):
    """The backend primitive: prefix state + left-padded suffixes == whole left-padded rows."""
    backend = TorchBackend(tiny_loaded)
    assert backend.supports_prefix_sharing
    prefix = list(range(500, 580))
    suffixes = [[7, 8, 9], [11], [12, 13, 14, 15, 16]]
    whole = backend.token_logprobs([prefix + s for s in suffixes], 1, [5, 6, 7])
    state = backend.prefix_state(prefix[:50])
    state = backend.prefix_state(prefix[50:], state)  # nested: extend a prefix
    after = backend.token_logprobs_after(state, suffixes, 1, [5, 6, 7])
    assert torch.allclose(whole, after, atol=1e-5)
    two = backend.token_logprobs_after(state, suffixes, 2, [5, 6])
    assert torch.allclose(backend.token_logprobs([prefix + s for s in suffixes], 2, [5, 6])[0], two[0], atol=1e-5)


def test_sliding_window_models_are_not_shared():
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, sliding_window=8)
    from flame_reward.models.backends import _shares_prefixes

    assert not _shares_prefixes(MistralForCausalLM(config))


@pytest.mark.model
def test_embedded_shared_equals_unshared(embedded_judge):
    scorer = embedded_judge.scorer
    items = [(PROMPT, c) for c in CANDIDATES]
    pairs = [(PROMPT, a, b) for a, b in zip(CANDIDATES[:3], CANDIDATES[3:6])]
    saved = scorer.prefix_min_tokens
    try:
        scorer.prefix_min_tokens = None
        plain_items, plain_pairs = embedded_judge.score_batch(items), embedded_judge.compare_batch(pairs)
        scorer.prefix_min_tokens = 64
        before = scorer.cost.prefix_forwards
        shared_items, shared_pairs = embedded_judge.score_batch(items), embedded_judge.compare_batch(pairs)
        assert scorer.cost.prefix_forwards > before
    finally:
        scorer.prefix_min_tokens = saved
    _assert_same(shared_items, plain_items)
    _assert_same(shared_pairs, plain_pairs)
