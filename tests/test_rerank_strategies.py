"""Reranking strategies on synthetic candidates whose right answer is known."""

from __future__ import annotations

import itertools
import math

import pytest

from flame_reward.errors import InvalidInput
from flame_reward.rerank import rank
from flame_reward.rerank.judging import VerdictCache
from flame_reward.rerank.ranking import Ranking, order_by
from flame_reward.rerank.strategies import NOT_JUDGED
from flame_reward.rerank.tournament import knockout, round_robin, swiss, swiss_rounds

from .rerank_fakes import FakeJudge

PROMPT = "Name a prime number."
# Hidden qualities: the right order is c4 > c1 > c6 > c0 > c3 > c5 > c2 > c7.
QUALITY = {"c0": 0.5, "c1": 2.5, "c2": -1.5, "c3": 0.0, "c4": 4.0, "c5": -0.5, "c6": 1.5, "c7": -3.0}
CANDIDATES = list(QUALITY)
TRUE_ORDER = sorted(range(len(CANDIDATES)), key=lambda i: -QUALITY[CANDIDATES[i]])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _exact_compare(strengths):
    calls = []

    def compare(pairs):
        calls.append(list(pairs))
        return [_sigmoid(strengths[i] - strengths[j]) for i, j in pairs]

    return compare, calls


# -- tournament arithmetic ------------------------------------------------------------------
def test_round_robin_is_one_batch_of_every_pair_and_scores_expected_wins():
    strengths = [0.0, 1.0, -1.0, 2.0]
    compare, calls = _exact_compare(strengths)
    res = round_robin(4, compare)
    assert len(calls) == 1 and sorted(calls[0]) == list(itertools.combinations(range(4), 2))
    expected = [sum(_sigmoid(strengths[i] - strengths[j]) for j in range(4) if j != i) for i in range(4)]
    assert res.scores == pytest.approx(expected)
    assert sum(res.scores) == pytest.approx(4 * 3 / 2)  # every game hands out one win in total
    assert res.details["wins"] == [1, 2, 0, 3]
    assert order_by(res.scores) == [3, 1, 0, 2]


def test_round_robin_exact_half_is_half_a_win_each():
    res = round_robin(3, lambda pairs: [0.5] * len(pairs))
    assert res.details["wins"] == [1.0, 1.0, 1.0] and res.scores == [1.0, 1.0, 1.0]
    assert round_robin(1, lambda pairs: pytest.fail("no games for one candidate")).scores == [0.0]


@pytest.mark.parametrize("n", [2, 3, 5, 8, 10, 11])
def test_swiss_plays_half_the_field_per_round_without_rematches(n):
    compare, calls = _exact_compare([float(i % 7) - 0.3 * i for i in range(n)])
    res = swiss(n, compare)
    rounds = swiss_rounds(n)
    assert len(calls) == rounds == res.details["rounds"]
    assert all(len(batch) == n // 2 for batch in calls)
    games = [frozenset(p) for batch in calls for p in batch]
    if n >= 4:
        assert len(set(games)) == len(games)  # no rematches
    for batch in calls:  # nobody plays twice in a round
        seen = [i for p in batch for i in p]
        assert len(seen) == len(set(seen))
    points = res.details["points"]
    assert sum(points) == pytest.approx(rounds * (n // 2) + 0.5 * rounds * (n % 2))
    assert [s[0] for s in res.scores] == points


def test_swiss_finds_a_clear_best_in_log2_rounds():
    strengths = [0.0, 3.0, 1.0, 10.0, 2.0, -1.0, 0.5, 1.5, 2.5, -2.0]
    compare, calls = _exact_compare(strengths)
    res = swiss(10, compare)
    assert order_by(res.scores)[0] == 3
    assert sum(len(b) for b in calls) == 20  # vs 45 for a round robin


def test_knockout_plays_n_minus_one_games_and_the_strongest_wins():
    strengths = [0.0, 3.0, 1.0, 10.0, 2.0, -1.0, 0.5]
    compare, calls = _exact_compare(strengths)
    res = knockout(7, compare)
    assert sum(len(b) for b in calls) == 6
    assert order_by(res.scores)[0] == 3
    assert res.details["round_reached"][3] == res.details["rounds"] == 3


def test_order_by_breaks_ties_by_index_and_handles_tuples():
    assert order_by([1.0, 2.0, 2.0, 0.0]) == [1, 2, 0, 3]
    assert order_by([(1.0, 0.0), (1.0, 3.0), (0.5, 9.0)]) == [1, 0, 2]


# -- strategies through a judge ---------------------------------------------------------------
def test_round_robin_recovers_the_true_order_with_both_orders_in_one_call():
    judge = FakeJudge(QUALITY)
    r = rank(PROMPT, CANDIDATES, "round_robin", judge=judge)
    assert isinstance(r, Ranking) and r.strategy == "round_robin"
    assert r.order == TRUE_ORDER
    n = len(CANDIDATES)
    assert judge.calls == [("pairwise", n * (n - 1) // 2)]  # one batched call
    assert r.judge_calls == n * (n - 1) == judge.presentations  # both presentation orders
    assert r.details["judgments"] == n * (n - 1) // 2


def test_swiss_knockout_and_pointwise_pick_the_best_for_less():
    n = len(CANDIDATES)
    for strategy, calls in (("swiss", 2 * swiss_rounds(n) * (n // 2)), ("knockout", 2 * (n - 1)),
                            ("pointwise", n)):
        judge = FakeJudge(QUALITY)
        r = rank(PROMPT, CANDIDATES, strategy, judge=judge)
        assert r.order[0] == TRUE_ORDER[0], strategy
        assert r.judge_calls == calls == judge.presentations, strategy
        assert sorted(r.order) == list(range(n)) and len(r.scores) == n
    r = rank(PROMPT, CANDIDATES, "pointwise", judge=FakeJudge(QUALITY))
    assert r.order == TRUE_ORDER and r.details["judgments"] == n


def test_pointwise_options_reach_the_task():
    judge = FakeJudge(QUALITY)
    r = rank(PROMPT, CANDIDATES, "pointwise", judge=judge, point_options={"scale": (1, 10)})
    assert all(1.0 <= s <= 10.0 for s in r.scores)
    assert "from 1 (worst) to 10 (best)" in judge.rendered[0]


def test_random_is_a_seeded_shuffle_with_tied_scores_and_no_judge():
    r1 = rank(PROMPT, CANDIDATES, "random", seed=3)
    r2 = rank(PROMPT, CANDIDATES, "random", seed=3)
    assert r1.order == r2.order and sorted(r1.order) == list(range(len(CANDIDATES)))
    assert len(set(r1.scores)) == 1 and r1.judge_calls == 0
    assert r1.top_group() == r1.order


def test_identical_candidates_are_not_judged_and_tie_exactly():
    judge = FakeJudge(QUALITY)
    cands = ["c1", "c1", "c4", "c1"]
    r = rank(PROMPT, cands, "round_robin", judge=judge)
    assert r.judge_calls == 2 and judge.calls == [("pairwise", 1)]  # only c1 vs c4, once
    assert r.order[0] == 2
    assert r.scores[0] == r.scores[1] == r.scores[3]


def test_hybrid_judges_only_the_distinct_top_group():
    judge = FakeJudge(QUALITY)
    signals = [1, 2, 0, 1, 2, 0, 2, 2]  # top group: c1, c4, c6, c7 (signal 2)
    r = rank(PROMPT, CANDIDATES, "hybrid", judge=judge, signals=signals)
    assert r.order[:4] == [4, 1, 6, 7]  # judged: by quality within the top group
    assert r.judge_calls == 4 * 3 and r.details["group"] == 4
    judged_texts = {t for t in ("c1", "c4", "c6", "c7")}
    for text in judge.rendered:
        assert not any(f"\n{c}\n" in text for c in set(CANDIDATES) - judged_texts)
    # the rest keep the signal's order (ties by index), unjudged
    assert r.order[4:] == [0, 3, 2, 5]
    assert all(r.scores[i][-1] == NOT_JUDGED for i in (0, 2, 3, 5))


def test_hybrid_costs_nothing_when_the_signal_has_a_unique_best():
    judge = FakeJudge(QUALITY)
    r = rank(PROMPT, CANDIDATES, "hybrid", judge=judge, signals=[0, 0, 0, 0, 0, 0, 0, 9])
    assert r.order[0] == 7 and r.judge_calls == 0 and judge.calls == []


def test_hybrid_caps_the_group_and_shares_scores_with_duplicates():
    judge = FakeJudge(QUALITY)
    cands = ["c0", "c2", "c0", "c4", "c1", "c6"]
    r = rank(PROMPT, cands, "hybrid", judge=judge, signals=[1] * 6, max_group=3)
    # distinct texts in index order: c0, c2, c4 (judged), c1, c6 (over the cap)
    assert r.judge_calls == 3 * 2 and r.details["group_distinct"] == 5 and r.details["judged"] == 3
    assert r.order[0] == 3
    assert r.scores[0] == r.scores[2]  # the duplicate shares its judged score
    assert r.scores[4][-1] == r.scores[5][-1] == NOT_JUDGED
    rp = rank(PROMPT, cands, "hybrid", judge=FakeJudge(QUALITY), signals=[1] * 6, max_group=3, tiebreak="pointwise")
    assert rp.order[0] == 3 and rp.judge_calls == 3


def test_signals_strategy_needs_no_judge():
    r = rank(PROMPT, CANDIDATES, "signals", signals=[(0.5, 1.0), (1.0, 0.0), (1.0, 2.0)] + [(0.0, 0.0)] * 5)
    assert r.order[:3] == [2, 1, 0] and r.judge_calls == 0


def test_verdict_cache_answers_repeats_and_cost_stays_the_same(tmp_path):
    cache = VerdictCache(tmp_path / "v.sqlite")
    first = FakeJudge(QUALITY)
    r1 = rank(PROMPT, CANDIDATES, "round_robin", judge=first, cache=cache)
    second = FakeJudge(QUALITY)
    r2 = rank(PROMPT, list(reversed(CANDIDATES)), "round_robin", judge=second, cache=cache)
    assert second.calls == []  # every pair (either orientation) came from the cache
    assert r2.judge_calls == r1.judge_calls and r2.details["cached_calls"] == r2.judge_calls
    assert [CANDIDATES[i] for i in r1.order] == [list(reversed(CANDIDATES))[i] for i in r2.order]
    other = FakeJudge(QUALITY)
    other.fingerprint = "another-judge"
    rank(PROMPT, CANDIDATES, "round_robin", judge=other, cache=cache)
    assert other.calls  # a different judge never reads the first one's verdicts


def test_item_errors_count_and_score_as_no_information():
    judge = FakeJudge(QUALITY, fail_on="c7")
    r = rank(PROMPT, CANDIDATES, "round_robin", judge=judge)
    assert r.details["judge_errors"] == len(CANDIDATES) - 1
    assert r.order[0] == TRUE_ORDER[0]


def test_bad_arguments_name_the_field():
    with pytest.raises(InvalidInput, match="strategy"):
        rank(PROMPT, CANDIDATES, "best_guess", judge=FakeJudge())
    with pytest.raises(InvalidInput, match="signals"):
        rank(PROMPT, CANDIDATES, "hybrid", judge=FakeJudge())
    with pytest.raises(InvalidInput, match="judge"):
        rank(PROMPT, CANDIDATES, "round_robin")
    with pytest.raises(InvalidInput, match="candidates"):
        rank(PROMPT, [], "round_robin", judge=FakeJudge())
