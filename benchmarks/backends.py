"""Backends and prefix sharing, all in one run on the same real pairs (interleaved rounds).

    python benchmarks/backends.py [--pairs 200] [--rounds 10] [--groups 12] [--rr-groups 4] [--threads 1]
                                  [--adapter auto|none|DIR] [--onnx-dir DIR] [--int8-keep-fp32 down_proj]
                                  [--no-memory] [--out benchmarks/results]

Pairs: ``--pairs`` HH-RLHF dev pairs, half hh-helpful and half hh-harmless (seeded
shuffle, ties dropped), judged in both orders by the embedded default with
- torch fp32, prefix sharing off (the plain forward pass; the baseline),
- torch fp32 with prefix sharing (the default: the instruction is computed once per
  batch, and instruction + prompt once per pair),
- ONNX Runtime fp32 and int8 (``flame-reward export-onnx --quantize int8``), each without
  and with prefix sharing (the graph's KV cache, the same splitting rule as torch),
  and an int8 graph keeping ``--int8-keep-fp32`` layers (default: the MLP down projection)
  in fp32, with sharing.
Reported: judgments/s (one judgment = one pair, both orders), pairwise accuracy against
the human label, agreement with the torch fp32 verdicts (|P(A) difference|, same label),
and each variant's peak resident memory (a fresh process per variant loads it and judges
8 pairs: ``ru_maxrss``; skipped with ``--no-memory``).

Groups: ``--groups`` HH prompts x 8 candidate responses (the pair's two responses and six
responses drawn from other pairs), pointwise 1-5, one ``judge()`` call per group as a GRPO
reward call makes it. Round robins: the first ``--rr-groups`` of those groups judged as
TRL's group mode does, every pair of the 8 candidates once in both orders (28 pairs, 56
rows) in one ``judge()`` call (:func:`flame_reward.round_robin.play`).

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


def chosen_keep_fp32(results: Path) -> tuple[str, tuple[str, ...]] | None:
    """``(name, keep_fp32)`` of the setting ``benchmarks/int8_fidelity.py`` chose, if it ran."""
    try:
        chosen = json.loads((results / "int8_fidelity.json").read_text())["train"]["chosen"]
    except (OSError, ValueError, KeyError):
        return None
    return str(chosen["candidate"]), tuple(chosen["keep_fp32"])


def hh_records(pairs: int, seed: int = 0) -> list[Any]:
    """The benchmark's pairs: ``pairs // 2`` each of hh-helpful and hh-harmless dev (ties
    dropped, seeded shuffle); ``benchmarks/gpu.py`` judges the same ones."""
    from flame_reward.data import load_pairs

    records = []
    for name in ("hh-helpful", "hh-harmless"):
        recs = [r for r in load_pairs(name, split="dev").records if r.label != "tie"]
        random.Random(seed).shuffle(recs)
        records += recs[:pairs // 2]
    return records


#: name -> (backend, precision, prefix sharing); "int8-keep" is the partial int8 graph.
VARIANTS = {
    "torch fp32": ("torch", "fp32", False),
    "torch fp32 + prefix sharing": ("torch", "fp32", True),
    "ORT fp32": ("onnx", "fp32", False),
    "ORT int8": ("onnx", "int8", False),
    "ORT fp32 + prefix sharing": ("onnx", "fp32", True),
    "ORT int8 + prefix sharing": ("onnx", "int8", True),
}
GROUP_VARIANTS = ("torch fp32", "torch fp32 + prefix sharing", "ORT int8", "ORT fp32 + prefix sharing",
                  "ORT int8 + prefix sharing")
RR_VARIANTS = ("torch fp32", "torch fp32 + prefix sharing", "ORT fp32 + prefix sharing", "ORT int8 + prefix sharing")


def make_judge(spec: tuple[str, str, bool], onnx_dir: str | None, adapter: str | None, common: dict[str, Any]) -> Any:
    """One variant's judge: backend, precision and prefix sharing as ``spec`` says."""
    from flame_reward.autorater import Autorater

    backend, precision, shared = spec
    if backend == "torch":
        judge = Autorater.from_pretrained(None, adapter=adapter, **common)
    else:
        judge = Autorater.from_pretrained(onnx_dir, backend="onnx", quantize=None if precision == "fp32" else "int8",
                                          **common)
    if not shared:
        judge.scorer.prefix_min_tokens = None
    return judge


def _peak_rss_child(spec: tuple[str, str, bool], onnx_dir: str | None, adapter: str | None, common: dict[str, Any],
                    pairs: list[dict[str, str]], queue: Any) -> None:
    judge = make_judge(spec, onnx_dir, adapter, common)
    judge.judge("pairwise", pairs)
    # VmHWM, not ru_maxrss: ru_maxrss carries the parent's peak over fork and exec, and the
    # parent holds every variant.
    status = Path("/proc/self/status").read_text()
    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    queue.put(int(hwm.split()[1]) / 1024)  # kB -> MiB


def peak_rss_mb(spec: tuple[str, str, bool], onnx_dir: str | None, adapter: str | None, common: dict[str, Any],
                pairs: list[dict[str, str]]) -> float:
    """Peak resident memory (MiB) of a fresh process that loads one variant and judges ``pairs``."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_rss_child, args=(spec, onnx_dir, adapter, common, pairs, queue))
    proc.start()
    value = queue.get(timeout=1800)
    proc.join()
    return float(value)


def summary_targets(rows: list[dict[str, Any]], group_rows: list[dict[str, Any]],
                    rr_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 19's speed targets against this run: the best variant with prefix sharing at
    >= 4x torch fp32 unshared (pairs), and a pointwise group of 8 in < 30% of the unshared
    time."""
    shared = [r for r in rows if "prefix sharing" in r["variant"]]
    best = max(shared, key=lambda r: r["speedup_vs_torch_fp32"]) if shared else None
    out: dict[str, Any] = {"lines": []}
    if best:
        out["pairs_4x"] = {"variant": best["variant"], "speedup": best["speedup_vs_torch_fp32"],
                           "met": best["speedup_vs_torch_fp32"] >= 4.0}
        out["lines"].append(f"- Target >= 4x torch fp32 unshared (pairs): best with sharing is {best['variant']} at "
                            f"{best['speedup_vs_torch_fp32']:.2f}x: {'met' if out['pairs_4x']['met'] else 'not met'}.")
    others = [r for r in group_rows if r["variant"] != "torch fp32"]
    if others:
        g = min(others, key=lambda r: r["time_ratio"])
        out["group_30"] = {"variant": g["variant"], "time_ratio": g["time_ratio"], "met": g["time_ratio"] < 0.30}
        out["lines"].append(f"- Target: a pointwise group of 8 in < 30% of the unshared time: best is {g['variant']} at "
                            f"{g['time_ratio']:.0%}: {'met' if out['group_30']['met'] else 'not met'}.")
    rr = [r for r in rr_rows if r["variant"] != "torch fp32"]
    if rr:
        b = min(rr, key=lambda r: r["time_ratio"])
        out["round_robin"] = {"variant": b["variant"], "time_ratio": b["time_ratio"],
                              "vs_pointwise_group": b["vs_pointwise_group"]}
        out["lines"].append(f"- Round robin of 8 (56 rows): best is {b['variant']} at {b['time_ratio']:.0%} of torch fp32 "
                            f"unshared on the same games, {b['vs_pointwise_group']:.1f}x the unshared pointwise group's time.")
    return out


def _rotate(items: list[Any], k: int) -> list[Any]:
    k %= len(items)
    return items[k:] + items[:k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--groups", type=int, default=12, help="prompts with 8 candidates each (0: skip)")
    ap.add_argument("--rr-groups", type=int, default=4,
                    help="of those groups, how many also run as round robins (28 pairs, 56 rows each; 0: skip)")
    ap.add_argument("--adapter", default="auto", help="adapter of the judge: auto (the shipped one), none, or a directory")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1,
                    help="threads per variant (default 1: on a shared, oversubscribed CPU, 2 OpenMP threads "
                         "spent most of their time waiting at barriers)")
    ap.add_argument("--onnx-dir", default=None, help="an export-onnx directory with int8 (default: export once into the cache)")
    ap.add_argument("--int8-keep-fp32", default=None, metavar="NAMES",
                    help="also run an int8 graph keeping these linear layers fp32, with sharing (default: the setting "
                         "benchmarks/int8_fidelity.py chose, from OUT/int8_fidelity.json, else down_proj; '' to skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()

    from flame_reward.eval.metrics import pairwise_metrics
    from flame_reward.models.onnx_export import cached_export, int8_copy
    from flame_reward.round_robin import play

    records = hh_records(args.pairs, args.seed)
    pairs = [{"prompt": r.prompt, "response_a": r.response_a, "response_b": r.response_b} for r in records]
    labels = [r.label for r in records]

    adapter = None if args.adapter in ("none", "") else args.adapter
    onnx_dir = args.onnx_dir or str(cached_export(None, adapter=adapter, quantize="int8"))
    common = {"batch_size": args.batch_size, "max_length": args.max_length, "threads": args.threads}
    specs: dict[str, tuple[str, str, bool]] = dict(VARIANTS)
    variants = {name: make_judge(spec, onnx_dir, adapter, common) for name, spec in specs.items()}
    scratch = Path(tempfile.mkdtemp(prefix="flame-bench-"))
    chosen = chosen_keep_fp32(Path(args.out)) if args.int8_keep_fp32 is None else None
    if chosen is not None:
        keep_name, keep = chosen
    else:
        keep = tuple(x.strip() for x in (args.int8_keep_fp32 or "down_proj").split(",") if x.strip())
        keep_name = "+".join(keep)
    partial_dir, partial_name = None, None
    if keep and args.int8_keep_fp32 != "":
        partial_dir = str(int8_copy(onnx_dir, scratch / "int8-partial", keep))
        name = partial_name = f"ORT int8, {keep_name} fp32, + prefix sharing"
        specs[name] = ("onnx", "int8", True)
        variants[name] = make_judge(specs[name], partial_dir, adapter, common)
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
    extra = (partial_name,) if partial_name else ()
    group_seconds = {name: 0.0 for name in GROUP_VARIANTS + extra}
    rr_seconds = {name: 0.0 for name in RR_VARIANTS + extra}
    group_equal = {"pointwise": 0.0, "round robin": 0.0}
    if args.groups:
        pool = [r.response_a for r in records] + [r.response_b for r in records]
        rng = random.Random(args.seed + 1)
        picks = rng.sample(range(len(records)), args.groups)
        for g, i in enumerate(picks):
            rec = records[i]
            others = [x for x in pool if x not in (rec.response_a, rec.response_b)]
            cands = [rec.response_a, rec.response_b] + rng.sample(others, args.group_size - 2)
            items = [{"prompt": rec.prompt, "response": c} for c in cands]
            scores: dict[str, list[float]] = {}
            for name in _rotate(list(group_seconds), g):
                t0 = time.perf_counter()
                scores[name] = [v.score for v in variants[name].judge("pointwise", items)]
                group_seconds[name] += time.perf_counter() - t0
            group_equal["pointwise"] = max(group_equal["pointwise"], *(
                abs(a - b) for a, b in zip(scores["torch fp32"], scores["torch fp32 + prefix sharing"])))
            group = {"prompt_chars": len(rec.prompt), "scores": scores}
            if g < args.rr_groups:
                def example(a: int, b: int, prompt: str = rec.prompt, cands: list[str] = cands) -> dict[str, str]:
                    return {"prompt": prompt, "response_a": cands[a], "response_b": cands[b]}

                outcomes: dict[str, list[float]] = {}
                for name in _rotate(list(rr_seconds), g):
                    t0 = time.perf_counter()
                    games = play(variants[name], "pairwise", [list(range(len(cands)))], example)
                    rr_seconds[name] += time.perf_counter() - t0
                    outcomes[name] = [games.outcomes[k] for k in sorted(games.outcomes)]
                group_equal["round robin"] = max(group_equal["round robin"], *(
                    abs(a - b) for a, b in zip(outcomes["torch fp32"], outcomes["torch fp32 + prefix sharing"])))
                group["round_robin"] = outcomes
            groups.append(group)
            print(f"group {g + 1}/{args.groups}: " + ", ".join(f"{n} {s:.0f}s" for n, s in group_seconds.items())
                  + ("; round robin: " + ", ".join(f"{n} {s:.0f}s" for n, s in rr_seconds.items())
                     if g < args.rr_groups else ""), file=sys.stderr, flush=True)
    load_end = os.getloadavg()
    memory: dict[str, float] = {}
    if not args.no_memory:  # after the timed part: these processes would compete with it
        for name, spec in specs.items():
            memory[name] = peak_rss_mb(spec, partial_dir if name == partial_name else onnx_dir, adapter, common, pairs[:8])
            print(f"peak RSS {name}: {memory[name]:.0f} MiB", file=sys.stderr, flush=True)
    shutil.rmtree(scratch, ignore_errors=True)

    n = len(pairs)
    judge_info = variants["torch fp32"].info
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
                     "max_abs_dscore": max(diffs), "same_label": same, "peak_rss_mib": memory.get(name)})
    lines = [f"Same {n} HH-RLHF dev pairs (hh-helpful + hh-harmless), both orders, embedded SmolLM2-135M-Instruct, "
             f"batch {args.batch_size}, max_length {args.max_length}; {machine}. "
             f"{args.rounds} interleaved rounds (variant order rotated each round); "
             f"load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end (shared machine). "
             f"Adapter: {Path(str(judge_info.get('adapter'))).name if judge_info.get('adapter') else 'none'}; verdict heads: {judge_info.get('heads') or 'none'}"
             f"{f' (int8 keep-fp32 setting: {keep_name} = {list(keep)})' if partial_name else ''}. Peak RSS: a fresh process per variant loads it and judges 8 pairs.", "",
             "| variant | seconds | judgments/s | speed-up vs torch fp32 | accuracy | mean abs. dP(A) vs torch fp32 "
             "| max abs. dP(A) | same label | peak RSS |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        rss = f"{row['peak_rss_mib']:.0f} MiB" if row["peak_rss_mib"] else "-"
        lines.append(f"| {row['variant']} | {row['seconds']:.0f} | {row['judgments_per_s']:.2f} | "
                     f"{row['speedup_vs_torch_fp32']:.2f}x | {row['accuracy']:.3f} | {row['mean_abs_dscore']:.4f} | "
                     f"{row['max_abs_dscore']:.4f} | {row['same_label']:.1%} | {rss} |")
    group_rows, rr_rows = [], []
    if groups:
        g_n = len(groups) * args.group_size
        lines += ["", f"Groups: {len(groups)} HH prompts x {args.group_size} candidates, pointwise 1-5, one judge() "
                      "call per group (interleaved, order rotated).", "",
                  "| variant | seconds | judgments/s | time vs torch fp32 unshared |", "|---|---:|---:|---:|"]
        for name, secs in group_seconds.items():
            group_rows.append({"variant": name, "seconds": secs, "judgments_per_s": g_n / secs,
                               "time_ratio": secs / group_seconds["torch fp32"]})
            lines.append(f"| {name} | {secs:.0f} | {g_n / secs:.2f} | {secs / group_seconds['torch fp32']:.0%} |")
        rr_n = min(args.rr_groups, len(groups))
        if rr_n:
            per_group = args.group_size * (args.group_size - 1) // 2
            base_pw = sum(group_seconds["torch fp32"] / len(groups) for _ in range(rr_n))
            lines += ["", f"Round robins (TRL group mode): the first {rr_n} groups, every pair of the "
                          f"{args.group_size} candidates once ({per_group} pairs, {2 * per_group} rows) in one "
                          "judge() call (interleaved, order rotated).", "",
                      "| variant | seconds | pairs/s | time vs torch fp32 unshared | "
                      "time vs the pointwise group, torch fp32 unshared |", "|---|---:|---:|---:|---:|"]
            for name, secs in rr_seconds.items():
                rr_rows.append({"variant": name, "seconds": secs, "pairs_per_s": rr_n * per_group / secs,
                                "time_ratio": secs / rr_seconds["torch fp32"], "vs_pointwise_group": secs / base_pw})
                lines.append(f"| {name} | {secs:.0f} | {rr_n * per_group / secs:.2f} | "
                             f"{secs / rr_seconds['torch fp32']:.0%} | {secs / base_pw:.1f}x |")
        lines += ["", f"Prefix-shared torch scores equal unshared within {group_equal['pointwise']:.1e} (pointwise "
                      f"expected rating) and {group_equal['round robin']:.1e} (round-robin P(first wins))."]
    targets = summary_targets(rows, group_rows, rr_rows)
    lines += ["", *targets["lines"]]
    table = "\n".join(lines)
    print(table)
    (out / "backends.md").write_text(table + "\n")
    (out / "backends.json").write_text(json.dumps({
        "pairs": n, "rounds": args.rounds, "machine": machine, "threads": args.threads,
        "batch_size": args.batch_size, "max_length": args.max_length, "onnx_dir": onnx_dir,
        "onnx_manifest": json.loads((Path(onnx_dir) / "manifest.json").read_text()),
        "load_average": {"start": load_start, "end": load_end}, "variants": rows,
        "adapter": adapter, "judge": {k: judge_info.get(k) for k in ("adapter", "adapter_sha256", "heads")},
        "int8_keep_fp32": {"name": keep_name, "keep": list(keep)} if partial_name else None,
        "targets": targets,
        "groups": {"count": len(groups), "size": args.group_size, "variants": group_rows,
                   "round_robin": {"count": min(args.rr_groups, len(groups)), "variants": rr_rows},
                   "max_abs_dscore_shared_vs_unshared": group_equal, "detail": groups},
        "command": " ".join(["python"] + sys.argv),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
