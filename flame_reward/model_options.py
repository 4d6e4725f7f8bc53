"""The judge-model options every judging command shares, and the judge they describe.

Built-in commands and plugin commands (``register_commands``) call
:func:`add_model_options` on their parser and :func:`load_judge` on the parsed arguments,
so ``--model``, ``--adapter``, ``--backend`` and the rest mean the same everywhere.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The judge-model options every judging command shares."""
    g = p.add_argument_group("judge model")
    g.add_argument("--model", default=None, help="HF model directory or id (default: the embedded SmolLM2-135M-Instruct)")
    g.add_argument("--adapter", default="auto",
                   help="PEFT LoRA adapter directory (default 'auto': the adapter shipped with the embedded default, if any)")
    g.add_argument("--no-adapter", dest="adapter", action="store_const", const=None,
                   help="use the raw model, without the shipped adapter")
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    g.add_argument("--dtype", default=None, help="float32 / bfloat16 / float16 (default: bf16 on GPU, fp32 on CPU)")
    g.add_argument("--batch-size", type=int, default=8, help="rows per forward pass (default 8)")
    g.add_argument("--max-length", type=int, default=2048, help="token budget per task; responses are truncated to fit")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for the forward pass")
    g.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="runtime: torch (default) or onnx (ONNX Runtime; --model is then an 'export-onnx' directory, "
                        "or a model exported once into the cache); generation needs torch")
    g.add_argument("--quantize", choices=("int8",), default=None,
                   help="with --backend onnx: run the export's int8 (dynamic quantisation) graph")


def load_judge(args: argparse.Namespace) -> Any:
    """An Autorater built from :func:`add_model_options`' arguments."""
    from flame_reward.autorater import Autorater

    return Autorater.from_pretrained(
        args.model, adapter=args.adapter, device=args.device, dtype=args.dtype,
        batch_size=args.batch_size, max_length=args.max_length, threads=args.threads,
        backend=getattr(args, "backend", "torch"), quantize=getattr(args, "quantize", None),
    )


__all__ = ["add_model_options", "load_judge"]
