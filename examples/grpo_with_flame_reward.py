"""GRPO with a flame-reward judge as the reward function.

Runs end to end on a CPU in a few minutes with the embedded SmolLM2-135M-Instruct as both
policy and judge (2 optimizer steps by default)::

    python examples/grpo_with_flame_reward.py                         # pointwise, 2 steps
    python examples/grpo_with_flame_reward.py --mode group --method bradley_terry
    python examples/grpo_with_flame_reward.py --mode reference        # vs the dataset's "reference"

A real run on a GPU with bigger models (any HF causal LM works as policy or judge)::

    python examples/grpo_with_flame_reward.py --policy Qwen/Qwen2.5-1.5B-Instruct \
        --judge-model path/to/flame-judge --judge-adapter path/to/lora --mode group \
        --num-generations 8 --prompts-per-step 8 --max-completion-length 256 \
        --max-steps 500 --learning-rate 1e-6 --bf16 --lora-r 16 --dataset prompts.jsonl

Flags: ``--policy`` (HF dir or id; default the embedded model), ``--judge-model`` /
``--judge-adapter`` / ``--judge-device`` / ``--judge-batch-size`` / ``--judge-max-length``,
``--mode pointwise|reference|group``, ``--method win_rate|bradley_terry`` (group mode),
``--dataset`` (JSONL with ``prompt`` and, for reference mode, ``reference``; default: 8
built-in prompts), ``--num-generations``, ``--prompts-per-step``, ``--max-completion-length``,
``--max-steps``, ``--learning-rate``, ``--bf16`` (policy in bf16, for GPUs), ``--lora-r`` (train
a LoRA adapter instead of every weight), ``--async-reward`` (the reward runs concurrently
with other async rewards), ``--threads`` (torch CPU threads; ``1`` is several times faster
on a small, busy CPU), ``--output-dir``. It prints the judge's cost per GRPO step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

PROMPTS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is 12 times 3?", "12 times 3 is 36."),
    ("Give one tip for sleeping better.", "Keep a regular schedule: go to bed and get up at the same time every day."),
    ("Name a mammal that can fly.", "The bat is a mammal that can fly."),
    ("What does a thermometer measure?", "A thermometer measures temperature."),
    ("Translate 'thank you' into Spanish.", "'Thank you' in Spanish is 'gracias'."),
    ("Why is the sky blue?", "Sunlight scatters off air molecules, and blue light scatters the most."),
    ("Suggest a name for a pet goldfish.", "How about 'Bubbles'?"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default=None, help="policy model (HF dir or id); default: the embedded SmolLM2-135M")
    ap.add_argument("--judge-model", default=None, help="judge model (HF dir or id); default: the embedded default")
    ap.add_argument("--judge-adapter", default=None, help="PEFT LoRA directory for the judge")
    ap.add_argument("--judge-device", default=None, help="cpu / cuda (default: CUDA when present)")
    ap.add_argument("--judge-batch-size", type=int, default=8)
    ap.add_argument("--judge-max-length", type=int, default=1024)
    ap.add_argument("--mode", choices=["pointwise", "reference", "group"], default="pointwise")
    ap.add_argument("--method", choices=["win_rate", "bradley_terry"], default="win_rate")
    ap.add_argument("--dataset", default=None, help="JSONL with 'prompt' (and 'reference' for --mode reference)")
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--prompts-per-step", type=int, default=1)
    ap.add_argument("--max-completion-length", type=int, default=32)
    ap.add_argument("--max-steps", type=int, default=2)
    ap.add_argument("--learning-rate", type=float, default=1e-6)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice; 1 is much faster on a small, busy CPU)")
    ap.add_argument("--bf16", action="store_true", help="policy in bfloat16 (GPUs; very slow on most CPUs)")
    ap.add_argument("--lora-r", type=int, default=0, help="train a LoRA adapter of this rank (0: full fine-tune)")
    ap.add_argument("--async-reward", action="store_true", help="pass the async twin of the reward function")
    ap.add_argument("--output-dir", default="/tmp/flame_grpo_example")
    return ap.parse_args(argv)


def load_dataset(path: str | None):
    from datasets import Dataset

    if path is None:
        rows = [{"prompt": [{"role": "user", "content": p}], "reference": r} for p, r in PROMPTS]
    else:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return Dataset.from_list(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from trl import GRPOConfig, GRPOTrainer

    from flame_reward.models.embedded import embedded_model_dir
    from flame_reward.trl import FlameRewardFunction

    reward = FlameRewardFunction(
        args.judge_model, mode=args.mode, method=args.method,
        group_size=args.num_generations if args.mode == "group" else None,
        judge_kwargs={"adapter": args.judge_adapter, "device": args.judge_device,
                      "batch_size": args.judge_batch_size, "max_length": args.judge_max_length},
    )
    policy = args.policy or str(embedded_model_dir())
    cuda = torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=args.output_dir,
        per_device_train_batch_size=args.num_generations * args.prompts_per_step,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        bf16=args.bf16,
        use_cpu=not cuda,
        model_init_kwargs={"dtype": "bfloat16" if args.bf16 else "float32"},
        seed=0,
    )
    peft_config = None
    if args.lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=policy, reward_funcs=reward.as_async() if args.async_reward else reward,
                          args=config, train_dataset=load_dataset(args.dataset), peft_config=peft_config)
    setup = time.perf_counter() - start
    trainer.train()
    total = time.perf_counter() - start
    name = reward.__name__
    print(f"\npolicy={policy} judge={args.judge_model or 'embedded'} mode={args.mode}"
          + (f" method={args.method}" if args.mode == "group" else ""))
    print(f"{'step':>4} {'reward':>8} {'judgments':>9} {'forwards':>8} {'prefix':>6} {'tokens':>7} {'reused':>7} "
          f"{'judge_s':>7} {'step_s':>7}")
    for row in trainer.state.log_history:
        if f"{name}/judge_judgments" not in row:
            continue
        print(f"{row['step']:>4} {row[f'rewards/{name}/mean']:>8.4f} {row[f'{name}/judge_judgments']:>9.0f} "
              f"{row[f'{name}/judge_forwards']:>8.0f} {row.get(f'{name}/judge_prefix_forwards', 0):>6.0f} "
              f"{row[f'{name}/judge_tokens']:>7.0f} {row.get(f'{name}/judge_reused_tokens', 0):>7.0f} "
              f"{row[f'{name}/judge_seconds']:>7.2f} {row.get('step_time', float('nan')):>7.2f}")
    print(f"wall time: {total:.1f} s (setup incl. model loads {setup:.1f} s, training {total - setup:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
