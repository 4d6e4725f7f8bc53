"""Online DPO with a flame-reward pairwise judge.

TRL <= 1.0 took ``OnlineDPOTrainer(judge=PairRMJudge())``; TRL 1.1 removed ``trl.judges`` and
the ``judge=`` argument, and online DPO now lives in ``trl.experimental.online_dpo`` and takes
``reward_funcs``. The nearest real path: ``flame_group_reward()``. Online DPO samples two
completions per prompt; group mode compares them (both presentation orders) and gives each
P(it beats the other), so the pair's rewards sum to 1 and the trainer's chosen one is the
judge's preferred one, as with the old pairwise judge.

Runs end to end on a CPU with the embedded SmolLM2-135M-Instruct as policy and judge::

    python examples/online_dpo_with_flame_judge.py                  # 2 steps

A real run on a GPU with bigger models::

    python examples/online_dpo_with_flame_judge.py --policy Qwen/Qwen2.5-1.5B-Instruct \
        --judge-model path/to/flame-judge --judge-adapter path/to/lora --batch-size 8 \
        --max-new-tokens 256 --max-steps 1000 --learning-rate 5e-7 --bf16 --lora-r 16 \
        --dataset prompts.jsonl

Flags: ``--policy``, ``--judge-model`` / ``--judge-adapter`` / ``--judge-device`` /
``--judge-batch-size`` / ``--judge-max-length``, ``--dataset`` (JSONL with ``prompt``; default:
the 8 built-in prompts of the GRPO example), ``--batch-size`` (prompts per step),
``--max-new-tokens``, ``--max-steps``, ``--learning-rate``, ``--beta``, ``--bf16``,
``--lora-r``, ``--threads`` (torch CPU threads), ``--output-dir``. It also shows the old
judge contract (``FlamePairwiseJudge``) on two pairs, for users who run their own loop.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default=None, help="policy model (HF dir or id); default: the embedded SmolLM2-135M")
    ap.add_argument("--judge-model", default=None, help="judge model (HF dir or id); default: the embedded default")
    ap.add_argument("--judge-adapter", default=None)
    ap.add_argument("--judge-device", default=None)
    ap.add_argument("--judge-batch-size", type=int, default=8)
    ap.add_argument("--judge-max-length", type=int, default=1024)
    ap.add_argument("--dataset", default=None, help="JSONL with a 'prompt' column")
    ap.add_argument("--batch-size", type=int, default=2, help="prompts per step (2 completions each)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--max-steps", type=int, default=2)
    ap.add_argument("--learning-rate", type=float, default=5e-7)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice; 1 is much faster on a small, busy CPU)")
    ap.add_argument("--bf16", action="store_true", help="policy in bfloat16 (GPUs)")
    ap.add_argument("--lora-r", type=int, default=0, help="train a LoRA adapter of this rank (0: full fine-tune)")
    ap.add_argument("--output-dir", default="/tmp/flame_online_dpo_example")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*experimental.*")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from grpo_with_flame_reward import load_dataset

    from flame_reward.models.embedded import embedded_model_dir
    from flame_reward.trl import FlamePairwiseJudge, flame_group_reward

    judge_kwargs = {"adapter": args.judge_adapter, "device": args.judge_device,
                    "batch_size": args.judge_batch_size, "max_length": args.judge_max_length}
    reward = flame_group_reward(args.judge_model, judge_kwargs=judge_kwargs, name="flame_pairwise")
    policy_path = args.policy or str(embedded_model_dir())
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    policy = AutoModelForCausalLM.from_pretrained(policy_path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(policy_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = OnlineDPOConfig(
        output_dir=args.output_dir, per_device_train_batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        max_steps=args.max_steps, learning_rate=args.learning_rate, beta=[args.beta], logging_steps=1, report_to=[],
        save_strategy="no", bf16=args.bf16, use_cpu=not cuda, seed=0,
    )
    peft_config = None
    if args.lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    dataset = load_dataset(args.dataset).select_columns(["prompt"])
    trainer = OnlineDPOTrainer(model=policy, reward_funcs=reward, args=config, train_dataset=dataset,
                               processing_class=tokenizer, peft_config=peft_config)
    setup = time.perf_counter() - start
    trainer.train()
    train_end = time.perf_counter()
    print(f"\npolicy={policy_path} judge={args.judge_model or 'embedded'}")
    print(f"{'step':>4} {'scores':>7} {'margin':>7} {'loss':>7}")
    for row in trainer.state.log_history:
        if "objective/scores" in row:
            print(f"{row['step']:>4} {row['objective/scores']:>7.4f} {row['objective/scores_margin']:>7.4f} "
                  f"{row['loss']:>7.4f}")
    cost = reward.total_cost
    steps = max(trainer.state.global_step, 1)
    print(f"judge per step: {cost['judgments'] / steps:.1f} judgments, {cost['forwards'] / steps:.1f} forwards, "
          f"{cost['tokens'] / steps:.0f} tokens, {cost['seconds'] / steps:.2f} s")

    # The old judge contract, for your own loop: which of two completions is better?
    pairwise = FlamePairwiseJudge(args.judge_model, judge_kwargs=judge_kwargs)  # shares the loaded judge
    prompts = [r["prompt"] for r in dataset.select(range(2))]
    pairs = [["Paris.", "I think it might be Lyon."], ["36", "It is 15."]]
    print("FlamePairwiseJudge:", pairwise.judge(prompts, pairs), pairwise.judge(prompts, pairs, return_scores=True))
    total = time.perf_counter() - start
    print(f"wall time: {total:.1f} s (setup incl. model loads {setup:.1f} s, training {train_end - start - setup:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
