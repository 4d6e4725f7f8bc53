"""Verdict scoring vs a naive generate-and-parse judge: same model, same 64 real pairs, one run.

    python benchmarks/score_throughput.py [--pairs 64] [--model M] [--out benchmarks/results]

What is compared (judgments per second, one judgment = one pair):
- flame-reward verdict scoring: both presentation orders, batched, one forward each with
  ``logits_to_keep=1`` (so it does twice the judging work of the naive judges);
- naive judge: one order, ``model.generate`` per pair (batch 1, greedy) and parse the
  text; once asking for the verdict only (<= 64 new tokens) and once with a rationale
  first (<= 256 new tokens), as generative judges usually do.
Writes a Markdown table and JSON under ``--out``. Figures depend on the machine: say where
they ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--skip-rationale", action="store_true", help="leave out the slow rationale-first naive judge")
    args = ap.parse_args()

    from flame_reward.autorater import Autorater
    from flame_reward.data import load_pairs
    from flame_reward.encoding import encode
    from flame_reward.errors import VerdictParseError
    from flame_reward.progress import progress_bar
    from flame_reward.tasks import get_task_type

    records = load_pairs("hh-helpful", split="dev").records
    random.Random(0).shuffle(records)
    records = records[: args.pairs]
    examples = [{"prompt": r.prompt, "response_a": r.response_a, "response_b": r.response_b} for r in records]
    judge = Autorater.from_pretrained(args.model, batch_size=args.batch_size, max_length=1024, threads=args.threads)
    task = get_task_type("pairwise")
    model, tok = judge.scorer.backend.model, judge.scorer.tokenizer

    def naive_one(ex: dict, rationale: bool, max_new: int) -> tuple[bool, int]:
        v = task.validate(ex)
        ids = encode(tok, task.render(v, rationale=rationale), task.truncatable(), 1024, max_new).ids
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=max_new, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, pad_token_id=tok.pad_token_id)
        gen = out[0, len(ids):]
        try:
            task.parse(tok.decode(gen, skip_special_tokens=True), v)
            return True, int(gen.numel())
        except VerdictParseError:
            return False, int(gen.numel())

    judge.compare_batch(examples[:2])  # warm-up
    # The three judges run interleaved, chunk by chunk, so that whatever else the machine
    # is doing slows them alike and the ratios stay meaningful on a shared machine.
    fast_s = short_s = long_s = 0.0
    short_ok = long_ok = short_tok = long_tok = 0
    verdicts = []
    chunk = args.batch_size
    bar = progress_bar(len(examples), "pairs (scoring + 2 naive judges, interleaved)")
    for start in range(0, len(examples), chunk):
        part = examples[start:start + chunk]
        t0 = time.perf_counter()
        verdicts += judge.judge("pairwise", part)
        fast_s += time.perf_counter() - t0
        for ex in part:
            t0 = time.perf_counter()
            ok, n_tok = naive_one(ex, False, 64)
            short_s += time.perf_counter() - t0
            short_ok += ok
            short_tok += n_tok
            if not args.skip_rationale:
                t0 = time.perf_counter()
                ok, n_tok = naive_one(ex, True, 256)
                long_s += time.perf_counter() - t0
                long_ok += ok
                long_tok += n_tok
        bar.update(len(part))
    bar.close()
    n = len(examples)
    rows = [
        ("flame-reward verdict scoring (both orders, batched)", fast_s, n, 0),
        ("naive generate+parse, verdict only (<=64 new tokens)", short_s, short_ok, short_tok),
    ]
    if not args.skip_rationale:
        rows.append(("naive generate+parse, rationale first (<=256 new tokens)", long_s, long_ok, long_tok))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}"
    lines = [f"Interleaved in one run. Same {n} hh-helpful dev pairs, {judge.model_name}, {judge.info['device']} fp32; {machine}.", "",
             "| judge | seconds | judgments/s | parsed verdicts | new tokens | verdict scoring is faster by |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, secs, ok, toks in rows:
        lines.append(f"| {name} | {secs:.1f} | {n / secs:.2f} | {ok}/{n} | {toks} | {secs / fast_s:.1f}x |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "score_throughput.md").write_text(table + "\n")
    (out / "score_throughput.json").write_text(json.dumps({
        "pairs": n, "machine": machine, "model": judge.model_name,
        "verdict_scoring_s": fast_s, "naive_verdict_only_s": short_s, "naive_rationale_s": long_s,
        "ratio_verdict_only": short_s / fast_s, "ratio_rationale": (long_s / fast_s) if long_s else None,
        "naive_parsed": {"verdict_only": short_ok, "rationale": long_ok},
        "mean_score": sum(v.score for v in verdicts) / n,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
