"""``flame-reward self-taught`` and ``flame-reward meta-reward``: the self-improving loops."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.hookspecs import hookimpl


def _sets(value: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in value.split(",") if x.strip())
    if not names:
        raise InvalidInput("--dev-sets", "name at least one pairwise set")
    return names


def _adapter(value: str | None) -> str | None:
    return None if value in (None, "", "none") else value


def _common(p: argparse.ArgumentParser, source: str, source_help: str) -> None:
    p.add_argument("--out", required=True, help="run directory (iter-N/ per iteration, report.json/.md); rerun to resume")
    p.add_argument(f"--{source}", default="hh", help=source_help)
    p.add_argument("--iterations", type=int, default=1, help="iterations to run (default 1); raise it to continue a run")
    p.add_argument("--max-new-tokens", type=int, default=96, help="token budget of every generation (default 96)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--judge-temperature", type=float, default=0.8)
    p.add_argument("--dev-sets", type=_sets, default=("hh-helpful", "hh-harmless"),
                   help="human-labelled pairwise sets whose dev split measures the judge (default hh-helpful,hh-harmless)")
    p.add_argument("--dev-limit", type=int, default=40, help="first N dev pairs of each set (default 40)")
    p.add_argument("--templates", default=None, help="directory of .txt files overriding the shipped prompt templates")
    p.add_argument("--max-length", type=int, default=1024, help="token budget per judge task (default 1024)")
    p.add_argument("--batch-size", type=int, default=8, help="rows per generation / scoring batch (default 8)")
    p.add_argument("--epochs", type=float, default=None, help="training epochs per iteration")
    p.add_argument("--max-steps", type=int, default=-1, help="cap on training steps per iteration (default: none)")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--train-batch-size", type=int, default=None)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--top-layers", type=int, default=None, help="adapt only the top N layers (faster on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or step messages")


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("self-taught", help="Self-Taught Evaluator loop: synthetic pairs, filtered judgments, SFT.",
                              description="Improve a judge without human labels (Wang et al., 2024): synthetic preference "
                                          "pairs from 'similar but different' instructions, sampled rationale+verdict "
                                          "judgments kept when correct, LoRA SFT; repeat. See docs/self_improving.md.")
    p.add_argument("--judge", default=None, help="judge model: HF dir or id (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--judge-adapter", default="auto",
                   help="LoRA adapter the judge starts from ('auto': the shipped one if any; 'none': raw)")
    p.add_argument("--generator", default=None, help="model writing instructions and answers (default: the embedded default)")
    p.add_argument("--generator-adapter", default=None, help="LoRA adapter for the generator (default: none)")
    _common(p, "instructions", "instructions: hh (HH-RLHF train-split prompts), hh-helpful, hh-harmless, mt-bench, "
                               "or a JSONL/JSON file with a 'prompt' or 'instruction' field (default hh)")
    p.add_argument("--n-instructions", type=int, default=16, help="instructions per iteration (default 16)")
    p.add_argument("--samples", type=int, default=4, help="judgments sampled per pair and order (default 4)")
    p.add_argument("--generator-temperature", type=float, default=0.7)
    p.add_argument("--keep-per-order", type=int, default=1,
                   help="correct judgments kept per pair and order (default 1; 0 keeps all)")
    p.add_argument("--no-balance", dest="balance", action="store_false",
                   help="do not balance the kept verdicts between A and B")
    p.set_defaults(fn=run_self_taught_command)

    p = subparsers.add_parser("meta-reward", help="Meta-Rewarding loop: actor, judge and meta-judge in one model, DPO.",
                              description="One model as actor, judge and meta-judge (Wu et al., 2024): sampled responses "
                                          "scored by the model with rationales, judgments compared by the model as "
                                          "meta-judge, actor and judge preference pairs (length-controlled) trained with "
                                          "TRL's DPOTrainer and LoRA. See docs/self_improving.md.")
    p.add_argument("--model", default=None, help="HF dir or id (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--adapter", default="auto", help="LoRA adapter to start from ('auto' / 'none' / a directory)")
    _common(p, "prompts", "prompts: hh, hh-helpful, hh-harmless, mt-bench, or a JSONL/JSON file with a 'prompt' or "
                          "'instruction' field (default hh)")
    p.add_argument("--n-prompts", type=int, default=16, help="prompts per iteration (default 16)")
    p.add_argument("--responses", type=int, default=4, help="actor responses per prompt (default 4)")
    p.add_argument("--judge-samples", type=int, default=3, help="judgments sampled per response (default 3)")
    p.add_argument("--actor-temperature", type=float, default=0.8)
    p.add_argument("--tier", type=float, default=0.25,
                   help="length control: top/bottom tier width as a fraction of the score range (default 0.25)")
    p.add_argument("--max-length-ratio", type=float, default=2.0,
                   help="drop pairs whose chosen text is over this many times longer than the rejected (default 2; 0 = off)")
    p.add_argument("--meta-margin", type=float, default=0.0,
                   help="judge pairs need |P(first judgment better) - 0.5| > margin (default 0)")
    p.add_argument("--meta-eval-pairs", type=int, default=8,
                   help="dev pairs per set for the meta-judge's agreement with human labels (default 8; 0 = off)")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta (default 0.1)")
    p.set_defaults(fn=run_meta_reward_command)


def _print(result: dict[str, Any]) -> None:
    print(result["table"])
    print(f"\nreport: {result['out']}/report.json, {result['out']}/report.md", file=sys.stderr)


def run_self_taught_command(args: argparse.Namespace) -> int:
    from flame_reward.selfimprove.self_taught import SelfTaughtConfig, run_self_taught
    from flame_reward.selfimprove.settings import shared_settings

    cfg = SelfTaughtConfig(
        out=args.out, instructions=args.instructions, judge=args.judge, judge_adapter=_adapter(args.judge_adapter),
        generator=args.generator, generator_adapter=_adapter(args.generator_adapter),
        n_instructions=args.n_instructions, samples=args.samples, generator_temperature=args.generator_temperature,
        keep_per_order=args.keep_per_order, balance=args.balance,
        epochs=2.0 if args.epochs is None else args.epochs, learning_rate=5e-4 if args.lr is None else args.lr,
        train_batch_size=args.train_batch_size or 4, **shared_settings(args),
    )
    _print(run_self_taught(cfg))
    return 0


def run_meta_reward_command(args: argparse.Namespace) -> int:
    from flame_reward.selfimprove.meta_reward import MetaRewardConfig, run_meta_reward
    from flame_reward.selfimprove.settings import shared_settings

    cfg = MetaRewardConfig(
        out=args.out, prompts=args.prompts, model=args.model, adapter=_adapter(args.adapter),
        n_prompts=args.n_prompts, responses=args.responses, judge_samples=args.judge_samples,
        actor_temperature=args.actor_temperature, tier=args.tier, max_length_ratio=args.max_length_ratio or None,
        meta_margin=args.meta_margin, meta_eval_pairs=args.meta_eval_pairs,
        epochs=1.0 if args.epochs is None else args.epochs, learning_rate=5e-5 if args.lr is None else args.lr,
        beta=args.beta, train_batch_size=args.train_batch_size or 2, **shared_settings(args),
    )
    _print(run_meta_reward(cfg))
    return 0
