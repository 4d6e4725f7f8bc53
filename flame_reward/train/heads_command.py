"""``flame-reward train-heads``: build the shipped multitask judge (verdict heads) and its card."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.eval.metrics import tau_interval
from flame_reward.hookspecs import hookimpl


def parse_caps(value: str, option: str) -> dict[str, int | None]:
    """``NAME[=CAP],...`` -> ``{name: cap}`` (no cap: every record of the split)."""
    out: dict[str, int | None] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, cap = item.strip().partition("=")
        if not sep or cap.strip().lower() in ("", "all"):
            out[name.strip()] = None
            continue
        try:
            out[name.strip()] = int(cap)
        except ValueError:
            raise InvalidInput(option, f"expected NAME or NAME=CAP with an integer cap, got {item!r}") from None
        if out[name.strip()] < 1:
            raise InvalidInput(option, f"cap must be >= 1, got {item!r}")
    if not out:
        raise InvalidInput(option, "names no set")
    return out


def _caps_text(caps: Mapping[str, int | None]) -> str:
    return ",".join(f"{k}={v}" if v is not None else k for k, v in caps.items())


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from flame_reward.train.heads import DEV_SETS, TRAIN_SETS

    p = subparsers.add_parser(
        "train-heads", help="Build verdict heads on frozen features over every labelled set (the shipped judge).",
        description="Extract verdict features of the train splits (cached), choose the L2 strengths and the "
                    "routes on a validation carve-out of train, refit on all of train and write <out>/heads "
                    "(heads.json, heads.safetensors, MODEL_CARD.md). --dev reads the dev splits once, at the end.")
    p.add_argument("--out", required=True, help="run directory (features cache, heads, reports)")
    p.add_argument("--sets", default=_caps_text(TRAIN_SETS), help="train sets NAME[=CAP],... (records sampled per set)")
    p.add_argument("--dev", action="store_true", help="evaluate the dev splits once at the end (raw vs heads)")
    p.add_argument("--dev-sets", default=_caps_text(DEV_SETS), help="with --dev: dev sets NAME[=CAP],...")
    p.add_argument("--features-dir", default=None, help="feature cache (default <out>/features)")
    p.add_argument("--validation-fraction", type=float, default=0.25)
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(fn=run_train_heads)


def run_train_heads(args: argparse.Namespace) -> int:
    from flame_reward.train.heads import HeadsConfig, train_heads

    if not 0.0 < args.validation_fraction < 1.0:
        raise InvalidInput("--validation-fraction", f"must be in (0, 1), got {args.validation_fraction}")
    if args.max_length < 64:
        raise InvalidInput("--max-length", f"must be >= 64, got {args.max_length}")
    config = HeadsConfig(out=args.out, train_sets=parse_caps(args.sets, "--sets"),
                         dev_sets=parse_caps(args.dev_sets, "--dev-sets") if args.dev else None,
                         validation_fraction=args.validation_fraction, seed=args.seed,
                         max_length=args.max_length, threads=args.threads, features_dir=args.features_dir)
    started = time.time()
    report = train_heads(config)
    argv = ["train-heads", *(sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "train-heads" else [])]
    report["command"] = "flame-reward " + " ".join(shlex.quote(a) for a in argv)
    report["wall_seconds"] = time.time() - started
    out = Path(args.out)
    (out / "train_report.json").write_text(json.dumps(report, indent=2, default=str))
    write_card(out / "heads" / "MODEL_CARD.md", report)
    if report.get("dev"):
        (out / "dev.md").write_text(dev_markdown(report))
        plot_dev(report, out / "dev.png")
    print(f"heads: {out / 'heads'} (routes {', '.join(report['shipped_routes'])}); "
          f"{report['wall_seconds']:.0f}s", file=sys.stderr)
    if report.get("dev"):
        print(dev_markdown(report))
    return 0


def _fmt(row: Mapping[str, Any]) -> str:
    v, ci = row.get("value", float("nan")), row.get("interval", float("nan"))
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f} ± {ci:.3f}"


def dev_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, both in report.get("dev", {}).items():
        raw, judge = both["raw"], both["judge"]
        rows.append({"set": name, "metric": raw.get("metric"), "n": raw.get("pairs", raw.get("n")),
                     "raw": raw, "judge": judge, "head": judge.get("head", 0)})
        for sub, tau in (raw.get("per_subset") or {}).items():
            if len(raw["per_subset"]) > 1:
                ci = tau_interval(raw["subset_n"][sub])
                rows.append({"set": f"{name}/{sub}", "metric": "kendall_tau", "n": raw["subset_n"][sub],
                             "raw": {"value": tau, "interval": ci},
                             "judge": {"value": judge["per_subset"][sub], "interval": ci},
                             "head": None})
    return rows


def headline(report: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The issue's targets: HH helpful/harmless mean, PandaLM+Auto-J+LLMBar pooled, summary tau."""
    dev = report.get("dev", {})
    out: dict[str, dict[str, float]] = {}

    def pooled(names: tuple[str, ...], side: str) -> float:
        got = [(dev[n][side]["value"], dev[n][side]["pairs"]) for n in names if n in dev]
        total = sum(n for _, n in got)
        return sum(v * n for v, n in got) / total if total else float("nan")

    for side in ("raw", "judge"):
        hh = [dev[n][side]["value"] for n in ("hh-helpful", "hh-harmless") if n in dev]
        taus = [dev[n][side]["value"] for n in ("summeval", "dialsummeval") if n in dev]
        out[side] = {"hh_mean": sum(hh) / len(hh) if hh else float("nan"),
                     "general_pooled": pooled(("pandalm", "auto-j", "llmbar"), side),
                     "summary_tau_mean": sum(taus) / len(taus) if taus else float("nan")}
    return out


def dev_markdown(report: Mapping[str, Any]) -> str:
    lines = ["| dev set | metric | n | raw model | shipped judge | head used |", "|---|---|---:|---:|---:|---:|"]
    for r in dev_rows(report):
        lines.append(f"| {r['set']} | {r['metric']} | {r['n']} | {_fmt(r['raw'])} | {_fmt(r['judge'])} | "
                     f"{'' if r['head'] is None else r['head']} |")
    h = headline(report)
    lines += ["", "| target | raw model | shipped judge |", "|---|---:|---:|",
              *[f"| {k} | {h['raw'][k]:.3f} | {h['judge'][k]:.3f} |" for k in h["raw"]]]
    return "\n".join(lines) + "\n"


def plot_dev(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in dev_rows(report) if r["head"] is not None]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(rows) + 2), 4.2))
    xs = range(len(rows))
    for off, side, label in ((-0.2, "raw", "raw model"), (0.2, "judge", "shipped judge")):
        ax.bar([x + off for x in xs], [r[side]["value"] for r in rows], 0.4, label=label,
               yerr=[r[side]["interval"] for r in rows], capsize=3)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{r['set']}\n{r['metric']}" for r in rows], fontsize=7, rotation=30)
    ax.axhline(0.5, color="black", linewidth=0.6, linestyle="--")
    ax.set_title("dev splits, read once: raw model vs shipped judge (95% intervals)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_card(path: Path, report: Mapping[str, Any]) -> Path:
    """The model card of a head set: command, time, data, selection and (when read) dev figures."""
    sel = report["selection"]
    lines = [
        "# smollm2-135m-flame-rm: verdict heads for the embedded judge", "",
        "- Base model: `smollm2-135m-instruct` (the embedded default; portable id, resolved by flame-reward)",
        f"- Rebuild: `{report.get('command', 'flame-reward train-heads --out runs/heads --dev')}`",
        f"- Rebuild time on this CPU (2 cores): {report['rebuild_seconds'] / 60:.0f} min = feature extraction of "
        f"the train splits {sum(report['feature_seconds_train'].values()):.0f} s (measured when the feature cache "
        f"was made) + selection {report['select_seconds']:.0f} s + final fit {report['fit_seconds']:.0f} s",
        f"- Method: {report['method']}; applied in code only on its routes (task, verdict labels, exact criteria); "
        "every other verdict is the raw model's, bit for bit",
        "- On by default: `adapter=\"auto\"` (the default of the Autorater, CLI, TRL rewards, sidecar, reranker) "
        "loads these heads; `--no-adapter` / `adapter=None` gives the raw model. They take part only under the exact "
        "criteria texts below; a paraphrase, the default criteria or any other task is judged by the raw model",
        "", "## Routes shipped", "",
        "| route | task | labels | validation gain | criteria |", "|---|---|---|---:|---|",
    ]
    shipped = set(report["shipped_routes"])
    for r in report["routes"]:
        gain = sel["route_validation_gain"].get(r["name"], float("nan"))
        mark = r["name"] if r["name"] in shipped else f"{r['name']} (not shipped)"
        lines.append(f"| {mark} | {r['task']} | {'/'.join(r['verdicts'])} | {gain:+.3f} | {r['criteria']} |")
    lines += [
        "", "## Data and selection", "",
        "- Train splits only, each set sampled (seeded) to its cap, then mixed examples-proportionally with "
        f"FLAMe's cap of {report['config']['mix_cap']} per task (it does not bind at these sizes): "
        + ", ".join(f"{k} {v}" for k, v in report["train_records"].items()),
        f"- Chosen on a validation carve-out of train ({report['config']['validation_fraction']:.0%} of each set by "
        f"record key): L2 shared {sel['l2_shared']}, L2 per route {sel['l2_route']} (grid of "
        f"{len(report['l2_grid'])}); a route ships only if the sets it serves gain on validation.",
        "- The dev splits were not read to choose anything. "
        + ("They were read once, after the heads were fixed, for the figures below." if report.get("dev")
           else "They have not been read by this run."),
    ]
    if report.get("dev"):
        lines += ["", "## Dev splits (read once)", "",
                  "Each set under its own criteria; the raw model's figure is from the same forward pass. Pairwise: "
                  "accuracy on non-tie pairs (n), both presentation orders; ratings: Kendall tau-b with the human "
                  "mean, per dimension and their mean; `head used`: records a shipped head judged (0: the route was "
                  "not shipped, the raw model judged). 95% intervals (normal for accuracy; tau under independence).",
                  "", dev_markdown(report)]
    lines += ["", "## Limits", "",
              "- Off the routes above the judge is the raw model, which judges near chance on these sets.",
              "- Routes not shipped (validation gain <= 0) leave their sets to the raw model.",
              "- One shared criteria (instruction following) serves PandaLM, Auto-J and LLMBar; LLMBar's adversarial "
              "pairs (a polished response that misses the instruction) can go against it (see the dev table).",
              "- Features are read at `max_length` 1024; longer inputs are truncated (responses and sources only)."]
    path.write_text("\n".join(lines) + "\n")
    return path


__all__ = ["dev_markdown", "headline", "parse_caps", "run_train_heads", "write_card"]
