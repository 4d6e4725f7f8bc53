"""``flame-reward export-onnx``: write a judge as an ONNX graph of verdict log-probabilities
(with the hidden state verdict heads read, and a KV cache for prefix sharing)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from flame_reward.hookspecs import hookimpl


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from flame_reward.models.onnx_export import export_onnx
    from flame_reward.models.onnx_format import MANIFEST

    started = time.perf_counter()
    keep = tuple(x.strip() for x in (args.int8_keep_fp32 or "").split(",") if x.strip())
    out = export_onnx(args.model, out=args.out, adapter=args.adapter, quantize=args.quantize,
                      revision=args.revision, opset=args.opset, verify=not args.no_verify,
                      fuse=not args.no_fuse, int8_keep_fp32=keep)
    manifest = json.loads((out / MANIFEST).read_text())
    for precision, entry in manifest["graphs"].items():
        parity = entry.get("parity", {}).get("max_abs_logprob_diff")
        check = f", max |log p - torch| {parity:.2e}" if parity is not None else ""
        print(f"{precision}: {out / entry['file']} ({entry['bytes'] / 1e6:.0f} MB{check})", file=sys.stderr)
    fusions = manifest.get("fusions", {})
    print("fusions: " + (", ".join(f"{k} {v}" for k, v in fusions.get("counts", {}).items())
                         if fusions.get("applied") else f"not applied ({fusions.get('reason')})"), file=sys.stderr)
    print(f"exported {manifest['model']} (adapter: {manifest['adapter'] or 'none'}, opset {manifest['opset']}) "
          f"in {time.perf_counter() - started:.0f}s; use it with --backend onnx --model {out}", file=sys.stderr)
    print(out)
    return 0


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help_ = ("Export the judge (adapter merged) to ONNX: a graph that outputs verdict-token log-probabilities and "
             "the hidden state at the verdict position, with a KV cache for prefix sharing.")
    p = subparsers.add_parser("export-onnx", help=help_, description=help_)
    p.add_argument("--model", default=None, help="HF model directory or id (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--adapter", default="auto",
                   help="PEFT LoRA adapter directory, merged before export (default 'auto': the shipped adapter, if any)")
    p.add_argument("--no-adapter", dest="adapter", action="store_const", const=None, help="export the raw model")
    p.add_argument("--out", required=True, help="output directory (model.onnx, tokenizer files, manifest.json)")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="also write model.int8.onnx (ONNX Runtime dynamic quantisation, int8 weights)")
    p.add_argument("--int8-keep-fp32", default=None, metavar="NAMES",
                   help="with --quantize int8: comma-separated module paths or globs whose linear layers stay "
                        "fp32, matched on whole dotted segments (down_proj: every layer's; model.layers.29: all of "
                        "layer 29; 'model.layers.2[6-9].mlp.*'); more accurate, slower; see docs/speed.md")
    p.add_argument("--no-fuse", action="store_true",
                   help="skip the ONNX Runtime fusions (RMSNorm, rotary, attention) applied after export")
    p.add_argument("--revision", default=None, help="hub revision of --model")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip comparing each graph with the torch model on two rendered tasks")
    p.set_defaults(fn=cmd_export_onnx)
