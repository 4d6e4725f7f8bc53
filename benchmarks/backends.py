"""Backends and prefix sharing, all in one run on the same real pairs (interleaved rounds).

    python benchmarks/backends.py [--pairs 200] [--rounds 10] [--groups 12] [--threads 1]
                                  [--onnx-dir DIR] [--int8-keep-fp32 down_proj] [--out benchmarks/results]

Pairs: ``--pairs`` HH-RLHF dev pairs, half hh-helpful and half hh-harmless (seeded
shuffle, ties dropped), judged in both orders by the embedded default with
- torch fp32, prefix sharing off (the plain forward pass; the baseline),
- torch fp32 with prefix sharing (the default: the instruction is computed once per
  batch, and instruction + prompt once per pair),
- ONNX Runtime fp32 and ONNX Runtime int8 (``flame-reward export-onnx --quantize int8``),
  and an int8 graph keeping ``--int8-keep-fp32`` layers (default: the MLP down projection)
  in fp32, the more accurate, slower choice.
Reported: judgments/s (one judgment = one pair, both orders), pairwise accuracy against
the human label, and agreement with the torch fp32 verdicts (|P(A) difference|, same label).

Groups: ``--groups`` HH prompts x 8 candidate responses (the pair's two responses and six
responses drawn from other pairs), pointwise 1-5, one ``judge()`` call per group as a GRPO
reward call makes it, torch fp32 with and without prefix sharing (and ONNX int8 for scale).

The machine is shared: every round runs every variant on the same slice, rotating which
goes first, so background load hits the variants alike; the load average is recorded.
Writes ``backends.md`` and ``backends.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _machine(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, {threads} threads per variant; torch {torch.__version__}, "
            f"onnxruntime {onnxruntime.__version__}")


def _partial_int8(src: Path, target: Path, keep: tuple[str, ...]) -> str:
    """A copy of the export whose int8 graph keeps the ``keep`` linear layers fp32."""
    from flame_reward.models.onnx_export import _graph_entry, quantize_int8
    from flame_reward.models.onnx_format import MANIFEST

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("model.int8.onnx*"))
    manifest = json.loads((target / MANIFEST).read_text())
    info = quantize_int8(target / "model.onnx", target / "model.int8.onnx", keep_fp32=keep)
    manifest["graphs"]["int8"] = {**_graph_entry(target / "model.int8.onnx"), "quantization": info}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return str(target)


def _rotate(items: list[Any], k: int) -> list[Any]:
    k %= len(items)
    return items[k:] + items[:k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--groups", type=int, default=12, help="prompts with 8 candidates each (0: skip)")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1,
                    help="threads per variant (default 1: on a shared, oversubscribed CPU, 2 OpenMP threads "
                         "spent most of their time waiting at barriers)")
    ap.add_argument("--onnx-dir", default=None, help="an export-onnx directory with int8 (default: export once into the cache)")
    ap.add_argument("--int8-keep-fp32", default="down_proj", metavar="NAMES",
                    help="also run an int8 graph keeping these linear layers fp32 (default down_proj; '' to skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()

    from flame_reward.autorater import Autorater
    from flame_reward.data import load_pairs
    from flame_reward.eval.metrics import pairwise_metrics
    from flame_reward.models.onnx_export import cached_export

    per_set = args.pairs // 2
    records = []
    for name in ("hh-helpful", "hh-harmless"):
        recs = [r for r in load_pairs(name, split="dev").records if r.label != "tie"]
        random.Random(args.seed).shuffle(recs)
        records += recs[:per_set]
    pairs = [{"prompt": r.prompt, "response_a": r.response_a, "response_b": r.response_b} for r in records]
    labels = [r.label for r in records]

    onnx_dir = args.onnx_dir or str(cached_export(None, quantize="int8"))
    common = {"batch_size": args.batch_size, "max_length": args.max_length, "threads": args.threads}
    torch_plain = Autorater.from_pretrained(None, **common)
    torch_plain.scorer.prefix_min_tokens = None
    torch_shared = Autorater.from_pretrained(None, **common)
    ort32 = Autorater.from_pretrained(onnx_dir, backend="onnx", **common)
    ort8 = Autorater.from_pretrained(onnx_dir, backend="onnx", quantize="int8", **common)
    variants = {"torch fp32": torch_plain, "torch fp32 + prefix sharing": torch_shared,
                "ORT fp32": ort32, "ORT int8": ort8}
    scratch = Path(tempfile.mkdtemp(prefix="flame-bench-"))
    keep = tuple(x.strip() for x in args.int8_keep_fp32.split(",") if x.strip())
    if keep:
        variants[f"ORT int8, {'+'.join(keep)} fp32"] = Autorater.from_pretrained(
            _partial_int8(Path(onnx_dir), scratch / "int8-partial", keep), backend="onnx", quantize="int8", **common)
    machine = _machine(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(pairs)} pairs, {args.rounds} rounds; {machine}", file=sys.stderr)
    for judge in variants.values():  # warm-up (allocators, ORT session, thread pools)
        judge.judge("pairwise", pairs[:2])

    load_start = os.getloadavg()
    seconds = {name: 0.0 for name in variants}
    verdicts: dict[str, list[Any]] = {name: [] for name in variants}
    bounds = [round(i * len(pairs) / args.rounds) for i in range(args.rounds + 1)]
    for r in range(args.rounds):
        chunk = pairs[bounds[r]:bounds[r + 1]]
        for name in _rotate(list(variants), r):
            t0 = time.perf_counter()
            verdicts[name] += variants[name].judge("pairwise", chunk)
            seconds[name] += time.perf_counter() - t0
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {s:.0f}s" for n, s in seconds.items()),
              file=sys.stderr, flush=True)

    groups: list[dict[str, Any]] = []
    group_seconds = {"torch fp32": 0.0, "torch fp32 + prefix sharing": 0.0, "ORT int8": 0.0}
    group_equal = 0.0
    if args.groups:
        pool = [r.response_a for r in records] + [r.response_b for r in records]
        rng = random.Random(args.seed + 1)
        picks = rng.sample(range(len(records)), args.groups)
        group_judges = {"torch fp32": torch_plain, "torch fp32 + prefix sharing": torch_shared, "ORT int8": ort8}
        for g, i in enumerate(picks):
            rec = records[i]
            others = [x for x in pool if x not in (rec.response_a, rec.response_b)]
            cands = [rec.response_a, rec.response_b] + rng.sample(others, args.group_size - 2)
            items = [{"prompt": rec.prompt, "response": c} for c in cands]
            scores = {}
            for name in _rotate(list(group_judges), g):
                t0 = time.perf_counter()
                scores[name] = [v.score for v in group_judges[name].judge("pointwise", items)]
                group_seconds[name] += time.perf_counter() - t0
            group_equal = max(group_equal, max(abs(a - b) for a, b in
                                               zip(scores["torch fp32"], scores["torch fp32 + prefix sharing"])))
            groups.append({"prompt_chars": len(rec.prompt), "scores": scores})
            print(f"group {g + 1}/{args.groups}: " + ", ".join(f"{n} {s:.0f}s" for n, s in group_seconds.items()),
                  file=sys.stderr, flush=True)
    load_end = os.getloadavg()
    shutil.rmtree(scratch, ignore_errors=True)

    n = len(pairs)
    base = verdicts["torch fp32"]
    rows = []
    for name in variants:
        got = verdicts[name]
        m = pairwise_metrics(got, labels)
        diffs = [abs(a.score - b.score) for a, b in zip(got, base)]
        same = sum(a.label == b.label for a, b in zip(got, base)) / n
        rows.append({"variant": name, "seconds": seconds[name], "judgments_per_s": n / seconds[name],
                     "speedup_vs_torch_fp32": seconds["torch fp32"] / seconds[name], "accuracy": m.accuracy,
                     "position_consistency": m.position_consistency, "mean_abs_dscore": sum(diffs) / n,
                     "max_abs_dscore": max(diffs), "same_label": same})
    lines = [f"Same {n} HH-RLHF dev pairs (hh-helpful + hh-harmless), both orders, embedded SmolLM2-135M-Instruct, "
             f"batch {args.batch_size}, max_length {args.max_length}; {machine}. "
             f"{args.rounds} interleaved rounds (variant order rotated each round); "
             f"load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end (shared machine).", "",
             "| variant | seconds | judgments/s | speed-up vs torch fp32 | accuracy | mean abs. dP(A) vs torch fp32 "
             "| max abs. dP(A) | same label |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['variant']} | {row['seconds']:.0f} | {row['judgments_per_s']:.2f} | "
                     f"{row['speedup_vs_torch_fp32']:.2f}x | {row['accuracy']:.3f} | {row['mean_abs_dscore']:.4f} | "
                     f"{row['max_abs_dscore']:.4f} | {row['same_label']:.1%} |")
    group_rows = []
    if groups:
        g_n = len(groups) * args.group_size
        lines += ["", f"Groups: {len(groups)} HH prompts x {args.group_size} candidates, pointwise 1-5, one judge() "
                      "call per group (interleaved, order rotated).", "",
                  "| variant | seconds | judgments/s | time vs torch fp32 unshared |", "|---|---:|---:|---:|"]
        for name, secs in group_seconds.items():
            group_rows.append({"variant": name, "seconds": secs, "judgments_per_s": g_n / secs,
                               "time_ratio": secs / group_seconds["torch fp32"]})
            lines.append(f"| {name} | {secs:.0f} | {g_n / secs:.2f} | {secs / group_seconds['torch fp32']:.0%} |")
        lines += ["", f"Prefix-shared scores equal unshared within {group_equal:.1e} (max abs. difference of the "
                      "expected rating)."]
    table = "\n".join(lines)
    print(table)
    (out / "backends.md").write_text(table + "\n")
    (out / "backends.json").write_text(json.dumps({
        "pairs": n, "rounds": args.rounds, "machine": machine, "threads": args.threads,
        "batch_size": args.batch_size, "max_length": args.max_length, "onnx_dir": onnx_dir,
        "onnx_manifest": json.loads((Path(onnx_dir) / "manifest.json").read_text()),
        "load_average": {"start": load_start, "end": load_end}, "variants": rows,
        "groups": {"count": len(groups), "size": args.group_size, "variants": group_rows,
                   "max_abs_dscore_shared_vs_unshared": group_equal, "detail": groups},
        "command": " ".join(["python"] + sys.argv),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
