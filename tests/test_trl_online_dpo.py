"""Online DPO (trl.experimental.online_dpo) for 2 optimizer steps with the flame group reward:
the nearest real path to TRL <= 1.0's ``OnlineDPOTrainer(judge=PairRMJudge())``."""

from __future__ import annotations

import math

import pytest

from flame_reward.trl import flame_group_reward
from tests.trl_helpers import (  # noqa: F401
    Recorder,
    RecordingSource,
    Spy,
    one_torch_thread,
    spread_judge,
    texts,
)

PROMPTS = ["What is 2+2?", "Name a primary colour.", "Say hello.", "Count to three."]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_online_dpo_group_reward_is_a_pairwise_judge(tokenizer):
    import warnings

    from datasets import Dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" warning
        from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer
    from tests.conftest import make_tiny_loaded

    judge = spread_judge(tokenizer)
    source = RecordingSource(judge)
    reward = Recorder(flame_group_reward(source))
    spy = Spy()
    policy = make_tiny_loaded(tokenizer, seed=1).model.train()
    args = OnlineDPOConfig(output_dir="/tmp/flame_trl_test_odpo", per_device_train_batch_size=2, max_new_tokens=6,
                           max_steps=2, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                           learning_rate=1e-3, seed=0, bf16=False, reward_weights=[1.0, 0.0])
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in PROMPTS])
    trainer = OnlineDPOTrainer(model=policy, reward_funcs=[reward, spy], args=args, processing_class=tokenizer,
                               train_dataset=data)
    trainer.train()
    assert trainer.state.global_step == 2
    assert len(spy.calls) == len(reward.outputs) == len(source.calls) == 2
    for seen, rewards, (task, examples) in zip(spy.calls, reward.outputs, source.calls):
        # online DPO: 2 samples per prompt laid out [p1, p2, p1, p2]
        prompts, comps = texts(seen["prompts"]), texts(seen["completions"])
        assert len(rewards) == 4 and all(math.isfinite(r) for r in rewards)
        assert prompts[:2] == prompts[2:] and prompts[0] != prompts[1]
        judged = {(e["prompt"], e["response_a"], e["response_b"]) for e in examples}
        assert task == "pairwise"
        assert judged == {(prompts[k], comps[k], comps[k + 2]) for k in range(2) if comps[k] != comps[k + 2]}
        for k in range(2):  # each pair sums to 1 and is P(first sample beats second), straight from the core
            assert rewards[k] + rewards[k + 2] == pytest.approx(1.0, abs=1e-9)
            direct = judge.compare(prompts[k], comps[k], comps[k + 2]).score if comps[k] != comps[k + 2] else 0.5
            assert rewards[k] == pytest.approx(direct, abs=1e-4)
    # online DPO does not pass log_metric; the cost is still on the reward function
    assert reward.fn.total_cost["judgments"] >= 1 and reward.fn.total_cost["forwards"] >= 1
    assert "objective/scores_margin" in trainer.state.log_history[0]
