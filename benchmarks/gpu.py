"""GPU readiness: torch CUDA fp32 and bf16 and ONNX Runtime's CUDA EP, each with and without
prefix sharing, on the same HH pairs as ``benchmarks/backends.py``; parity against torch
CPU fp32 and judgments/s. Run it through ``benchmarks/gpu.sh`` (which checks the machine
and keeps the whole run under 8 minutes).

    python benchmarks/gpu.py [--pairs 200] [--rounds 4] [--batch-size 32] [--adapter auto]
                             [--out benchmarks/results] [--dry-run]

Steps: (1) the reference: torch CPU fp32 with prefix sharing (equal to unshared within
1e-5, tests/test_prefix_sharing.py) on every CPU core; (2) an ONNX export of the same judge
(fp32, no fusions: they target the CPU kernels; no export-time check: step 4 is the
check); (3) every variant judges every pair in interleaved rounds (order rotated);
(4) per variant: judgments/s, max and mean |P(A) - CPU fp32|, same label as CPU fp32.

``--dry-run`` runs the same code on the CPU with a tiny random Llama (the embedded
tokenizer, random weights) on 4 pairs and 1 round: it checks the script, not the speed.
Writes ``gpu.md`` and ``gpu.json`` (``gpu-dry-run.*`` for a dry run) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backends import _rotate, hh_records  # noqa: E402  (the same pairs as the CPU benchmark)

#: name -> (backend, dtype, prefix sharing)
VARIANTS = {
    "torch CUDA fp32": ("torch", "float32", False),
    "torch CUDA fp32 + prefix sharing": ("torch", "float32", True),
    "torch CUDA bf16": ("torch", "bfloat16", False),
    "torch CUDA bf16 + prefix sharing": ("torch", "bfloat16", True),
    "ORT CUDA EP fp32": ("onnx", "float32", False),
    "ORT CUDA EP fp32 + prefix sharing": ("onnx", "float32", True),
}


def tiny_model(root: Path) -> str:
    """A tiny random Llama with the embedded default's tokenizer, saved under ``root`` (the
    dry run's model: real rendering and verdict tokens, milliseconds per forward)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from flame_reward.models.embedded import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True, initializer_range=0.5)
    path = root / "tiny-random-llama"
    LlamaForCausalLM(config).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def _judge(spec: tuple[str, str, bool], model: str | None, onnx_dir: str, adapter: str | None, device: str,
           common: dict[str, Any]) -> Any:
    from flame_reward.autorater import Autorater

    backend, dtype, shared = spec
    if backend == "torch":
        judge = Autorater.from_pretrained(model, adapter=adapter, device=device, dtype=dtype, **common)
    else:
        judge = Autorater.from_pretrained(onnx_dir, backend="onnx", device=device, **common)
    if not shared:
        judge.scorer.prefix_min_tokens = None
    return judge


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--adapter", default="auto", help="auto (the shipped adapter), none, or a directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny random model, 4 pairs, 1 round")
    args = ap.parse_args(argv)

    import torch

    import flame_reward
    from flame_reward.eval.metrics import pairwise_metrics
    from flame_reward.models.onnx_export import export_onnx

    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="flame-gpu-"))
    adapter = None if args.adapter in ("none", "") else args.adapter
    if args.dry_run:
        device, model, adapter = "cpu", tiny_model(scratch), None
        args.pairs, args.rounds = 4, 1
    else:
        if not torch.cuda.is_available():
            print("no CUDA GPU visible to torch: run with --dry-run to check the script on a CPU", file=sys.stderr)
            return 2
        device, model = "cuda", None
    records = hh_records(args.pairs, args.seed)
    pairs = [{"prompt": r.prompt, "response_a": r.response_a, "response_b": r.response_b} for r in records]
    labels = [r.label for r in records]
    common = {"batch_size": args.batch_size, "max_length": args.max_length}

    # (1) The reference on the CPU, every core (what the CPU benchmark calls torch fp32).
    t0 = time.perf_counter()
    from flame_reward.autorater import Autorater

    cpu = Autorater.from_pretrained(model, adapter=adapter, device="cpu", dtype="float32",
                                    threads=os.cpu_count(), **common)
    reference = cpu.judge("pairwise", pairs)
    reference_s = time.perf_counter() - t0
    del cpu
    print(f"CPU fp32 reference: {len(pairs)} pairs in {reference_s:.0f}s", file=sys.stderr, flush=True)

    # (2) The ONNX export (CPU work: no fusions, no export-time check).
    t0 = time.perf_counter()
    onnx_dir = str(export_onnx(model, out=scratch / "onnx", adapter=adapter, verify=False, fuse=False))
    export_s = time.perf_counter() - t0
    print(f"ONNX export: {export_s:.0f}s", file=sys.stderr, flush=True)

    variants: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name, spec in VARIANTS.items():
        label = name.replace("CUDA EP", "CPU EP").replace("CUDA", "CPU") if args.dry_run else name
        try:
            variants[label] = _judge(spec, model, onnx_dir, adapter, device, common)
        except Exception as exc:  # onnxruntime-gpu missing, say: report it and run the rest
            skipped[label] = f"{type(exc).__name__}: {exc}"
            print(f"SKIPPED {label}: {skipped[label]}", file=sys.stderr, flush=True)
    for judge in variants.values():  # warm-up: CUDA contexts, kernels, ORT session, allocators
        judge.judge("pairwise", pairs[:2])
    if device == "cuda":
        torch.cuda.synchronize()

    # (3) Interleaved rounds on the same pairs.
    seconds = {name: 0.0 for name in variants}
    verdicts: dict[str, list[Any]] = {name: [] for name in variants}
    bounds = [round(i * len(pairs) / args.rounds) for i in range(args.rounds + 1)]
    for r in range(args.rounds):
        chunk = pairs[bounds[r]:bounds[r + 1]]
        for name in _rotate(list(variants), r):
            t0 = time.perf_counter()
            verdicts[name] += variants[name].judge("pairwise", chunk)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds[name] += time.perf_counter() - t0
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {s:.1f}s" for n, s in seconds.items()),
              file=sys.stderr, flush=True)

    # (4) Figures.
    n = len(pairs)
    base = "torch CUDA fp32" if not args.dry_run else "torch CPU fp32"
    rows = []
    for name, got in verdicts.items():
        diffs = [abs(a.score - b.score) for a, b in zip(got, reference)]
        rows.append({"variant": name, "seconds": seconds[name], "judgments_per_s": n / seconds[name],
                     "speedup_vs_torch_fp32": seconds[base] / seconds[name] if base in seconds else None,
                     "accuracy": pairwise_metrics(got, labels).accuracy,
                     "max_abs_dP_vs_cpu_fp32": max(diffs), "mean_abs_dP_vs_cpu_fp32": sum(diffs) / n,
                     "same_label_as_cpu_fp32": sum(a.label == b.label for a, b in zip(got, reference)) / n,
                     "providers": getattr(variants[name].scorer.backend, "providers", None)})
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (dry run on the CPU)"
    import onnxruntime
    import transformers

    machine = (f"GPU: {gpu}; CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
               f"torch {torch.__version__}, transformers {transformers.__version__}, onnxruntime {onnxruntime.__version__} "
               f"(providers: {', '.join(onnxruntime.get_available_providers())})")
    lines = [f"{'DRY RUN (tiny random model, CPU): not a speed figure. ' if args.dry_run else ''}"
             f"Same {n} HH-RLHF dev pairs as benchmarks/backends.py, both orders, "
             f"{'tiny random Llama' if args.dry_run else 'embedded SmolLM2-135M-Instruct'}, adapter "
             f"{adapter or 'none'}, batch {args.batch_size}, max_length {args.max_length}; {machine}. "
             f"{args.rounds} interleaved rounds. Reference: torch CPU fp32 ({reference_s:.0f}s); ONNX export "
             f"{export_s:.0f}s; whole run {time.perf_counter() - started:.0f}s.", "",
             "| variant | seconds | judgments/s | speed-up vs torch fp32 | accuracy | max abs. dP(A) vs CPU fp32 "
             "| mean abs. dP(A) | same label |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        speed = f"{row['speedup_vs_torch_fp32']:.2f}x" if row["speedup_vs_torch_fp32"] else "-"
        lines.append(f"| {row['variant']} | {row['seconds']:.1f} | {row['judgments_per_s']:.1f} | {speed} | "
                     f"{row['accuracy']:.3f} | {row['max_abs_dP_vs_cpu_fp32']:.2e} | "
                     f"{row['mean_abs_dP_vs_cpu_fp32']:.2e} | {row['same_label_as_cpu_fp32']:.1%} |")
    for name, why in skipped.items():
        lines.append(f"| {name} | skipped: {why} | | | | | | |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu-dry-run" if args.dry_run else "gpu"
    (out / f"{stem}.md").write_text(table + "\n")
    (out / f"{stem}.json").write_text(json.dumps({
        "dry_run": args.dry_run, "pairs": n, "rounds": args.rounds, "machine": machine, "gpu": gpu,
        "adapter": adapter, "batch_size": args.batch_size, "max_length": args.max_length,
        "reference_seconds": reference_s, "export_seconds": export_s, "variants": rows, "skipped": skipped,
        "total_seconds": time.perf_counter() - started,
        "flame_reward": getattr(flame_reward, "__version__", None), "command": " ".join(["python"] + sys.argv),
    }, indent=2))
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
