"""int8 that keeps the verdict: choose what stays fp32 on train pairs, report it on dev pairs.

    python benchmarks/int8_fidelity.py [--train-pairs 64] [--dev-pairs 60] [--threads 1]
                                       [--adapter auto|none] [--onnx-dir DIR] [--choose NAME]
                                       [--out benchmarks/results]

The judge is the embedded default with what ships for it (``--adapter auto``: the verdict
heads, which read the graph's hidden state and stay fp32 beside it). Every judge runs as
the scoring core runs it: ``Autorater.judge`` with batch 8 and prefix sharing on, because
dynamic int8 quantises activations per tensor, so a row's int8 verdict depends on what
shares its call (docs/speed.md). The reference is the current default, torch fp32 with
prefix sharing.

1. Selection, on *train* pairs only (``--train-pairs``, half hh-helpful and half
   hh-harmless, first in file order, each with its set's criteria so the heads take
   part): a handful of candidate int8 graphs, each keeping some linear layers fp32
   (:func:`candidates`: none, the MLP down projections, the last layers, the top MLPs,
   the first and last layers, and the layers whose inputs carry the largest outliers on
   those train pairs), each re-quantised from one fp32 export (seconds). Each is scored
   by label agreement with fp32 and mean |dP(A)|; :func:`choose` picks the cheapest
   candidate (fewest linear weights kept fp32) that agrees on >= ``--bar`` of the labels,
   or, when none does, the one agreeing most (then the smallest mean |dP(A)|).
2. Report, on *dev* pairs (``--dev-pairs`` per set, first in file order) of hh-helpful,
   hh-harmless, pandalm, auto-j and llmbar: torch fp32, plain int8 and the chosen int8,
   with accuracy against the human label, label agreement with fp32 and mean/max
   |dP(A)|, per set and pooled, against the bar (accuracy within 1 point, >= 95% same
   label).

Writes ``int8_fidelity.md`` and ``int8_fidelity.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TRAIN_SETS = ("hh-helpful", "hh-harmless")
DEV_SETS = ("hh-helpful", "hh-harmless", "pandalm", "auto-j", "llmbar")
#: The fidelity bar of issue 19: labels agreeing with fp32, and accuracy within this of fp32.
AGREEMENT_BAR = 0.95
ACCURACY_POINTS = 0.01
#: A candidate keeping more than this share of the linear weights fp32 gives up most of int8's speed.
MAX_KEPT = 0.5


# -- candidates -----------------------------------------------------------------------------

def candidates(layers: int, outliers: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
    """The keep-fp32 settings tried (names -> ``int8_keep_fp32`` entries, see
    :func:`flame_reward.models.onnx_export.keeps_fp32`), for a model of ``layers`` decoder
    layers; ``outliers`` are linear layers' module paths ranked by how much their inputs'
    outliers cost per-tensor quantisation (:func:`outlier_ranking`), worst first."""
    last = layers - 1
    out: dict[str, tuple[str, ...]] = {
        "none": (),
        "down_proj": ("down_proj",),
        "last 2 layers": tuple(f"model.layers.{i}" for i in range(last - 1, layers)),
        "last 6 layers": tuple(f"model.layers.{i}" for i in range(max(0, last - 5), layers)),
        "mlp of last 8 layers": tuple(f"model.layers.{i}.mlp" for i in range(max(0, last - 7), layers)),
        "first 2 + last 2 layers": tuple(dict.fromkeys(
            [f"model.layers.{i}" for i in range(min(2, layers))] + [f"model.layers.{i}" for i in range(last - 1, layers)])),
    }
    if outliers:
        out["8 worst-outlier linears"] = tuple(outliers[:8])
        out["24 worst-outlier linears"] = tuple(outliers[:24])
    return out


def linear_weights(model: Any) -> dict[str, int]:
    """``{module path: weight count}`` of the decoder's linear layers (what int8 quantises;
    not the output projection)."""
    import torch

    head = model.get_output_embeddings()
    return {name: m.weight.numel() for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and m is not head}


def kept_fraction(weights: Mapping[str, int], keep: Sequence[str]) -> float:
    """Share of the linear weights that ``keep`` leaves fp32 (a proxy for the speed given up)."""
    from flame_reward.models.onnx_export import keeps_fp32

    total = sum(weights.values())
    return sum(n for name, n in weights.items() if keeps_fp32(name, tuple(keep))) / total if total else 0.0


def outlier_ranking(judge: Any, task: str, examples: Sequence[Mapping[str, Any]]) -> list[tuple[str, float]]:
    """Linear layers ranked by the mean, over the calls that judge ``examples``, of their
    input's ``max |x| / rms(x)``: dynamic int8 quantises each call's input with one scale
    set by its largest value, so this ratio is how many quantisation steps the typical
    value gets fewer. ``judge`` is a torch-backend Autorater (hooks on its model)."""
    import torch

    model = judge.scorer.backend.model
    weights = linear_weights(model)
    sums: dict[str, list[float]] = {name: [] for name in weights}
    hooks = []
    for name, module in model.named_modules():
        if name in sums:
            def hook(mod: Any, args: Any, name: str = name) -> None:
                x = args[0].detach().float()
                rms = x.pow(2).mean().sqrt().item()
                if rms > 0:
                    sums[name].append(x.abs().max().item() / rms)
            hooks.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            judge.judge(task, examples)
    finally:
        for h in hooks:
            h.remove()
    ranked = [(name, sum(v) / len(v)) for name, v in sums.items() if v]
    return sorted(ranked, key=lambda kv: -kv[1])


# -- measuring ------------------------------------------------------------------------------

def accuracy(scores: Sequence[float], labels: Sequence[str]) -> float:
    """Pairwise accuracy against human A/B labels; a score of exactly 0.5 earns half a point
    (as ``flame_reward.eval.sets`` counts it)."""
    pts = [0.5 if s == 0.5 else float((s > 0.5) == (lab == "A")) for s, lab in zip(scores, labels)]
    return sum(pts) / len(pts) if pts else float("nan")


def compare(reference: Sequence[Any], got: Sequence[Any], labels: Sequence[str]) -> dict[str, Any]:
    """Fidelity of verdicts ``got`` to ``reference`` (same pairs, same order): same-label
    rate, mean and max |dP(A)|, both accuracies and their difference."""
    if len(reference) != len(got) or len(got) != len(labels):
        raise ValueError(f"{len(reference)} reference verdicts, {len(got)} verdicts, {len(labels)} labels")
    # Items either judge could not judge (ItemError: no score) are left out, and counted.
    kept = [i for i in range(len(got)) if hasattr(got[i], "score") and hasattr(reference[i], "score")]
    errors = len(got) - len(kept)
    reference, got, labels = [reference[i] for i in kept], [got[i] for i in kept], [labels[i] for i in kept]
    n = len(got)
    diffs = [abs(a.score - b.score) for a, b in zip(got, reference)]
    acc_ref = accuracy([v.score for v in reference], labels)
    acc = accuracy([v.score for v in got], labels)
    return {"n": n, "same_label": sum(a.label == b.label for a, b in zip(got, reference)) / n if n else float("nan"),
            "mean_abs_dp": sum(diffs) / n if n else float("nan"), "max_abs_dp": max(diffs, default=0.0),
            "accuracy_fp32": acc_ref, "accuracy": acc, "accuracy_delta": acc - acc_ref,
            "headed": sum(1 for v in got if getattr(v, "head", None)), "errors": errors}


def meets_bar(stats: Mapping[str, Any], bar: float = AGREEMENT_BAR, points: float = ACCURACY_POINTS) -> bool:
    return stats["same_label"] >= bar and abs(stats["accuracy_delta"]) <= points + 1e-12


def choose(rows: Sequence[Mapping[str, Any]], bar: float = AGREEMENT_BAR, max_kept: float = MAX_KEPT) -> dict[str, Any]:
    """The setting to ship: among candidates keeping at most ``max_kept`` of the linear
    weights fp32, the cheapest (smallest ``kept_fraction``) whose ``same_label`` reaches
    ``bar`` (ties: more agreement, then smaller ``mean_abs_dp``); when none reaches it,
    the one agreeing most (ties: smaller ``mean_abs_dp``, then cheaper). Returns the row
    with ``meets_bar`` set."""
    pool = [r for r in rows if r["kept_fraction"] <= max_kept + 1e-12]
    if not pool:
        raise ValueError(f"no candidate keeps at most {max_kept:.0%} of the linear weights fp32")
    passing = [r for r in pool if r["same_label"] >= bar]
    if passing:
        best = min(passing, key=lambda r: (r["kept_fraction"], -r["same_label"], r["mean_abs_dp"]))
    else:
        best = min(pool, key=lambda r: (-r["same_label"], r["mean_abs_dp"], r["kept_fraction"]))
    return {**best, "meets_bar": bool(passing)}


# -- running --------------------------------------------------------------------------------

def _examples(records: Sequence[Any]) -> list[dict[str, Any]]:
    from flame_reward.train.features import record_example

    return [record_example(r)[0] for r in records]


def _records(sets: Sequence[str], split: str, per_set: int) -> dict[str, list[Any]]:
    from flame_reward.eval.sets import first_records

    return {name: first_records(name, split, per_set) for name in sets}


def onnx_judge(path: Path, adapter: str | None, common: Mapping[str, Any]) -> Any:
    from flame_reward.autorater import Autorater

    # "auto": the export's own adapter, and the heads that ship for its model ride beside it.
    return Autorater.from_pretrained(str(path), backend="onnx", quantize="int8",
                                     adapter="auto" if adapter else None, **common)


def _timed(judge: Any, by_set: Mapping[str, Sequence[dict[str, Any]]]) -> tuple[dict[str, list[Any]], float]:
    t0 = time.perf_counter()
    # "return": an item too long for max_length becomes an ItemError and is left out of the
    # comparison (as the eval sets count it), instead of stopping the run.
    out = {name: judge.judge("pairwise", exs, on_error="return") for name, exs in by_set.items()}
    return out, time.perf_counter() - t0


def _flat(by_set: Mapping[str, Sequence[Any]]) -> list[Any]:
    return [x for name in by_set for x in by_set[name]]


def _earlier_selection(path: Path, name: str) -> dict[str, Any] | None:
    """The selection an earlier run (``--dev-pairs 0``) wrote, when it chose ``name``: a
    report with ``--choose`` keeps it, so selection and dev can run as two processes."""
    try:
        train = json.loads(path.read_text())["train"]
    except (OSError, ValueError, KeyError):
        return None
    return train if train.get("chosen", {}).get("candidate") == name else None


def _machine(threads: int) -> str:
    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import onnxruntime
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, {threads} thread(s); torch {torch.__version__}, "
            f"onnxruntime {onnxruntime.__version__}")


def _fmt(stats: Mapping[str, Any]) -> str:
    return (f"{stats['accuracy']:.3f} | {stats['accuracy_delta'] * 100:+.1f} | {stats['same_label']:.1%} | "
            f"{stats['mean_abs_dp']:.4f} | {stats['max_abs_dp']:.4f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-pairs", type=int, default=64, help="train pairs for the selection, split over the train sets")
    ap.add_argument("--train-sets", default=",".join(TRAIN_SETS))
    ap.add_argument("--dev-pairs", type=int, default=60, help="dev pairs per set (first in file order; 0: skip dev)")
    ap.add_argument("--dev-sets", default=",".join(DEV_SETS))
    ap.add_argument("--outlier-pairs", type=int, default=8, help="train pairs whose activations rank the outliers")
    ap.add_argument("--adapter", default="auto", help="auto (what ships: the verdict heads) or none (the raw model)")
    ap.add_argument("--onnx-dir", default=None, help="an export of the judge (default: the cached export)")
    ap.add_argument("--choose", default=None, metavar="NAME", help="skip the selection and report this candidate")
    ap.add_argument("--only", default=None, help="comma-separated candidate names to try (default: all)")
    ap.add_argument("--bar", type=float, default=AGREEMENT_BAR)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from flame_reward.autorater import Autorater
    from flame_reward.models.onnx_export import cached_export, int8_copy

    adapter = None if args.adapter in ("none", "") else args.adapter
    common = {"batch_size": args.batch_size, "max_length": args.max_length, "threads": args.threads}
    base = Path(args.onnx_dir) if args.onnx_dir else cached_export(None, adapter=adapter, quantize="int8")
    reference = Autorater.from_pretrained(None, adapter=adapter, **common)  # torch fp32, prefix sharing on
    info = {"reference": "torch fp32 + prefix sharing", "heads": reference.info.get("heads"),
            "adapter": reference.info.get("adapter"), "onnx_dir": str(base), "machine": _machine(args.threads),
            "batch_size": args.batch_size, "max_length": args.max_length, "command": " ".join(["python"] + sys.argv)}
    print(f"judge: adapter {info['adapter']}, heads {info['heads']}; export {base}", file=sys.stderr)
    weights = linear_weights(reference.scorer.backend.model)
    layers = len(reference.scorer.backend.model.model.layers)
    scratch = Path(tempfile.mkdtemp(prefix="flame-int8-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"info": info}
    try:
        train_sets = [s for s in args.train_sets.split(",") if s]
        train = _records(train_sets, "train", args.train_pairs // len(train_sets))
        train_ex = {name: _examples(recs) for name, recs in train.items()}
        train_labels = [r.label for r in _flat(train)]
        outlier_ex = _flat(train_ex)[:: max(1, len(_flat(train_ex)) // args.outlier_pairs)][:args.outlier_pairs]
        ranking = outlier_ranking(reference, "pairwise", outlier_ex)
        cands = candidates(layers, [name for name, _ in ranking])
        result["outliers"] = ranking[:24]
        print("worst outliers: " + ", ".join(f"{n} {r:.0f}" for n, r in ranking[:8]), file=sys.stderr, flush=True)

        rows: list[dict[str, Any]] = []
        if args.choose is None:
            names = [n for n in cands if args.only is None or n in args.only.split(",")]
            ref_train, ref_s = _timed(reference, train_ex)
            print(f"train reference: {len(train_labels)} pairs in {ref_s:.0f}s", file=sys.stderr, flush=True)
            for name in names:
                t0 = time.perf_counter()
                path = int8_copy(base, scratch / "candidate", cands[name])
                quant_s = time.perf_counter() - t0
                judge = onnx_judge(path, adapter, common)
                got, secs = _timed(judge, train_ex)
                del judge
                row = {"candidate": name, "keep_fp32": list(cands[name]),
                       "kept_fraction": kept_fraction(weights, cands[name]), "seconds": secs,
                       "reference_seconds": ref_s, "quantize_seconds": quant_s,
                       **compare(_flat(ref_train), _flat(got), train_labels)}
                rows.append(row)
                print(f"train {name}: same label {row['same_label']:.1%}, mean |dP| {row['mean_abs_dp']:.4f}, "
                      f"kept {row['kept_fraction']:.0%}, {secs:.0f}s", file=sys.stderr, flush=True)
            chosen = choose(rows, bar=args.bar)
            result["train"] = {"sets": train_sets, "pairs": len(train_labels), "candidates": rows, "chosen": chosen}
        else:
            earlier = _earlier_selection(out / "int8_fidelity.json", args.choose)
            chosen = earlier["chosen"] if earlier else {
                "candidate": args.choose, "keep_fp32": list(cands[args.choose]),
                "kept_fraction": kept_fraction(weights, cands[args.choose]), "meets_bar": None}
            result["train"] = earlier or {"sets": train_sets, "pairs": len(train_labels), "candidates": [],
                                          "chosen": chosen}

        dev_rows: dict[str, Any] = {}
        if args.dev_pairs:
            dev = _records([s for s in args.dev_sets.split(",") if s], "dev", args.dev_pairs)
            dev_ex = {name: _examples(recs) for name, recs in dev.items()}
            ref_dev, ref_s = _timed(reference, dev_ex)
            print(f"dev reference: {sum(map(len, dev_ex.values()))} pairs in {ref_s:.0f}s", file=sys.stderr, flush=True)
            settings = {"plain int8": ()} if chosen["candidate"] == "none" else {
                "plain int8": (), f"int8, {chosen['candidate']} fp32": tuple(chosen["keep_fp32"])}
            for label, keep in settings.items():
                judge = onnx_judge(int8_copy(base, scratch / "dev", keep), adapter, common)
                got, secs = _timed(judge, dev_ex)
                del judge
                per_set = {name: compare(ref_dev[name], got[name], [r.label for r in dev[name]]) for name in dev}
                pooled = compare(_flat(ref_dev), _flat(got), [r.label for r in _flat(dev)])
                dev_rows[label] = {"keep_fp32": list(keep), "seconds": secs, "reference_seconds": ref_s,
                                   "per_set": per_set, "pooled": pooled, "meets_bar": meets_bar(pooled, args.bar),
                                   "sets_meeting_bar": [n for n, s in per_set.items() if meets_bar(s, args.bar)]}
                print(f"dev {label}: same label {pooled['same_label']:.1%}, accuracy {pooled['accuracy_fp32']:.3f} -> "
                      f"{pooled['accuracy']:.3f}, {secs:.0f}s", file=sys.stderr, flush=True)
            result["dev"] = {"pairs_per_set": args.dev_pairs, "sets": {n: len(r) for n, r in dev.items()},
                             "settings": dev_rows}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    (out / "int8_fidelity.json").write_text(json.dumps(result, indent=2) + "\n")
    table = render(result, args.bar)
    (out / "int8_fidelity.md").write_text(table + "\n")
    print(table)
    return 0


def render(result: Mapping[str, Any], bar: float = AGREEMENT_BAR) -> str:
    info, train = result["info"], result["train"]
    lines = ["# int8 fidelity (`benchmarks/int8_fidelity.py`)", "",
             f"Judge: embedded SmolLM2-135M-Instruct, adapter {Path(str(info['adapter'])).name}, "
             f"verdict heads {', '.join(info['heads'] or []) or 'none'}. "
             f"Reference: {info['reference']}. Every judge: `Autorater.judge`, batch {info['batch_size']}, "
             f"max_length {info['max_length']}, prefix sharing on; ORT int8 = dynamic quantisation "
             f"(`quantize_dynamic`, per-tensor) of the linear layers not kept fp32. {info['machine']}.", ""]
    if train["candidates"]:
        lines += [f"## Selection: {train['pairs']} train pairs ({', '.join(train['sets'])}, first in file order)", "",
                  "| keep fp32 | linear weights kept fp32 | same label as fp32 | mean abs. dP(A) | max abs. dP(A) | "
                  "accuracy (fp32 {:.3f}) | seconds (fp32 {:.0f}) |".format(train["candidates"][0]["accuracy_fp32"],
                                                                           train["candidates"][0]["reference_seconds"]),
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in train["candidates"]:
            lines.append(f"| {r['candidate']} | {r['kept_fraction']:.0%} | {r['same_label']:.1%} | {r['mean_abs_dp']:.4f} "
                         f"| {r['max_abs_dp']:.4f} | {r['accuracy']:.3f} | {r['seconds']:.0f} |")
        ch = train["chosen"]
        lines += ["", f"Chosen: **{ch['candidate']}** ({', '.join(ch['keep_fp32']) or 'nothing kept'}); "
                      + ("reaches" if ch["meets_bar"] else "no candidate reaches")
                      + f" the {bar:.0%} same-label bar on train."]
    if result.get("dev"):
        dev = result["dev"]
        lines += ["", f"## Dev: up to {dev['pairs_per_set']} pairs per set (first in file order, ties dropped): "
                      + ", ".join(f"{n} {k}" for n, k in dev["sets"].items()), "",
                  "| setting | set | accuracy fp32 | accuracy int8 | delta (points) | same label | mean abs. dP(A) | "
                  "max abs. dP(A) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for label, s in dev["settings"].items():
            for name, st in [*s["per_set"].items(), ("**pooled**", s["pooled"])]:
                lines.append(f"| {label} | {name} | {st['accuracy_fp32']:.3f} | {_fmt(st)} |")
        lines.append("")
        for label, s in dev["settings"].items():
            p = s["pooled"]
            lines.append(f"- {label}: pooled accuracy {p['accuracy_fp32']:.3f} -> {p['accuracy']:.3f} "
                         f"({p['accuracy_delta'] * 100:+.1f} points), {p['same_label']:.1%} same label, mean |dP(A)| "
                         f"{p['mean_abs_dp']:.4f}: {'meets' if s['meets_bar'] else 'misses'} the bar (within 1 point, "
                         f">= {bar:.0%} same label); sets meeting it: {', '.join(s['sets_meeting_bar']) or 'none'}. "
                         f"{s['seconds']:.0f}s vs {s['reference_seconds']:.0f}s for fp32 in this run.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
