"""The README's main job: judge real human-labelled pairs and print accuracy and consistency."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

from flame_reward.eval.metrics import pairwise_metrics, score_accuracy
from flame_reward.eval.pairs import pair_example
from flame_reward.results import Verdict


def run_demo(args: argparse.Namespace) -> int:
    from flame_reward.autorater import Autorater
    from flame_reward.data import load_pairs

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    per_set = max(1, args.n // len(sets))
    chosen: dict[str, list[Any]] = {}
    for name in sets:
        result = load_pairs(name, split=args.split)
        records = [r for r in result.records if r.label != "tie"]
        random.Random(args.seed).shuffle(records)
        chosen[name] = records[:per_set]
        print(f"{name}: {len(chosen[name])} pairs from the {args.split} split "
              f"({len(result.records)} readable, {len(result.bad)} unreadable rows)", file=sys.stderr)
    judge = Autorater.from_pretrained(
        args.model, adapter=args.adapter, device=args.device, dtype=args.dtype,
        batch_size=args.batch_size, max_length=args.max_length, threads=args.threads,
        backend=getattr(args, "backend", "torch"), quantize=getattr(args, "quantize", None),
    )
    print(f"judge: {judge.model_name} on {judge.info['device']} ({judge.info['dtype']})", file=sys.stderr)
    rows = []
    all_verdicts, all_labels = [], []
    started = time.perf_counter()
    for name, records in chosen.items():
        t0 = time.perf_counter()
        # pair_example carries the set's own criteria (HH helpful vs harmless), as in training.
        verdicts = judge.judge("pairwise", [pair_example(r) for r in records], progress=True)
        labels = [r.label for r in records]
        m = pairwise_metrics(verdicts, labels)
        rows.append((name, m, time.perf_counter() - t0))
        all_verdicts += verdicts
        all_labels += labels
    total = pairwise_metrics(all_verdicts, all_labels)
    elapsed = time.perf_counter() - started
    rows.append(("all", total, elapsed))
    by_set = _by_set(chosen, all_verdicts, all_labels)
    raw_acc = {name: raw_accuracy(vs, ls) for name, vs, ls in by_set}
    heads = {name: sum(1 for v in vs if v.head) for name, vs, _ in by_set}
    header = (f"{'set':<22}{'pairs':>6}{'raw acc':>9}{'accuracy':>10}{'acc(AB)':>9}{'acc(BA)':>9}{'consistent':>12}"
              f"{'picks 1st':>11}{'head':>6}{'sec':>7}")
    print(header)
    print("-" * len(header))
    for name, m, secs in rows:
        print(f"{name:<22}{m.pairs:>6}{raw_acc[name]:>9.3f}{m.accuracy:>10.3f}{m.accuracy_first_order:>9.3f}"
              f"{m.accuracy_second_order:>9.3f}{m.position_consistency:>12.3f}{m.prefers_first_position:>11.3f}"
              f"{heads[name]:>6}{secs:>7.0f}")
    print(f"\naccuracy = debiased P(human-preferred response) > 0.5 over both presentation orders (raw acc: "
          f"the raw model's verdict from the same forward pass, no trained head); consistent = same preference "
          f"in both orders; head = verdicts a trained head took part in. {len(all_verdicts)} pairs, "
          f"{len(all_verdicts) / elapsed:.2f} pairs/s, judge={judge.model_name}"
          f"{' + ' + str(judge.info['adapter']) if judge.info.get('adapter') else ''}.")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"judge": judge.info, "split": args.split, "seed": args.seed,
                       "sets": {name: {**m.to_dict(), "raw_accuracy": raw_acc[name], "head_verdicts": heads[name],
                                       "seconds": secs} for name, m, secs in rows}}, fh, indent=2)
    return 0


def _by_set(chosen: dict[str, list[Any]], verdicts: list[Any],
            labels: list[str]) -> list[tuple[str, list[Any], list[str]]]:
    """Each set's verdicts and labels (in the order judged), then all of them as ``all``."""
    out, at = [], 0
    for name, records in chosen.items():
        out.append((name, verdicts[at:at + len(records)], labels[at:at + len(records)]))
        at += len(records)
    return [*out, ("all", verdicts, labels)]


def raw_accuracy(verdicts: list[Any], labels: list[str]) -> float:
    """Accuracy of the raw model's debiased verdict: ``raw_score`` where a head took part."""
    kept = [(v, label) for v, label in zip(verdicts, labels) if isinstance(v, Verdict)]
    return score_accuracy([v.score if v.raw_score is None else v.raw_score for v, _ in kept],
                          [label for _, label in kept])
