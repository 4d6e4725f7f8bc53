"""The TRL reward functions and judges without a trainer: modes against the core, group sums,
bad input, cost reports, pickling, the remote-source protocol and the old judge contracts."""

from __future__ import annotations

import asyncio
import math
import pickle

import pytest

from flame_reward.errors import FlameRewardError, InvalidInput
from flame_reward.results import Verdict
from flame_reward.trl import (
    FlamePairwiseJudge,
    FlameRankJudge,
    FlameRewardFunction,
    bradley_terry,
    flame_group_reward,
    flame_pointwise_reward,
    flame_reference_reward,
    to_text,
    win_rates,
)
from tests.trl_helpers import RecordingSource, one_torch_thread, spread_judge  # noqa: F401

Q1, Q2 = "What is 2+2?", "Name a primary colour."
PROMPTS = [Q1] * 4 + [Q2] * 4
COMPLETIONS = ["4", "5", "The answer is 4.", "I do not know", "red", "Blue is one.", "green", "yellow, I think"]
REFS = ["4"] * 4 + ["red"] * 4


def chat(text, role="user"):
    return [{"role": role, "content": text}]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def judge(tokenizer):
    return spread_judge(tokenizer)


# -- modes against the core ------------------------------------------------------------------
def test_pointwise_is_the_cores_expected_rating_in_order(judge):
    fn = flame_pointwise_reward(judge)
    rewards = fn(prompts=PROMPTS, completions=COMPLETIONS)
    # the core on the same items in reverse order, mapped back: any reordering would show
    direct = [v.score for v in judge.score_batch(list(zip(PROMPTS, COMPLETIONS))[::-1])][::-1]
    assert rewards == pytest.approx(direct, abs=1e-4)
    assert max(rewards) - min(rewards) > 0.05  # the check above is not vacuous
    assert all(1.0 <= r <= 5.0 for r in rewards)
    norm = flame_pointwise_reward(judge, normalize=True)(prompts=PROMPTS, completions=COMPLETIONS)
    assert norm == pytest.approx([(r - 1) / 4 for r in rewards], abs=1e-6)


def test_conversational_and_standard_inputs_agree(judge):
    fn = flame_pointwise_reward(judge)
    standard = fn(prompts=PROMPTS, completions=COMPLETIONS)
    conv = fn(prompts=[chat(p) for p in PROMPTS], completions=[chat(c, "assistant") for c in COMPLETIONS])
    assert conv == pytest.approx(standard, abs=1e-6)


def test_reference_mode_is_p_completion_beats_reference(judge):
    fn = flame_reference_reward(judge)
    assert fn.__name__ == "flame_reference"
    rewards = fn(prompts=PROMPTS, completions=COMPLETIONS, reference=REFS, trainer_state=None)
    direct = [v.score for v in judge.compare_batch(list(zip(PROMPTS, COMPLETIONS, REFS)))]
    assert rewards == pytest.approx(direct, abs=1e-4)
    assert all(0.0 <= r <= 1.0 for r in rewards)
    assert fn.last_cost["forwards"] >= 1 and fn.last_cost["judgments"] == 8
    # the column name is configurable, and a missing column is a clear error
    other = flame_reference_reward(judge, reference_column="solution")
    assert other(prompts=PROMPTS, completions=COMPLETIONS, solution=REFS) == pytest.approx(rewards, abs=1e-6)
    with pytest.raises(InvalidInput, match="'solution'.*did not pass.*reference"):
        other(prompts=PROMPTS, completions=COMPLETIONS, reference=REFS)


def test_group_win_rates_average_half_and_match_pairwise(judge):
    fn = flame_group_reward(judge)
    rewards = fn(prompts=PROMPTS, completions=COMPLETIONS)
    for start in (0, 4):
        group = rewards[start:start + 4]
        assert sum(group) == pytest.approx(2.0, abs=1e-9)  # n/2
        for i in range(4):
            others = [j for j in range(4) if j != i]
            pairs = [(PROMPTS[start], COMPLETIONS[start + i], COMPLETIONS[start + j]) for j in others]
            expected = sum(v.score for v in judge.compare_batch(pairs)) / 3
            assert group[i] == pytest.approx(expected, abs=1e-4)
    assert fn.last_cost["judgments"] == 12  # 2 groups x C(4,2) pairs, each in both orders


def test_group_bradley_terry_sums_to_zero_and_ranks_like_win_rate(judge):
    wr = flame_group_reward(judge)(prompts=PROMPTS, completions=COMPLETIONS)
    fn = flame_group_reward(judge, method="bradley_terry")
    assert fn.__name__ == "flame_group_bt"
    bt = fn(prompts=PROMPTS, completions=COMPLETIONS)
    for start in (0, 4):
        assert sum(bt[start:start + 4]) == pytest.approx(0.0, abs=1e-9)
        order_wr = sorted(range(4), key=lambda i: wr[start + i])
        order_bt = sorted(range(4), key=lambda i: bt[start + i])
        assert order_wr == order_bt


def test_bradley_terry_fits_known_strengths():
    # outcomes generated from strengths (1, 0, -1): the fit recovers them (prior -> 0)
    sig = lambda x: 1 / (1 + math.exp(-x))
    theta = {0: 1.0, 1: 0.0, 2: -1.0}
    pairs = {(i, j): sig(theta[i] - theta[j]) for i in range(3) for j in range(3) if i < j}
    fit = bradley_terry(pairs, [0, 1, 2], prior=1e-9)
    assert [fit[i] for i in range(3)] == pytest.approx([1.0, 0.0, -1.0], abs=1e-5)
    # a completion that wins everything with certainty stays finite thanks to the prior
    sure = bradley_terry({(0, 1): 1.0, (0, 2): 1.0, (1, 2): 0.5}, [0, 1, 2], prior=0.1)
    assert all(math.isfinite(v) for v in sure.values()) and sum(sure.values()) == pytest.approx(0, abs=1e-12)
    assert win_rates({}, [7]) == {7: 0.5} and bradley_terry({}, [7]) == {7: 0.0}


def test_group_layouts(judge):
    # online DPO passes [p1..pB, p1..pB]: grouping by prompt pairs each prompt's two samples
    prompts = [Q1, Q2, Q1, Q2]
    comps = ["4", "red", "5", "green"]
    fn = flame_group_reward(judge)
    r = fn(prompts=prompts, completions=comps)
    assert r[0] + r[2] == pytest.approx(1.0) and r[1] + r[3] == pytest.approx(1.0)
    assert r[0] == pytest.approx(judge.compare(Q1, "4", "5").score, abs=1e-4)
    # group_size: consecutive blocks, checked to share one prompt
    blocks = flame_group_reward(judge, group_size=4)
    assert blocks(prompts=PROMPTS, completions=COMPLETIONS) == pytest.approx(
        fn(prompts=PROMPTS, completions=COMPLETIONS), abs=1e-9)
    with pytest.raises(InvalidInput, match="group_size"):
        blocks(prompts=PROMPTS[:6], completions=COMPLETIONS[:6])
    with pytest.raises(InvalidInput, match="do not share one prompt"):
        flame_group_reward(judge, group_size=2)(prompts=prompts, completions=comps)


def test_identical_completions_tie_without_judge_work(judge):
    fn = flame_group_reward(judge)
    r = fn(prompts=[Q1] * 3, completions=["4", "4", "4"])
    assert r == [0.5, 0.5, 0.5] and fn.last_cost["forwards"] == 0
    # ... and that is what the core itself says for identical responses
    assert judge.compare(Q1, "4", "4").score == pytest.approx(0.5, abs=1e-6)


# -- bad input during training ------------------------------------------------------------------
BAD = {
    "none": None,
    "empty": "",
    "whitespace": "  \n ",
    "int": 42,
    "dict_without_content": {"text": "hi"},
    "message_with_int_content": [{"role": "assistant", "content": 3.5}],
    "message_not_a_dict": ["just a string in a list", 7],
}


@pytest.mark.parametrize("mode", ["pointwise", "reference", "group"])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_unjudgeable_completion_scores_none_and_others_are_unchanged(judge, mode, kind):
    fn = FlameRewardFunction(judge, mode=mode)
    good = fn(prompts=PROMPTS[:4], completions=COMPLETIONS[:4], reference=REFS[:4])
    comps = COMPLETIONS[:3] + [BAD[kind]]
    logged = {}
    rewards = fn(prompts=PROMPTS[:4], completions=comps, reference=REFS[:4],
                 log_metric=lambda k, v: logged.__setitem__(k, v))
    assert rewards[3] is None  # TRL turns it into NaN: no advantage, left out of the group baseline
    assert fn.last_invalid[0][0] == 3 and fn.last_invalid[0][1].startswith("completion: ")
    assert logged[f"{fn.__name__}/judge_invalid"] == 1.0
    if mode == "group":  # the tournament runs among the 3 readable ones: they average 0.5
        assert sum(rewards[:3]) == pytest.approx(1.5)
    else:
        assert rewards[:3] == pytest.approx(good[:3], abs=1e-4)


def test_invalid_score_floor_and_raise(judge):
    fn = flame_group_reward(judge, invalid_score=0.0)
    rewards = fn(prompts=PROMPTS[:4], completions=["4", None, "", "5"])
    assert rewards[1] == 0.0 and rewards[2] == 0.0 and rewards[0] + rewards[3] == pytest.approx(1.0)
    strict = flame_pointwise_reward(judge, on_invalid="raise")
    before = judge.scorer.cost.forwards
    with pytest.raises(InvalidInput, match=r"completion: is empty \(completion 2\)"):
        strict(prompts=PROMPTS[:4], completions=["4", "5", "", "6"])
    assert judge.scorer.cost.forwards == before  # failed before any judge work
    with pytest.raises(InvalidInput, match="prompts"):
        strict(prompts=PROMPTS[:3], completions=COMPLETIONS[:4])


def test_over_long_completion_is_truncated_never_the_instruction(judge):
    src = RecordingSource(judge)
    fn = flame_pointwise_reward(src)
    long = "word " * 3000  # far beyond the judge's max_length=512
    rewards = fn(prompts=[Q1, Q1], completions=[long, "4"])
    assert all(math.isfinite(r) for r in rewards)
    assert fn.last_cost["truncated"] == 1.0 and fn.last_invalid == []
    verdict = judge.score(Q1, long)
    assert verdict.truncated == ("response",) and rewards[0] == pytest.approx(verdict.score, abs=1e-4)


def test_over_long_prompt_is_unjudgeable_not_a_crash(judge):
    fn = flame_reference_reward(judge)
    huge = "Explain this: " + "token " * 2000  # the prompt is never truncated
    rewards = fn(prompts=[huge, Q1], completions=["ok", "4"], reference=["fine", "4"])
    assert rewards[0] is None and math.isfinite(rewards[1])
    assert fn.last_invalid[0][0] == 0 and fn.last_invalid[0][1].startswith("max_length")
    group = flame_group_reward(judge)
    rewards = group(prompts=[huge, huge, Q1, Q1], completions=["ok", "fine", "4", "5"])
    assert rewards[:2] == [None, None] and sum(rewards[2:]) == pytest.approx(1.0)


def test_to_text():
    assert to_text("hi", "x") == "hi"
    assert to_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
                   "x") == "ab"
    convo = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert to_text(convo, "x") == "system: Be brief.\n\nuser: Hi"
    call = [{"role": "assistant", "content": "", "tool_calls": [{"type": "function",
                                                                 "function": {"name": "add", "arguments": {"a": 1}}}]}]
    assert to_text(call, "x") == '[tool call] add({"a": 1})'


# -- cost, pickling, backends ---------------------------------------------------------------
def test_cost_reported_through_log_metric(judge):
    fn = flame_group_reward(judge, name="judge")
    logged = {}
    before = judge.scorer.cost.snapshot()
    fn(prompts=PROMPTS, completions=COMPLETIONS, log_metric=lambda k, v: logged.__setitem__(k, v), trainer_state=None)
    after = judge.scorer.cost.snapshot()
    assert set(logged) >= {f"judge/judge_{k}" for k in ("judgments", "forwards", "tokens", "seconds", "invalid", "truncated")}
    assert logged["judge/judge_forwards"] == after["forwards"] - before["forwards"] > 0
    assert logged["judge/judge_tokens"] == after["tokens"] - before["tokens"]
    assert logged["judge/judge_judgments"] == 12 and logged["judge/judge_seconds"] > 0
    assert fn.total_cost["forwards"] == logged["judge/judge_forwards"]


def test_pickle_roundtrip(judge):
    lazy = flame_pointwise_reward(judge_kwargs={"batch_size": 2})  # embedded default, not loaded yet
    blob = pickle.dumps(lazy)
    assert len(blob) < 10_000  # a model name and options, never weights
    copy = pickle.loads(blob)
    assert copy.__name__ == "flame_pointwise" and copy.holder.spec == (None, {"batch_size": 2})
    live = flame_group_reward(judge, method="bradley_terry")
    expected = live(prompts=PROMPTS, completions=COMPLETIONS)
    clone = pickle.loads(pickle.dumps(live))
    assert clone.__name__ == live.__name__
    assert clone(prompts=PROMPTS, completions=COMPLETIONS) == pytest.approx(expected, abs=1e-6)


class FakeRemote:
    """A remote scorer stand-in: only judge(task, examples); no cost counters."""

    def __init__(self):
        self.seen = []

    def judge(self, task, examples):
        self.seen.extend(examples)
        return [Verdict(task, "A", 0.25 if len(e["response_a"]) < len(e["response_b"]) else 0.75, {}, tokens=10)
                for e in examples]


def test_remote_source_plugs_in_without_changing_user_code():
    remote = FakeRemote()
    fn = flame_group_reward(remote)
    rewards = fn(prompts=[Q1] * 3, completions=["a", "bb", "ccc"])
    assert rewards == pytest.approx([0.25, 0.5, 0.75]) and sum(rewards) == pytest.approx(1.5)
    assert fn.last_cost["tokens"] == 30 and "forwards" not in fn.last_cost
    assert {(e["response_a"], e["response_b"]) for e in remote.seen} == {("a", "bb"), ("a", "ccc"), ("bb", "ccc")}

    class Broken(FakeRemote):
        def judge(self, task, examples):
            return []

    with pytest.raises(FlameRewardError, match="returned 0 verdicts for 3"):
        flame_group_reward(Broken())(prompts=[Q1] * 3, completions=["a", "bb", "ccc"])
    with pytest.raises(InvalidInput, match="judge"):
        FlameRewardFunction(object())


def test_async_twin_for_grpo(judge):
    from trl.trainer.utils import get_callable_name, is_async_callable

    fn = flame_pointwise_reward(judge)
    twin = fn.as_async()
    assert is_async_callable(twin) and not is_async_callable(fn)
    assert get_callable_name(twin) == get_callable_name(fn) == "flame_pointwise"
    out = asyncio.run(twin(prompts=PROMPTS, completions=COMPLETIONS))
    assert out == pytest.approx(fn(prompts=PROMPTS, completions=COMPLETIONS), abs=1e-9)
    pickle.loads(pickle.dumps(twin))


def test_bad_options():
    for kwargs, field in [({"mode": "ppo"}, "mode"), ({"method": "elo"}, "method"), ({"group_size": 0}, "group_size"),
                          ({"on_invalid": "ignore"}, "on_invalid"), ({"bt_prior": 0}, "bt_prior"),
                          ({"scale": (5, 1)}, "scale")]:
        with pytest.raises(InvalidInput, match=field):
            FlameRewardFunction(None, **kwargs)


# -- the judge contracts TRL removed ------------------------------------------------------------
def test_pairwise_judge_contract(judge):
    pj = FlamePairwiseJudge(judge)
    pairs = [["4", "5"], ["red", "green"], ["4", None]]
    prompts = [Q1, Q2, Q1]
    scores = pj.judge(prompts, pairs, return_scores=True)
    direct = [judge.compare(Q1, "4", "5").score, judge.compare(Q2, "red", "green").score]
    assert scores[:2] == pytest.approx(direct, abs=1e-4) and math.isnan(scores[2])
    idx = pj.judge(prompts, pairs, shuffle_order=False)
    assert idx == [0 if s >= 0.5 else 1 for s in direct] + [-1]
    assert pj.judge(prompts, pairs, shuffle_order=True) == idx  # both orders always scored


def test_rank_judge_for_best_of_n(judge):
    rj = FlameRankJudge(judge)
    cands = [COMPLETIONS[:4], COMPLETIONS[4:7] + [None]]
    ranks = rj.judge([Q1, Q2], cands)
    scores = rj.scores([Q1, Q2], cands)
    for row, sc in zip(ranks, scores):
        assert sorted(row) == list(range(len(sc)))
        valid = [s for s in sc if s is not None]
        assert [sc[k] for k in row[:len(valid)]] == sorted(valid, reverse=True)
    assert ranks[1][-1] == 3  # the unreadable candidate comes last
    wr = flame_group_reward(judge)(prompts=PROMPTS[:4], completions=COMPLETIONS[:4])
    assert scores[0] == pytest.approx(wr, abs=1e-4)  # same pairs, other batches
    point = FlameRankJudge(judge, method="pointwise").scores([Q1], [COMPLETIONS[:4]])[0]
    assert point == pytest.approx(flame_pointwise_reward(judge)(prompts=PROMPTS[:4], completions=COMPLETIONS[:4]),
                                  abs=1e-6)


def test_the_grpc_reward_client_is_a_verdict_source(judge):
    """The sidecar's RewardClient plugs in where the Autorater was, with no other change."""
    from flame_reward.sidecar.client import RewardClient  # grpcio is a core dependency: a failing import fails
    from tests.server_helpers import running_server

    local = flame_group_reward(judge)(prompts=PROMPTS, completions=COMPLETIONS)
    with running_server(judge) as (_, port), RewardClient(f"127.0.0.1:{port}", timeout=30) as client:
        fn = flame_group_reward(client)
        remote = fn(prompts=PROMPTS, completions=COMPLETIONS)
    assert remote == pytest.approx(local, abs=1e-4)
    assert fn.last_cost["judgments"] == 12 and fn.last_cost["tokens"] > 0  # counted from the verdicts
