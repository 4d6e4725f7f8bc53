"""The package's one round robin: its arithmetic, its judge call, and the three faces it serves
(the reranker's tournament, the TRL group rewards, the sidecar's Rank)."""

from __future__ import annotations

import pytest

from flame_reward.results import ItemError
from flame_reward.round_robin import expected_wins, pairings, play, win_rates
from flame_reward.trl import InProcessSource
from tests.trl_helpers import spread_judge

PROMPT = "Name a primary colour."
CANDIDATES = ["red", "Blue is one.", "green", "red", "yellow, I think"]


def test_pairings_and_the_arithmetic():
    assert pairings([4, 1, 7]) == [(4, 1), (4, 7), (1, 7)]
    outcomes = {(0, 1): 0.9, (0, 2): 0.25, (1, 2): 0.5}
    wins = expected_wins(outcomes, [0, 1, 2])
    assert wins == {0: pytest.approx(1.15), 1: pytest.approx(0.6), 2: pytest.approx(1.25)}
    assert sum(wins.values()) == pytest.approx(3.0)  # m(m-1)/2 games, one unit each
    rates = win_rates(outcomes, [0, 1, 2])
    assert rates == {i: pytest.approx(w / 2) for i, w in wins.items()} and sum(rates.values()) == pytest.approx(1.5)
    # either orientation of a pair is read, P(j beats i) = 1 - P(i beats j)
    assert win_rates({(1, 0): 0.1, (2, 0): 0.75, (2, 1): 0.5}, [0, 1, 2]) == rates
    assert win_rates({}, [3]) == {3: 0.5} and expected_wins({}, [3]) == {3: 0.0}


@pytest.fixture(scope="module")
def judge(tokenizer):
    """A tiny random judge with verdicts spread by whole percents, so the equalities below bite."""
    return spread_judge(tokenizer)


@pytest.fixture()
def source(judge):
    return InProcessSource(judge)


def example(i, j):
    return {"prompt": PROMPT, "response_a": CANDIDATES[i], "response_b": CANDIDATES[j]}


def test_play_judges_each_pair_once_in_one_call(judge, source):
    n = len(CANDIDATES)
    before = judge.scorer.cost.judgments
    games = play(source, "pairwise", [list(range(n))], example, tie=lambda i, j: CANDIDATES[i] == CANDIDATES[j])
    assert judge.scorer.cost.judgments - before == games.judged == n * (n - 1) // 2 - 1  # "red" vs "red" tied
    assert games.outcomes[(0, 3)] == 0.5 and not games.errors and len(games.verdicts) == games.judged
    scores = [p for pair, p in games.outcomes.items() if pair != (0, 3)]
    assert max(scores) - min(scores) > 0.05  # the comparisons below are not vacuous
    for (i, j), p in games.outcomes.items():
        if (i, j) != (0, 3):
            assert p == pytest.approx(judge.compare(PROMPT, CANDIDATES[i], CANDIDATES[j]).score, abs=1e-4)


def test_a_rejected_pair_is_an_error_not_a_score(source):
    huge = "Explain: " + "token " * 2000  # the prompt alone exceeds the judge's max_length

    def ex(i, j):
        return {**example(i, j), "prompt": huge if 2 in (i, j) else PROMPT}

    games = play(source, "pairwise", [[0, 1, 2]], ex)
    assert set(games.errors) == {(0, 2), (1, 2)} and set(games.outcomes) == {(0, 1)}
    assert all(isinstance(e, ItemError) and e.field == "max_length" for e in games.errors.values())


def test_the_reranker_and_the_trl_group_reward_score_the_same_tournament(judge):
    from flame_reward.rerank import rank
    from flame_reward.trl import flame_group_reward

    ranked = rank(PROMPT, CANDIDATES, "round_robin", judge=judge)
    rewards = flame_group_reward(judge)(prompts=[PROMPT] * len(CANDIDATES), completions=CANDIDATES)
    n = len(CANDIDATES)
    assert max(rewards) - min(rewards) > 0.05
    # win rate = expected wins / (n - 1); the reranker may judge a pair in the other order
    # (P(b beats a) = 1 - P(a beats b) up to batching noise)
    assert rewards == pytest.approx([s / (n - 1) for s in ranked.scores], abs=1e-4)
