"""The ``flame-reward`` command line: a few lines over the library for each command.

Errors a user can act on print one line (``flame-reward: error: ...``) and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from flame_reward.errors import FlameRewardError, InvalidInput

EXIT_ERROR = 2

#: Modules contributing sub-commands through ``add_command(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = ("flame_reward.train.command", "flame_reward.eval.command", "flame_reward.rerank.command",
                                   "flame_reward.server.command", "flame_reward.models.onnx_command",
                                   "flame_reward.selfimprove.command")


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


def _parse_map(items: Sequence[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            raise InvalidInput("--map", f"expected FIELD=COLUMN, got {item!r}")
        mapping[field] = column
    return mapping


def _run_rows(args: argparse.Namespace, task: str, defaults: dict[str, Any]) -> int:
    """Judge every row of ``args.input`` and write it back with its verdict or its error."""
    from flame_reward.progress import progress_bar
    from flame_reward.rows import RowWriter, read_rows, row_example, row_record
    from flame_reward.tasks.registry import get_task_type

    task_type = get_task_type(task)
    mapping = _parse_map(args.map or [])
    if getattr(args, "engine", "local") == "ray":
        from flame_reward.integrations.ray_data import run_rows

        return run_rows(args, task_type.name, defaults, mapping)
    rows = list(read_rows(args.input))
    judge = load_judge(args)
    started = time.perf_counter()
    ok = bad = 0
    bar = progress_bar(total=len(rows), desc=f"{task} rows", enabled=not args.quiet, unit="row")
    chunk = max(args.batch_size * 4, 16)
    with RowWriter(args.output) as out:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            slots = [row for row in part if row.data is not None]
            examples = [row_example(row, defaults, mapping) for row in slots]
            verdicts = judge.judge(task_type, examples, on_error="return") if examples else []
            by_row = {id(r): v for r, v in zip(slots, verdicts)}
            for row in part:
                record, judged = row_record(row, by_row.get(id(row)))
                ok += judged
                bad += not judged
                out.write(record)
            bar.update(len(part))
    bar.close()
    elapsed = time.perf_counter() - started
    print(f"{task}: {ok} rows judged, {bad} rows with errors (kept in the output with 'error'), "
          f"{len(rows)} in total, {elapsed:.1f}s", file=sys.stderr)
    return 1 if (args.strict and bad) else 0


def cmd_compare(args: argparse.Namespace) -> int:
    defaults: dict[str, Any] = {"allow_tie": args.allow_tie, "tie_margin": args.tie_margin}
    if args.criteria:
        defaults["criteria"] = args.criteria
    return _run_rows(args, args.task or "pairwise", defaults)


def cmd_score(args: argparse.Namespace) -> int:
    from flame_reward.tasks.registry import get_task_type

    task = args.task or "pointwise"
    defaults: dict[str, Any] = {}
    options = get_task_type(task).options
    if "scale" in options and args.scale:
        low, _, high = args.scale.partition("-")
        try:
            defaults["scale"] = [int(low), int(high)]
        except ValueError:
            raise InvalidInput("--scale", f"expected LOW-HIGH such as 1-5, got {args.scale!r}") from None
    if "labels" in options and args.labels:
        defaults["labels"] = [x.strip() for x in args.labels.split(",")]
    if args.criteria:
        defaults["criteria"] = args.criteria
    return _run_rows(args, task, defaults)


def cmd_tasks(args: argparse.Namespace) -> int:
    from flame_reward.plugins import get_plugins
    from flame_reward.tasks.registry import list_task_types

    types = list_task_types()
    if args.json:
        print(json.dumps({name: {"description": t.description, "fields": [f.name for f in t.fields],
                                 "module": type(t).__module__} for name, t in types.items()}, indent=2))
        return 0
    width = max(len(n) for n in types)
    for name, t in types.items():
        fields = ", ".join(f.name + ("" if f.required else "?") for f in t.fields)
        print(f"{name:<{width}}  {t.description}\n{'':<{width}}  fields: {fields}  [{type(t).__module__}]")
    plugins = [p for p in get_plugins() if p.get("distribution")]
    if plugins:
        print("\nplugins: " + ", ".join(f"{p['distribution']} {p.get('version', '')}".strip() for p in plugins))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flame_reward.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flame-reward", description="FLAMe-style LLM autorater for RLHF.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")
    sub = parser.add_subparsers(dest="command", required=True)

    def rows_command(name: str, help_: str, fn: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("input", help="JSONL, JSONL.gz or JSON-array file of rows ('-' for stdin)")
        p.add_argument("-o", "--output", default=None, help="output JSONL (default: stdout)")
        p.add_argument("--task", default=None, help="task type (see 'flame-reward tasks')")
        p.add_argument("--map", action="append", metavar="FIELD=COLUMN", help="read task FIELD from input COLUMN (repeatable)")
        p.add_argument("--criteria", default=None, help="evaluation criteria replacing the task's default")
        p.add_argument("--strict", action="store_true", help="exit 1 when any row had an error")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        p.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local (default), or ray: Ray Data on an actor pool (the 'ray' extra; RAY_ADDRESS picks "
                            "a cluster), same output rows in the same order")
        p.add_argument("--actors", type=int, default=2, help="with --engine ray: judge actors, each with its own model")
        add_model_options(p)
        p.set_defaults(fn=fn)
        return p

    p = rows_command("compare", "Pairwise verdicts (P(A better), both orders) for rows with prompt/response_a/response_b.", cmd_compare)
    p.add_argument("--allow-tie", action="store_true", help="let the judge answer 'tie'")
    p.add_argument("--tie-margin", type=float, default=0.0, help="call it a tie when |P(A)-P(B)| <= margin")
    p = rows_command("score", "Pointwise ratings or classification labels for rows with prompt/response.", cmd_score)
    p.add_argument("--scale", default=None, help="pointwise scale LOW-HIGH (default 1-5)")
    p.add_argument("--labels", default=None, help="classification labels, comma-separated (default yes,no)")

    p = sub.add_parser("tasks", help="List registered task types (built-ins and plugins).")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_tasks)

    p = sub.add_parser("demo", help="Judge real human-labelled preference pairs and print accuracy.")
    p.add_argument("--n", type=int, default=200, help="number of pairs in total, split evenly over the sets (default 200)")
    p.add_argument("--sets", default="hh-helpful,hh-harmless", help="comma-separated pairwise sets (default: hh-helpful,hh-harmless)")
    p.add_argument("--split", default="dev", choices=["dev", "train", "all"], help="which split to draw from (default dev)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    add_model_options(p)
    p.set_defaults(fn=cmd_demo, max_length=1024)

    # Commands that live beside the parts they drive: each module has
    # ``add_command(subparsers)`` registering its parser with ``fn=`` set.
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass
    try:
        return int(args.fn(args) or 0)
    except FlameRewardError as exc:
        print(f"flame-reward: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("flame-reward: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
