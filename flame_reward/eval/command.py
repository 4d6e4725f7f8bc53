"""The ``eval-pairs`` and ``bias`` commands (a built-in ``register_commands`` plugin).

Both take named shared sets or pairwise files, judge them and write a JSON report, a
Markdown table and a PNG chart to ``--out``. The work is in :func:`run_eval_pairs` and
:func:`run_bias`, which take an already-built judge (tests inject a tiny model).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.hookspecs import hookimpl
from flame_reward.model_options import add_model_options, load_judge

PROBE_NAMES = ("order", "compassion", "length", "bandwagon", "attention", "egocentric")


def _judge_info(judge: Any, args: argparse.Namespace) -> dict[str, Any]:
    info = dict(getattr(judge, "info", {}) or {})
    info.setdefault("model", getattr(judge, "model_name", "?"))
    scorer = getattr(judge, "scorer", None)
    info["max_length"] = getattr(scorer, "max_length", getattr(args, "max_length", None))
    info["batch_size"] = getattr(scorer, "batch_size", getattr(args, "batch_size", None))
    info["threads"] = getattr(args, "threads", None)
    return info


def _sources(args: argparse.Namespace) -> list[Any]:
    from flame_reward.eval.pairs import load_source

    return [load_source(spec, split=args.split, limit=args.limit, format=args.format) for spec in args.inputs]


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def run_eval_pairs(args: argparse.Namespace, judge: Any = None) -> int:
    """``flame-reward eval-pairs``: accuracy per source; ``judge`` defaults to :func:`load_judge`."""
    from flame_reward.eval.pairs import evaluate_source, pooled
    from flame_reward.eval.report import pairs_markdown, plot_pairs, write_report

    sources = _sources(args)
    for s in sources:
        _say(args, f"{s.name}: {len(s.records)} pairs ({s.kind}, split {s.split}, {s.records_in_split} in split, "
                   f"{len(s.bad)} unreadable rows)")
    if judge is None:
        judge = load_judge(args)
    started = time.perf_counter()
    reports, rows = [], []
    for s in sources:
        report, per_pair = evaluate_source(judge, s, allow_tie=args.allow_tie, tie_margin=args.tie_margin,
                                           criteria=args.criteria, progress=not args.quiet)
        reports.append(report)
        rows += per_pair
        _say(args, f"{s.name}: accuracy {report['accuracy']:.3f} over {report['scored']} pairs "
                   f"({report['ties']} ties, {report['bad']} bad rows), {report['seconds']:.0f}s")
    full = {"command": "eval-pairs", "judge": _judge_info(judge, args), "split": args.split, "limit": args.limit,
            "allow_tie": args.allow_tie, "tie_margin": args.tie_margin, "sets": reports, "all": pooled(reports),
            "seconds": time.perf_counter() - started}
    markdown = pairs_markdown(full)
    print(markdown)
    if args.out:
        paths = write_report(args.out, "eval_pairs", full, markdown, plot_pairs, extra_jsonl=rows)
        _say(args, "wrote " + ", ".join(str(p) for p in paths))
    return 1 if (args.strict and any(r["bad"] for r in reports)) else 0


def run_bias(args: argparse.Namespace, judge: Any = None) -> int:
    """``flame-reward bias``: CoBBLEr-style probes over the pooled pairs of every source."""
    from flame_reward.eval.probes import ProbePair, cobbler_human_reference, measure_probes
    from flame_reward.eval.report import bias_markdown, plot_bias, write_report

    probes = [p.strip() for p in args.probes.split(",") if p.strip()]
    unknown = [p for p in probes if p not in PROBE_NAMES]
    if unknown or not probes:
        raise InvalidInput("--probes", f"unknown probe(s) {', '.join(unknown) or '(none given)'}; "
                                       f"known: {', '.join(PROBE_NAMES)}")
    sources = _sources(args)
    pairs, source_info = [], []
    for s in sources:
        usable = [p for p in map(ProbePair.from_record, s.records) if p is not None]
        pairs += usable
        source_info.append({"name": s.name, "kind": s.kind, "split": s.split, "rows": s.rows, "pairs": len(usable),
                            "ties_skipped": len(s.records) - len(usable), "bad": len(s.bad),
                            "bad_rows": [{"source": b.source, "row": b.row, "error": b.error} for b in s.bad]})
        _say(args, f"{s.name}: {len(usable)} pairs for the probes ({len(s.records) - len(usable)} human ties "
                   f"skipped, {len(s.bad)} unreadable rows)")
    if not pairs:
        raise InvalidInput("inputs", "no usable (non-tie) pairs to probe")
    if judge is None:
        judge = load_judge(args)
    started = time.perf_counter()
    measured = measure_probes(judge, pairs, probes, own_max_new_tokens=args.own_max_new_tokens,
                              progress=not args.quiet)
    full = {"command": "bias", "judge": _judge_info(judge, args), "split": args.split, "limit": args.limit,
            "sources": source_info, "pairs": len(pairs), "ci": "95% Wilson score interval over pairs",
            **measured, "reference": cobbler_human_reference(), "seconds": time.perf_counter() - started}
    markdown = bias_markdown(full)
    print(markdown)
    if args.out:
        paths = write_report(args.out, "bias", full, markdown, plot_bias)
        _say(args, "wrote " + ", ".join(str(p) for p in paths))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_SET",
                   help="pairwise files (RewardBench, HH-RLHF, PandaLM, Auto-J, LLMBar or a plugin format) "
                        "or named sets (hh-helpful, hh-harmless, pandalm, auto-j, llmbar, ...)")
    p.add_argument("--split", default="dev", choices=["dev", "train", "all"],
                   help="split of the named sets (default dev); files are always read whole")
    p.add_argument("--limit", type=int, default=None, help="judge at most N pairs per set (the first N in file order)")
    p.add_argument("--format", default=None, help="pair format of the files (default: detected from the columns)")
    p.add_argument("--out", default=None, metavar="DIR", help="write the JSON, Markdown and PNG reports here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines")
    add_model_options(p)


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``eval-pairs`` and ``bias``."""
    help_ = "Preference accuracy on human-labelled pairs (files or named sets), per set, with reports."
    p = subparsers.add_parser("eval-pairs", help=help_, description=help_)
    _common(p)
    p.add_argument("--allow-tie", action="store_true", help="let the judge answer 'tie' (reports tie agreement)")
    p.add_argument("--tie-margin", type=float, default=0.0, help="call it a tie when |P(A)-P(B)| <= margin")
    p.add_argument("--criteria", default=None, help="evaluation criteria replacing the pairwise default")
    p.add_argument("--strict", action="store_true", help="exit 1 when any row was bad")
    p.set_defaults(fn=lambda args: run_eval_pairs(args))

    help_ = "CoBBLEr-style bias probes (order, compassion, length, bandwagon, attention, egocentric)."
    p = subparsers.add_parser("bias", help=help_, description=help_)
    _common(p)
    p.add_argument("--probes", default=",".join(PROBE_NAMES), help=f"comma-separated (default: {','.join(PROBE_NAMES)})")
    p.add_argument("--own-max-new-tokens", type=int, default=64,
                   help="length of the judge's own greedy answer for the egocentric probe (default 64)")
    p.set_defaults(fn=lambda args: run_bias(args))


__all__ = ["PROBE_NAMES", "register_commands", "run_bias", "run_eval_pairs"]
