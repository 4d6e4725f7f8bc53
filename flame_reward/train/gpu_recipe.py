"""The GPU path: LoRA on every layer of the embedded judge, in bf16, on the FLAMe multitask
mixture, then the raw and the trained judge on every dev split (``benchmarks/gpu_judge.sh``).

One run, sized for under 10 minutes on one H200: the train splits of every labelled set
(each under its own criteria) mixed examples-proportionally with FLAMe's cap, LoRA SFT of
the generative verdict with :func:`flame_reward.train.sft.train` (all attention and MLP
projections of all layers, bf16 autocast, a step and a time budget), then both judges
scored by the scoring core on the dev splits, which nothing here looks at before. The
report gives pairwise accuracy per set with its 95% Wilson interval, Kendall tau-b per
pointwise dimension, QAGS accuracy, and whether the trained judge beats a baseline report
(the CPU-built judge's figures). ``--dry-run`` runs the same code on the CPU with a tiny
random model and a handful of examples per set, in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.eval.metrics import kendall_tau_b

HH_SETS = ("hh-helpful", "hh-harmless")
GENERAL_SETS = ("pandalm", "auto-j", "llmbar")
SUMMARY_SETS = ("summeval", "dialsummeval")


@dataclass
class GpuRun:
    """A run's settings (written into the report)."""

    out: str
    model: str | None = None
    device: str | None = None
    max_length: int = 1024
    batch_size: int = 16
    learning_rate: float = 3e-4
    lora_r: int = 16
    lora_alpha: int = 32
    epochs: float = 1.0
    max_steps: int = -1
    train_seconds: float = 300.0
    eval_batch: int = 32
    limit_per_set: int | None = None
    seed: int = 0
    dry_run: bool = False


def write_tiny_model(path: Path, seed: int = 0) -> str:
    """A tiny random Llama with the embedded default's tokenizer (the test suite's tiny model),
    saved so that the dry run loads it exactly as it loads a real one."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from flame_reward.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, initializer_range=0.5,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


# --- data ----------------------------------------------------------------------------


def training_mixture(limit_per_set: int | None, seed: int) -> tuple[list[Any], dict[str, int]]:
    """The multitask mixture of every set's train split, capped as in FLAMe (2^16 per task);
    ``limit_per_set`` keeps a seeded draw of that many examples per set (the dry run)."""
    from flame_reward.train.mixture import DEFAULT_CAP, mix
    from flame_reward.train.recipes import CLASSIFICATION_SETS, PAIRWISE_SETS, POINTWISE_SETS, DataPlan, tasks_for

    tasks = tasks_for(DataPlan(PAIRWISE_SETS, POINTWISE_SETS, CLASSIFICATION_SETS), split="train")
    if limit_per_set is not None:
        for name, items in tasks.items():
            random.Random(seed).shuffle(items)
            tasks[name] = items[:limit_per_set]
    items = [item for _, item in mix(tasks, cap=DEFAULT_CAP, seed=seed)]
    return items, dict(Counter(item.dataset for item in items))


def _first_per_group(records: Sequence[Any], limit: int | None) -> list[Any]:
    if limit is None:
        return list(records)
    seen: Counter[str] = Counter()
    kept = []
    for r in records:
        if seen[r.subset or ""] < limit:
            seen[r.subset or ""] += 1
            kept.append(r)
    return kept


def dev_data(limit_per_set: int | None) -> dict[str, dict[str, Any]]:
    """The dev split of every set by kind (the first ``limit_per_set`` per set or dimension)."""
    from flame_reward.data import load_classes, load_scores
    from flame_reward.eval.pairs import load_source
    from flame_reward.train.recipes import CLASSIFICATION_SETS, PAIRWISE_SETS, POINTWISE_SETS

    return {
        "pairwise": {name: load_source(name, "dev", limit_per_set) for name in PAIRWISE_SETS},
        "pointwise": {name: _first_per_group(load_scores(name, split="dev").records, limit_per_set)
                      for name in POINTWISE_SETS},
        "classification": {name: _first_per_group(load_classes(name, split="dev").records, limit_per_set)
                           for name in CLASSIFICATION_SETS},
    }


# --- metrics -------------------------------------------------------------------------


def _rate(hits: float, n: int) -> dict[str, Any]:
    from flame_reward.eval.probe_stats import wilson_interval

    low, high = wilson_interval(hits, n)
    return {"n": n, "accuracy": hits / n if n else float("nan"), "ci95": [low, high]}


def evaluate(judge: Any, dev: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Every dev figure of one judge, through the scoring core (``judge.judge``)."""
    from flame_reward.eval.pairs import evaluate_source
    from flame_reward.results import Verdict
    from flame_reward.train.examples import from_class, from_score

    out: dict[str, Any] = {"pairwise": {}, "pointwise": {}, "classification": {}}
    for name, source in dev["pairwise"].items():
        report, _ = evaluate_source(judge, source)
        row = _rate(report["accuracy"] * report["scored"] if report["scored"] else 0.0, report["scored"])
        row.update(bad=report["bad"], ties=report["ties"], position_consistency=report["position_consistency"])
        out["pairwise"][name] = row
    for name, records in dev["pointwise"].items():
        verdicts = judge.judge("pointwise", [from_score(r).example for r in records], on_error="return")
        groups: dict[str, tuple[list[float], list[float]]] = {}
        bad = Counter[str]()
        for r, v in zip(records, verdicts):
            if isinstance(v, Verdict):
                scores, humans = groups.setdefault(r.subset or "all", ([], []))
                scores.append(v.score)
                humans.append(r.score)
            else:
                bad[r.subset or "all"] += 1
        for subset, (scores, humans) in sorted(groups.items()):
            out["pointwise"][f"{name}/{subset}"] = {"n": len(scores), "tau": kendall_tau_b(scores, humans),
                                                   "bad": bad[subset]}
    for name, records in dev["classification"].items():
        verdicts = judge.judge("classification", [from_class(r).example for r in records], on_error="return")
        kept = [(r, v) for r, v in zip(records, verdicts) if isinstance(v, Verdict)]
        row = _rate(sum(v.label == r.label for r, v in kept), len(kept))
        row["bad"] = len(records) - len(kept)
        out["classification"][name] = row
    return out


def flat(figures: Mapping[str, Any]) -> dict[str, float]:
    """One number per figure: accuracy per pairwise/classification set, tau per
    ``set/dimension``: the form a baseline file may take too."""
    out: dict[str, float] = {}
    for kind, key in (("pairwise", "accuracy"), ("classification", "accuracy"), ("pointwise", "tau")):
        # A report read back from JSON holds null where the figure was nan.
        out.update({name: float("nan") if row[key] is None else row[key] for name, row in figures.get(kind, {}).items()})
    return out


def _mean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def headlines(values: Mapping[str, float], counts: Mapping[str, int]) -> dict[str, float]:
    """Issue 18's targets from per-set figures: HH helpful/harmless mean, PandaLM+Auto-J+LLMBar
    pooled (weighted by ``counts``, the dev pairs scored), mean summary tau, QAGS accuracy."""
    general = [(values[n], counts.get(n, 0)) for n in GENERAL_SETS if n in values and not math.isnan(values[n])]
    weight = sum(w for _, w in general)
    summary = [v for k, v in values.items() if k.split("/")[0] in SUMMARY_SETS and "/" in k]
    return {
        "hh_mean": _mean([values[n] for n in HH_SETS if n in values]),
        "general_pooled": sum(v * w for v, w in general) / weight if weight else float("nan"),
        "summary_tau_mean": _mean(summary),
        "qags": values.get("qags", float("nan")),
    }


def read_baseline(path: str | Path) -> dict[str, float]:
    """A baseline's per-set figures: a flat ``{set or set/dimension: number}`` JSON object
    (a value may also be an object with ``accuracy`` or ``tau``), or this script's report
    (its trained judge's figures)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput("--baseline", f"cannot read {path}: {exc}") from exc
    if isinstance(data, dict) and "trained" in data and isinstance(data["trained"], dict):
        return flat(data["trained"])
    if not isinstance(data, dict):
        raise InvalidInput("--baseline", "must be a JSON object of set -> figure")
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = value.get("accuracy", value.get("tau"))
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidInput(f"--baseline.{key}", f"expected a number or an object with accuracy/tau, got {value!r}")
        out[key] = float(value)
    return out


def compare(trained: Mapping[str, Any], baseline: Mapping[str, float]) -> tuple[bool, list[str]]:
    """Does the trained judge beat the baseline? Yes when it is at least as good on every
    headline the baseline has, better on one, and no pairwise set or QAGS is below the
    baseline by more than the half-width of the trained figure's 95% interval."""
    values = flat(trained)
    counts = {n: row["n"] for n, row in trained["pairwise"].items()}
    mine, theirs = headlines(values, counts), headlines(baseline, counts)
    reasons = []
    shared = [k for k in mine if not math.isnan(theirs[k]) and not math.isnan(mine[k])]
    for key in shared:
        if mine[key] < theirs[key]:
            reasons.append(f"{key} {mine[key]:.3f} < baseline {theirs[key]:.3f}")
    rows = {**trained["pairwise"], **trained["classification"]}
    for name, row in rows.items():
        if name in baseline and not math.isnan(row["accuracy"]):
            half = (row["ci95"][1] - row["ci95"][0]) / 2
            if row["accuracy"] < baseline[name] - half:
                reasons.append(f"{name} {row['accuracy']:.3f} below baseline {baseline[name]:.3f} beyond ±{half:.3f}")
    if not shared:
        reasons.append("the baseline has none of the headline figures")
    elif not reasons and not any(mine[k] > theirs[k] for k in shared):
        reasons.append("no headline better than the baseline")
    return not reasons, reasons


# --- report --------------------------------------------------------------------------


def _f(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _ci(row: Mapping[str, Any]) -> str:
    low, high = row["ci95"]
    return f"{_f(row['accuracy'])} [{_f(low)}, {_f(high)}]"


def _n(row: Mapping[str, Any]) -> str:
    # Items the judge refused (a prompt longer than max_length) are counted beside n.
    return f"{row['n']} (+{row['bad']} refused)" if row.get("bad") else str(row["n"])


def markdown(report: Mapping[str, Any]) -> str:
    raw, trained, base = report["raw"], report["trained"], report.get("baseline") or {}
    t = report["training"]
    lines = [
        "# GPU path: all-layer LoRA on the FLAMe mixture, raw vs trained on the dev splits", "",
        f"- Model: {report['model']}; device {report['device']} ({report.get('device_name') or '-'}); "
        f"{'DRY RUN (tiny random model, a few examples per set)' if report['settings']['dry_run'] else 'full run'}",
        f"- Training: {t['examples']} examples ({', '.join(f'{k}={v}' for k, v in sorted(report['mixture'].items()))}); "
        f"{t['steps']} steps in {t['seconds']:.0f}s (stopped by the time budget: {t['stopped_by_time']}); "
        f"bf16 {t['bf16']}, compute dtypes seen {report['compute_dtypes']}; skipped too long {t['skipped_too_long']}",
        f"- Train loss: first {t['first_losses']}, last {t['last_losses']}",
        f"- Phases (s): {', '.join(f'{k} {v:.0f}' for k, v in report['seconds'].items())}",
        "- Dev splits are read only for this final evaluation; nothing was chosen on them.", "",
        "n: pairs scored (both orders; human ties left out), items or sentences.", "",
        "| set | metric | n | raw | trained | baseline |", "|---|---|---:|---|---|---:|",
    ]
    for kind, metric in (("pairwise", "accuracy [95% CI]"), ("classification", "accuracy [95% CI]")):
        for name, row in trained[kind].items():
            lines.append(f"| {name} | {metric} | {_n(row)} | {_ci(raw[kind][name])} | {_ci(row)} | {_f(base.get(name))} |")
    for name, row in trained["pointwise"].items():
        lines.append(f"| {name} | Kendall tau-b | {_n(row)} | {_f(raw['pointwise'][name]['tau'])} | "
                     f"{_f(row['tau'])} | {_f(base.get(name))} |")
    lines += ["", "| headline | raw | trained | baseline |", "|---|---:|---:|---:|"]
    for key, value in report["headlines"]["trained"].items():
        lines.append(f"| {key} | {_f(report['headlines']['raw'][key])} | {_f(value)} | "
                     f"{_f(report['headlines'].get('baseline', {}).get(key))} |")
    lines += ["", f"**{report['verdict']}**", ""]
    return "\n".join(lines)


# --- the run -------------------------------------------------------------------------


def _dtype_recorder(model: Any) -> tuple[set[str], Any]:
    """Record the output dtype of the first layer's query projection while training: the
    precision the matmuls really ran in."""
    seen: set[str] = set()
    layer = model.model.layers[0].self_attn.q_proj

    def hook(module: Any, args: Any, output: Any) -> None:
        if module.training:
            seen.add(str(output.dtype).replace("torch.", ""))

    return seen, layer.register_forward_hook(hook)


def run(settings: GpuRun, baseline: str | None = None) -> dict[str, Any]:
    """Train, evaluate raw and trained, write ``report.json`` and ``report.md`` under ``out``."""
    import torch

    from flame_reward.autorater import Autorater
    from flame_reward.models.loading import default_device, load_model
    from flame_reward.train.sft import TrainConfig, train

    started = time.perf_counter()
    device = settings.device or default_device()
    if device == "cpu" and not settings.dry_run and settings.device is None:
        # The full run evaluates ~12k dev sequences and trains 1,500 steps: hours on a CPU.
        raise InvalidInput("--device", "no CUDA GPU is visible: use --dry-run, or --device cpu to insist")
    out = Path(settings.out)
    run_dir = out / "lora"
    if run_dir.exists():
        raise InvalidInput("--out", f"{run_dir} exists from an earlier run; remove it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    base_figures = read_baseline(baseline) if baseline else None
    if settings.dry_run:
        settings.model = write_tiny_model(out / "tiny-model", settings.seed)
    phases: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        phases[name] = now - since
        return now

    t = time.perf_counter()
    items, mixture = training_mixture(settings.limit_per_set, settings.seed)
    dev = dev_data(settings.limit_per_set)
    t = lap("data", t)

    def judge(adapter: str | None) -> Any:
        # dtype None: bf16 on a bf16-capable GPU, fp32 on the CPU (the library's default).
        return Autorater.from_pretrained(settings.model, adapter=adapter, device=device,
                                         batch_size=settings.eval_batch, max_length=settings.max_length)

    raw = evaluate(judge(None), dev)
    t = lap("eval_raw", t)
    loaded = load_model(settings.model, adapter=None, device=device, dtype="float32")
    dtypes, handle = _dtype_recorder(loaded.model)
    config = TrainConfig(
        out=str(run_dir), model=settings.model, max_length=settings.max_length, epochs=settings.epochs,
        max_steps=settings.max_steps, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
        lora_r=settings.lora_r, lora_alpha=settings.lora_alpha, top_layers=None, seed=settings.seed,
        eval_every=0, save_every=10**9, log_every=1 if settings.dry_run else 20, device=device,
        bf16=True, max_seconds=settings.train_seconds,
        notes={"recipe": "gpu_recipe: multitask mixture, all-layer LoRA, bf16"},
    )
    # No dev pairs during training: the dev splits are touched once, below.
    training = train(config, items, (), loaded=loaded)
    handle.remove()
    del loaded
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    t = lap("train", t)
    trained = evaluate(judge(training["adapter"]), dev)
    lap("eval_trained", t)
    phases["total"] = time.perf_counter() - started

    counts = {n: row["n"] for n, row in trained["pairwise"].items()}
    heads = {"raw": headlines(flat(raw), counts), "trained": headlines(flat(trained), counts)}
    if base_figures is not None:
        heads["baseline"] = headlines(base_figures, counts)
        beats, reasons = compare(trained, base_figures)
        verdict = ("verdict: the trained LoRA BEATS the baseline" if beats else
                   "verdict: the trained LoRA does NOT beat the baseline: " + "; ".join(reasons))
    else:
        beats, reasons = compare(trained, flat(raw))
        verdict = ("verdict: no baseline given; against the raw model the trained LoRA " +
                   ("wins" if beats else "does not win: " + "; ".join(reasons)))
    report = {
        "settings": asdict(settings), "model": settings.model or "smollm2-135m-instruct (embedded default)",
        "device": device, "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "mixture": mixture, "training": {k: training[k] for k in (
            "examples", "steps", "seconds", "bf16", "stopped_by_time", "skipped_too_long", "skipped_invalid",
            "tokens_per_epoch", "train_loss", "first_losses", "last_losses", "adapter")},
        "compute_dtypes": sorted(dtypes), "raw": raw, "trained": trained, "baseline": base_figures,
        "headlines": heads, "beats_baseline": beats if base_figures is not None else None,
        "verdict": verdict, "seconds": phases,
    }
    from flame_reward.eval.report import write_json

    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_judge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/gpu-judge", help="run directory (report.md, report.json, lora/)")
    p.add_argument("--baseline", default=None,
                   help="JSON of the CPU-built judge's dev figures ({set or set/dimension: number}) to beat")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny random model on the CPU, a few examples per set: checks the path in seconds")
    p.add_argument("--model", default=None, help="base model (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--device", default=None, help="default: cuda when present (cpu for --dry-run)")
    p.add_argument("--max-length", type=int, default=None, help="token budget per example (default 1024; dry run 256)")
    p.add_argument("--batch-size", type=int, default=None, help="default 16 (dry run 4)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None, help="default: the epochs (dry run 3)")
    p.add_argument("--train-seconds", type=float, default=300.0,
                   help="stop training after this long, so that the whole run fits 10 minutes")
    p.add_argument("--limit-per-set", type=int, default=None,
                   help="train examples per set and dev items per set or dimension (default all; dry run 4)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    dry = args.dry_run
    if dry and args.model:
        raise InvalidInput("--model", "the dry run uses its own tiny random model")
    pick = lambda value, full, tiny: value if value is not None else (tiny if dry else full)  # noqa: E731
    settings = GpuRun(
        out=args.out, model=args.model, device=pick(args.device, None, "cpu"),
        max_length=pick(args.max_length, 1024, 256), batch_size=pick(args.batch_size, 16, 4),
        learning_rate=args.lr, lora_r=args.lora_r, lora_alpha=args.lora_alpha, epochs=args.epochs,
        max_steps=pick(args.max_steps, -1, 3), train_seconds=args.train_seconds,
        limit_per_set=pick(args.limit_per_set, None, 4), seed=args.seed, dry_run=dry,
        eval_batch=8 if dry else 32,
    )
    try:
        report = run(settings, args.baseline)
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {Path(settings.out) / 'report.md'}; total {report['seconds']['total']:.0f}s", file=sys.stderr)
    print(report["verdict"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
