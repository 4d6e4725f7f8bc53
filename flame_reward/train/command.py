"""``flame-reward train``: the FLAMe / FLAMe-RM / FLAMe-Opt-RM recipes from the command line."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.hookspecs import hookimpl


def _names(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in value.split(",") if x.strip())


def _weights(value: str | None) -> dict[str, float] | None:
    if not value:
        return None
    out = {}
    for item in value.split(","):
        name, sep, w = item.partition("=")
        try:
            out[name.strip()] = float(w)
        except ValueError:
            raise InvalidInput("--weights", f"expected SET=WEIGHT, got {item!r}") from None
        if not sep:
            raise InvalidInput("--weights", f"expected SET=WEIGHT, got {item!r}")
    return out


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from flame_reward.train.recipes import (
        CLASSIFICATION_SETS,
        PAIRWISE_SETS,
        POINTWISE_SETS,
        TARGET_SETS,
    )

    p = subparsers.add_parser("train", help="Fine-tune a judge with LoRA (FLAMe multitask, FLAMe-RM, FLAMe-Opt-RM).",
                              description=__doc__)
    p.add_argument("--out", required=True, help="run directory (checkpoints, adapter, reports); rerun to resume")
    p.add_argument("--recipe", choices=["multitask", "rm", "opt-rm"], default="rm")
    p.add_argument("--model", default=None, help="base model (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--init-adapter", default=None, help="continue from this LoRA adapter (e.g. a multitask run)")
    p.add_argument("--pairwise-sets", default=",".join(PAIRWISE_SETS))
    p.add_argument("--pointwise-sets", default=",".join(POINTWISE_SETS), help="multitask only")
    p.add_argument("--classification-sets", default=",".join(CLASSIFICATION_SETS), help="multitask only")
    p.add_argument("--cap", type=int, default=2**16, help="per-task cap of the examples-proportional mixture")
    p.add_argument("--weights", default=None, help="explicit mixture weights SET=W,... (replaces the recipe's)")
    p.add_argument("--max-examples", type=int, default=None, help="draw this many examples from the mixture")
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--top-layers", type=int, default=None, help="adapt only the top N layers (faster on CPU)")
    p.add_argument("--dev-sets", default=",".join(TARGET_SETS), help="dev splits whose accuracy is logged")
    p.add_argument("--dev-pairs", type=int, default=64, help="dev pairs evaluated during training")
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--tail-steps", type=int, default=20, help="opt-rm: steps of each tail-patch fine-tune")
    p.add_argument("--cached-top-layers", type=int, default=None, metavar="K",
                   help="train LoRA on the top K layers from cached activations (many epochs on a CPU; "
                        "see docs/training.md); --epochs counts whole passes, --batch-size examples per step")
    p.add_argument("--method", choices=["lora", "probe"], default="lora",
                   help="with --cached-top-layers: 'lora' trains the top K layers by gradient; 'probe' builds "
                        "the last layer's LoRA in closed form from per-criteria probes (docs/training.md)")
    p.add_argument("--probe-l2", type=float, default=0.1, help="probe: L2 penalty of the preference probes")
    p.add_argument("--probe-alpha", type=float, default=8.0, help="probe: gain of the criteria gates")
    p.add_argument("--background-sets", default="",
                   help="probe: pairwise sets whose train prompts (other criteria) keep the rewritten neurons off")
    p.add_argument("--background-examples", type=int, default=400,
                   help="probe: background examples drawn (seeded) from --background-sets, split evenly")
    p.add_argument("--select-fraction", type=float, default=0.1,
                   help="cached: share of training pairs held out to choose the epoch (never the dev sets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default=None)
    p.set_defaults(fn=run_train)


def _config(args: argparse.Namespace, out: str, **over: Any) -> Any:
    from flame_reward.train.sft import TrainConfig

    values = dict(
        out=out, model=args.model, init_adapter=args.init_adapter, max_length=args.max_length,
        epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
        learning_rate=args.lr, lora_r=args.lora_r, lora_alpha=args.lora_alpha, top_layers=args.top_layers,
        seed=args.seed, eval_every=args.eval_every, dev_pairs=args.dev_pairs, save_every=args.save_every,
        threads=args.threads, device=args.device,
    )
    values.update(over)
    return TrainConfig(**values)


def tail_patch(args: argparse.Namespace, sets: tuple[str, ...], dev: list[Any], out: Path,
               loader: Any = None) -> dict[str, Any]:
    """FLAMe-Opt-RM's ablation: a short fine-tune per set from the shared start, measured on dev.

    ``loader()`` returns a fresh base model each call (LoRA wraps a model in place, so each
    ablation needs its own copy); by default ``--model`` is loaded.
    """
    import random

    from flame_reward.models.loading import load_model
    from flame_reward.train.recipes import set_examples, weights_from_effects
    from flame_reward.train.sft import _dev_accuracy, train

    if loader is None:
        def loader() -> Any:
            return load_model(args.model, adapter=args.init_adapter, device=args.device, dtype="float32")

    loaded = loader()
    examples = [d.example for d in dev]
    labels = [d.label for d in dev]
    base = _dev_accuracy(loaded.model, loaded.tokenizer, examples, labels, args.max_length, loaded.device)
    effects: dict[str, float] = {}
    details: dict[str, Any] = {"baseline": base, "sets": {}}
    for name in sets:
        items = set_examples(name, "pairwise", "train")
        # Only tail_steps batches are trained: draw just those (seeded) instead of
        # tokenising the whole set.
        random.Random(args.seed).shuffle(items)
        items = items[: args.tail_steps * args.batch_size * args.grad_accum * 2]
        cfg = _config(args, str(out / "tailpatch" / name), max_steps=args.tail_steps, eval_every=0,
                      save_every=10**9, dev_pairs=len(dev), init_adapter=None)
        report = train(cfg, items, dev, loaded=loader())
        effects[name] = report["dev_after"]["dev_accuracy"] - base["dev_accuracy"]
        details["sets"][name] = {"effect": effects[name], "dev_after": report["dev_after"],
                                 "steps": report["steps"], "seconds": report["seconds"]}
        print(f"tail-patch {name}: dev accuracy {report['dev_after']['dev_accuracy']:.3f} "
              f"({effects[name]:+.3f})", file=sys.stderr)
    details["weights"] = weights_from_effects(effects)
    (out / "tailpatch.json").write_text(json.dumps(details, indent=2))
    lines = ["| set | dev accuracy after tail patch | effect | weight |", "|---|---:|---:|---:|"]
    for name in sets:
        d = details["sets"][name]
        lines.append(f"| {name} | {d['dev_after']['dev_accuracy']:.3f} | {d['effect']:+.3f} | {details['weights'][name]:.3f} |")
    (out / "tailpatch.md").write_text(f"Baseline dev accuracy {base['dev_accuracy']:.3f}\n\n" + "\n".join(lines) + "\n")
    return details


def write_model_card(out: Path, args: argparse.Namespace, argv: list[str], report: dict[str, Any],
                     mixture_counts: dict[str, int]) -> Path:
    """A model card beside the adapter: exact command, data, steps, seed and dev figures."""
    card = out / "adapter" / "MODEL_CARD.md"
    before, after = report.get("dev_before", {}), report.get("dev_after", {})
    lines = [
        f"# flame-reward judge adapter ({args.recipe})", "",
        f"- Base model: {args.model or 'smollm2-135m-instruct (embedded default)'}",
        f"- Init adapter: {args.init_adapter or 'none'}",
        f"- Command: `flame-reward {' '.join(shlex.quote(a) for a in argv)}`",
        f"- Seed: {args.seed}; steps: {report['steps']}; examples: {report['examples']} "
        f"(skipped as too long: {report['skipped_too_long']}); seconds: {report['seconds']:.0f}",
        (f"- LoRA r={len(report['groups'])}, alpha={len(report['groups'])} (probe-built: the last layer's "
         f"gate/up/down_proj), max_length={args.max_length}, activations cached above layer "
         f"{report.get('first_adapted_layer', '?')}" if "groups" in report else
         f"- LoRA r={args.lora_r}, alpha={args.lora_alpha}, lr={args.lr}, batch={args.batch_size}x{args.grad_accum}, "
         f"max_length={args.max_length}, top_layers={f'{args.cached_top_layers} (cached activations)' if getattr(args, 'cached_top_layers', None) else args.top_layers or 'all'}"),
        "- Training data (train splits only; dev splits are held out by record hash):",
        *[f"  - {name}: {n} examples" for name, n in sorted(mixture_counts.items())],
        f"- Dev pairwise accuracy on {args.dev_sets} ({after.get('dev_pairs', '?')} pairs, both orders): "
        f"before {before.get('dev_accuracy', float('nan')):.3f}, after {after.get('dev_accuracy', float('nan')):.3f}; "
        f"position consistency before {before.get('dev_position_consistency', float('nan')):.3f}, "
        f"after {after.get('dev_position_consistency', float('nan')):.3f}",
        f"- Train loss: first {report['first_losses']}, last {report['last_losses']}",
        f"- Method: {report.get('method', 'LoRA SFT (TRL SFTTrainer)')}",
    ]
    for key in sorted(k for k in after if k.startswith("dev:") or k == "select"):
        b, a = before.get(key, {}), after[key]
        if isinstance(a, dict) and a.get("pairs"):
            lines.append(f"  - {key}: {a['pairs']} pairs, accuracy {b.get('accuracy', float('nan')):.3f} -> "
                         f"{a['accuracy']:.3f}, position consistency {b.get('position_consistency', float('nan')):.3f}"
                         f" -> {a['position_consistency']:.3f}")
    if "groups" in report:
        lines.append(f"- Probe LoRA: criteria groups {report['groups']}; rewritten last-layer MLP neurons "
                     f"{report['neurons']}; output scale {report['scale']} (lowest training cross-entropy); "
                     f"detector agreement {report['detector_agreement']}; probe L2 {args.probe_l2}, "
                     f"gate gain {args.probe_alpha}")
    card.write_text("\n".join(lines) + "\n")
    return card


def _background(args: argparse.Namespace) -> list[Any]:
    """``--background-sets``: seeded draws of train-split examples, split evenly over the sets."""
    import random

    from flame_reward.train.recipes import set_examples

    names = _names(args.background_sets)
    out: list[Any] = []
    for name in names:
        examples = set_examples(name, "pairwise", "train")
        random.Random(args.seed).shuffle(examples)
        out += examples[: max(1, args.background_examples // len(names))]
    return out


def _train_cached(args: argparse.Namespace, out: Path, items: list[Any]) -> dict[str, Any]:
    """``--cached-top-layers``: the cached top-layer trainer; dev sets measured per set."""
    from flame_reward.data import load_pairs
    from flame_reward.train.cached import CachedConfig, train_cached
    from flame_reward.train.examples import from_pair
    from flame_reward.train.probe import ProbeConfig, train_probe

    if args.recipe == "opt-rm" or args.init_adapter:
        raise InvalidInput("--cached-top-layers", "works from the base model with the multitask or rm recipe")
    if args.epochs != int(args.epochs) or args.epochs < 1:
        raise InvalidInput("--epochs", "must be a whole number of passes with --cached-top-layers")
    dev_sets = {}
    for name in _names(args.dev_sets):
        records = [r for r in load_pairs(name, split="dev").records if r.label != "tie"][: args.dev_pairs]
        dev_sets[name] = [ex for r in records for ex in from_pair(r)]
    common = dict(out=str(out), model=args.model, top_layers=args.cached_top_layers, max_length=args.max_length,
                  epochs=int(args.epochs), batch_size=args.batch_size * args.grad_accum, learning_rate=args.lr,
                  lora_r=args.lora_r, lora_alpha=args.lora_alpha, select_fraction=args.select_fraction,
                  seed=args.seed, threads=args.threads, device=args.device)
    if args.method == "probe":
        report = train_probe(ProbeConfig(**common, l2=args.probe_l2, alpha=args.probe_alpha), items, dev_sets,
                             background=_background(args))
    else:
        report = train_cached(CachedConfig(**common), items, dev_sets)
    # The SFT report's field names, so the model card and summary read the same.
    report["examples"] = len(items)
    report["skipped_too_long"] = report["skipped"].get("too_long", 0)
    report["first_losses"] = [h.get("train_loss") for h in report["history"][1:3]]
    report["last_losses"] = [h.get("train_loss") for h in report["history"][-2:]]
    for key in ("dev_before", "dev_after"):
        row = report[key]
        accs = [v["accuracy"] for k, v in row.items() if k.startswith("dev:") and v.get("pairs")]
        cons = [v["position_consistency"] for k, v in row.items() if k.startswith("dev:") and v.get("pairs")]
        row["dev_accuracy"] = sum(accs) / len(accs) if accs else float("nan")
        row["dev_position_consistency"] = sum(cons) / len(cons) if cons else float("nan")
        row["dev_pairs"] = sum(v.get("pairs", 0) for k, v in row.items() if k.startswith("dev:") and isinstance(v, dict))
    return report


def run_train(args: argparse.Namespace) -> int:
    from collections import Counter

    from flame_reward.train.recipes import DataPlan, build_mixture, dev_pairs
    from flame_reward.train.sft import train

    if args.method == "probe" and not args.cached_top_layers:
        raise InvalidInput("--method", "probe works on the activation cache: add --cached-top-layers K")
    if _names(args.background_sets) and args.method != "probe":
        raise InvalidInput("--background-sets", "only --method probe uses background examples")
    if args.background_examples < 1:
        raise InvalidInput("--background-examples", f"must be >= 1, got {args.background_examples}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = DataPlan(
        pairwise=_names(args.pairwise_sets),
        pointwise=_names(args.pointwise_sets) if args.recipe == "multitask" else (),
        classification=_names(args.classification_sets) if args.recipe == "multitask" else (),
    )
    dev = dev_pairs(_names(args.dev_sets))
    weights = _weights(args.weights)
    if args.recipe == "opt-rm" and weights is None:
        weights = tail_patch(args, plan.pairwise, dev[: max(args.dev_pairs, 1)], out)["weights"]
    items = build_mixture(args.recipe, plan, cap=args.cap, weights=weights, total=args.max_examples, seed=args.seed)
    counts = Counter(item.dataset for item in items)
    print(f"{args.recipe}: {len(items)} training examples " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
          file=sys.stderr)
    if args.cached_top_layers:
        report = _train_cached(args, out, items)
    else:
        report = train(_config(args, str(out)), items, dev)
    argv = sys.argv[1:] if sys.argv and sys.argv[0].endswith("flame-reward") else ["train", *sys.argv[1:]]
    card = write_model_card(out, args, argv, report, dict(counts))
    after = report.get("dev_after", {})
    print(f"adapter: {report['adapter']} (model card {card}); dev accuracy "
          f"{report.get('dev_before', {}).get('dev_accuracy', float('nan')):.3f} -> {after.get('dev_accuracy', float('nan')):.3f} "
          f"on {after.get('dev_pairs', 0)} pairs; {report['steps']} steps in {report['seconds']:.0f}s")
    return 0
