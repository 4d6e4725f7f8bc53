"""Real TRL trainers (GRPO, RLOO) for 2 optimizer steps with the flame reward function.

Policy: a tiny random Llama with the real SmolLM2 tokenizer; judge: a tiny random Llama with
spread-out verdicts, wrapped in a recording VerdictSource. A zero-weighted spy reward
records what the trainer passes, so we can check the judge saw exactly that.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from flame_reward.trl import flame_group_reward, flame_pointwise_reward
from tests.trl_helpers import (  # noqa: F401
    Recorder,
    RecordingSource,
    Spy,
    one_torch_thread,
    spread_judge,
    texts,
)

PROMPTS = ["What is 2+2?", "Name a primary colour.", "Say hello.", "Count to three."]
COMMON = {"max_completion_length": 6, "max_steps": 2, "logging_steps": 1, "report_to": [], "use_cpu": True,
              "save_strategy": "no", "learning_rate": 1e-3, "seed": 0, "bf16": False, "temperature": 1.0}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def policy(tokenizer):
    from tests.conftest import make_tiny_loaded

    return make_tiny_loaded(tokenizer, seed=1).model.train()


def _check_trainer_batches(spy, recorder, source, task):
    """Per reward call: finite rewards, one per completion, and the judge saw the trainer's texts."""
    assert len(spy.calls) == len(recorder.outputs) == len(source.calls) >= 2
    for seen, rewards, (judged_task, examples) in zip(spy.calls, recorder.outputs, source.calls):
        assert judged_task == task
        assert len(rewards) == len(seen["completions"]) and all(math.isfinite(r) for r in rewards)
        pairs = list(zip(texts(seen["prompts"]), texts(seen["completions"])))
        if task == "pointwise":
            assert {(e["prompt"], e["response"]) for e in examples} == set(pairs)
        else:
            expected = {(p, a, b) for k, (p, a) in enumerate(pairs) for (q, b) in pairs[k + 1:] if p == q and a != b}
            assert {(e["prompt"], e["response_a"], e["response_b"]) for e in examples} == expected
    return pairs


def test_grpo_group_mode_two_steps(tokenizer, policy):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    judge = spread_judge(tokenizer)
    source = RecordingSource(judge)
    reward = Recorder(flame_group_reward(source, group_size=4))
    spy = Spy()
    args = GRPOConfig(output_dir="/tmp/flame_trl_test_grpo", per_device_train_batch_size=8, num_generations=4,
                      reward_weights=[1.0, 0.0], **COMMON)
    trainer = GRPOTrainer(model=policy, reward_funcs=[reward, spy], args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]))
    trainer.train()
    assert trainer.state.global_step == 2
    _check_trainer_batches(spy, reward, source, "pairwise")
    for seen, rewards in zip(spy.calls, reward.outputs):
        assert len(rewards) == 8
        groups = [rewards[s:s + 4] for s in (0, 4)]
        assert [len(set(seen["prompts"][s:s + 4])) for s in (0, 4)] == [1, 1]  # GRPO's layout: blocks of 4
        for g in groups:
            assert sum(g) == pytest.approx(2.0, abs=1e-6)  # win rates in a group of n sum to n/2
        # order: recompute one member's win rate straight from the core
        p, cs = seen["prompts"][0], seen["completions"][:4]
        direct = sum(judge.compare(p, cs[0], c).score if c != cs[0] else 0.5 for c in cs[1:]) / 3
        assert rewards[0] == pytest.approx(direct, abs=1e-4)
    logs = trainer.state.log_history[0]
    assert logs["rewards/flame_group_winrate/mean"] == pytest.approx(0.5, abs=1e-6)
    assert logs["flame_group_winrate/judge_forwards"] >= 1 and logs["flame_group_winrate/judge_tokens"] > 0
    # the raw judge has no verdict heads: TRL's logs say none took part
    assert logs["flame_group_winrate/judge_head_share"] == 0.0
    assert logs["flame_group_winrate/judge_head_verdicts"] == 0


def test_rloo_pointwise_conversational_two_steps(tokenizer, policy):
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    judge = spread_judge(tokenizer)
    source = RecordingSource(judge)
    reward = Recorder(flame_pointwise_reward(source))
    spy = Spy()
    args = RLOOConfig(output_dir="/tmp/flame_trl_test_rloo", per_device_train_batch_size=4, num_generations=2, beta=0.0,
                      reward_weights=[1.0, 0.0], **COMMON)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}], "id": k} for k, p in enumerate(PROMPTS)])
    # beta=0: RLOO would otherwise reload a reference model from the policy's hub id (it has none)
    trainer = RLOOTrainer(model=policy, reward_funcs=[reward, spy], args=args, processing_class=tokenizer,
                          train_dataset=data)
    trainer.train()
    assert trainer.state.global_step == 2
    pairs = _check_trainer_batches(spy, reward, source, "pointwise")
    seen = spy.calls[-1]
    assert isinstance(seen["prompts"][0], list) and seen["completions"][0][0]["role"] == "assistant"
    assert {"id", "trainer_state", "log_metric", "completion_ids"} <= set(seen["columns"])
    direct = [v.score for v in judge.score_batch(pairs[::-1])][::-1]
    assert reward.outputs[-1] == pytest.approx(direct, abs=1e-4)
    assert Counter(p for p, _ in pairs).most_common(1)[0][1] == 2  # num_generations per prompt
    assert any("flame_pointwise/judge_forwards" in row for row in trainer.state.log_history)


def test_grpo_async_twins_share_one_judge(tokenizer, policy):
    """GRPO runs async reward functions concurrently: two on one in-process judge take turns
    (a lock per scorer), and each reports only its own judge work."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    judge = spread_judge(tokenizer)
    point, group = flame_pointwise_reward(judge), flame_group_reward(judge, group_size=4)
    args = GRPOConfig(output_dir="/tmp/flame_trl_test_grpo_async", per_device_train_batch_size=8, num_generations=4,
                      **COMMON)
    trainer = GRPOTrainer(model=policy, reward_funcs=[point.as_async(), group.as_async()], args=args,
                          processing_class=tokenizer, train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]))
    trainer.train()
    assert trainer.state.global_step == 2
    rows = [r for r in trainer.state.log_history if "flame_pointwise/judge_judgments" in r]
    assert len(rows) == 2
    for row in rows:
        assert row["flame_pointwise/judge_judgments"] <= 8  # 8 completions (duplicates judged once)
        assert row["flame_group_winrate/judge_judgments"] <= 12  # 2 groups x C(4,2) pairs
        assert row["rewards/flame_group_winrate/mean"] == pytest.approx(0.5, abs=1e-6)
    spent = judge.scorer.cost.snapshot()["judgments"]
    assert point.total_cost["judgments"] + group.total_cost["judgments"] == spent


def test_grpo_logs_say_a_trained_head_took_part(tokenizer, policy):
    """Through GRPO's own ``log_metric``: every verdict under a head's exact criteria is a
    head verdict (share 1.0); the same judge under other criteria gives the raw model's (0.0)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from tests.head_helpers import CLARITY, headed_judge

    judge = headed_judge(tokenizer)
    on = flame_pointwise_reward(judge, criteria=CLARITY, name="on_route")
    off = flame_pointwise_reward(judge, criteria="Rate the response.", name="off_route")
    args = GRPOConfig(output_dir="/tmp/flame_trl_test_grpo_heads", per_device_train_batch_size=4, num_generations=2,
                      **COMMON)
    trainer = GRPOTrainer(model=policy, reward_funcs=[on, off], args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]))
    trainer.train()
    rows = [r for r in trainer.state.log_history if "on_route/judge_head_share" in r]
    assert len(rows) == 2
    for row in rows:
        assert row["on_route/judge_head_share"] == 1.0 and row["on_route/judge_head_verdicts"] == 4
        assert row["off_route/judge_head_share"] == 0.0 and row["off_route/judge_head_verdicts"] == 0
