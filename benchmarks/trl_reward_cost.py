"""Judge cost of one GRPO step, per reward mode: a group of G completions for one prompt.

    python benchmarks/trl_reward_cost.py [--group 8] [--max-new-tokens 32] [--judge-model M] [--threads N] [--out FILE]

The G completions are sampled (seeded) from the embedded SmolLM2-135M-Instruct as the policy,
for the first prompt of examples/grpo_with_flame_reward.py; each mode's reward function is then
called once on them, exactly as GRPOTrainer calls it (conversational prompt and completions,
the dataset's ``reference`` column). Reported per mode: judgments (verdicts computed), judge
forwards (batched passes, judge batch size 8; "+ prefix": passes that computed a prefix shared
by several rows, when the core shares prefixes), tokens of the scored rows (and how many of
them were served from a shared prefix instead of recomputed), wall seconds and
process CPU seconds (CPU time is the steadier figure on a shared machine). Figures depend on
the machine: say where they ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

MODES = [("pointwise", {}), ("reference", {}), ("group", {"method": "win_rate"}),
         ("group", {"method": "bradley_terry"})]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--group", type=int, default=8, help="completions per prompt (GRPO num_generations)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--judge-model", default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is much faster on a busy CPU)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import torch
    from grpo_with_flame_reward import PROMPTS

    if args.threads:
        torch.set_num_threads(args.threads)

    from flame_reward.autorater import Autorater
    from flame_reward.encoding import prompt_string
    from flame_reward.trl import FlameRewardFunction

    judge = Autorater.from_pretrained(args.judge_model, batch_size=args.batch_size, max_length=1024)
    # the embedded model as the policy, used here only to sample the completions
    policy = judge if args.judge_model is None else Autorater.from_pretrained(None)
    tok = policy.scorer.tokenizer
    prompt, reference = PROMPTS[0]
    ids = tok(prompt_string(tok, prompt), add_special_tokens=False)["input_ids"]
    rows = policy.scorer.backend.generate([ids], max_new_tokens=args.max_new_tokens, temperature=1.0,
                                          num_samples=args.group, seed=0)
    completions = [[{"role": "assistant", "content": tok.decode(r, skip_special_tokens=True)}] for r in rows]
    prompts = [[{"role": "user", "content": prompt}]] * args.group
    results = []
    for mode, extra in MODES:
        fn = FlameRewardFunction(judge, mode=mode, **extra)
        wall, cpu = time.perf_counter(), time.process_time()
        rewards = fn(prompts=prompts, completions=completions, reference=[reference] * args.group,
                     completion_ids=rows, trainer_state=None)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        results.append({"mode": fn.__name__, "judgments": fn.last_cost["judgments"],
                        "forwards": fn.last_cost["forwards"], "tokens": fn.last_cost["tokens"],
                        "prefix_forwards": fn.last_cost.get("prefix_forwards", 0.0),
                        "reused_tokens": fn.last_cost.get("reused_tokens", 0.0),
                        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                        "rewards": [round(r, 4) if r is not None else None for r in rewards]})
    lengths = [len(r) for r in rows]
    print(f"group of {args.group} completions ({min(lengths)}-{max(lengths)} tokens), judge "
          f"{judge.model_name} on {judge.info.get('device')}, batch size {args.batch_size}, "
          f"{platform.processor() or platform.machine()} x{os.cpu_count()}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| reward | judgments | forwards (+ prefix) | tokens (reused from shared prefixes) | wall s | CPU s |\n"
          "|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['judgments']:.0f} | {r['forwards']:.0f} (+{r['prefix_forwards']:.0f}) | "
              f"{r['tokens']:.0f} ({r['reused_tokens']:.0f}) | {r['wall_s']} | {r['cpu_s']} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"group": args.group, "completion_tokens": lengths,
                                              "load_average": os.getloadavg()[0], "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
