"""Evaluation reports: JSON, a Markdown table and a PNG bar chart (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def _json_safe(obj: Any) -> Any:
    """NaN is not JSON: write it as null."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_json_safe(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(_json_safe(row), ensure_ascii=False) + "\n")


def _judge_line(judge: Mapping[str, Any]) -> str:
    parts = [f"judge `{judge.get('model', '?')}`"]
    if judge.get("adapter"):
        parts.append(f"adapter `{judge['adapter']}`")
    for key in ("device", "dtype", "max_length", "threads"):
        if judge.get(key) is not None:
            parts.append(f"{key} {judge[key]}")
    return ", ".join(parts)


# --- eval-pairs ------------------------------------------------------------------------


def pairs_markdown(report: Mapping[str, Any], max_bad: int = 20) -> str:
    """The eval-pairs report as Markdown: the headline table, subsets, RewardBench, bad rows."""
    lines = ["# Preference accuracy (eval-pairs)", "", _judge_line(report.get("judge", {})) + ".", ""]
    lines += [
        ("| set | split | rows | judged | bad | ties | accuracy | acc (as given) | acc (swapped) | consistency "
         "| picks first | tie agreement | sec |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = list(report["sets"]) + ([report["all"]] if report.get("all") and len(report["sets"]) > 1 else [])
    for r in rows:
        lines.append(
            f"| {r['name']} | {r.get('split', '')} | {r['rows']} | {r['judged']} | {r['bad']} | {r['ties']} "
            f"| {_f(r['accuracy'])} | {_f(r['accuracy_first_order'])} | {_f(r['accuracy_second_order'])} "
            f"| {_f(r['position_consistency'])} | {_f(r['prefers_first_position'])} "
            f"| {_f(r.get('tie_agreement'))} | {_f(r.get('seconds'), 0)} |"
        )
    lines += [
        "",
        ("accuracy: the debiased verdict (both presentation orders averaged) prefers the human-preferred "
         "response (an exact tie counts half); human ties are judged, counted in *ties* and left out of "
         "accuracy. acc (as given / swapped): each presentation order alone. consistency: same preference "
         "in both orders. picks first: share of presentations in which the judge chose the response shown "
         "first. rows = judged + bad."),
    ]
    for r in report["sets"]:
        if r.get("rewardbench"):
            rb = r["rewardbench"]
            lines += ["", f"## {r['name']}: RewardBench sections", "",
                      "| section | accuracy |", "|---|---:|"]
            lines += [f"| {s} | {_f(a)} |" for s, a in rb["sections"].items()]
            lines.append(f"| **score** (mean of sections) | {_f(rb['score'])} |")
            if not rb["complete"]:
                lines += ["", (f"Not comparable with the leaderboard: missing sections "
                               f"{', '.join(rb['missing_sections']) or 'none'}, {len(rb['missing_subsets'])} "
                               f"of 23 subsets missing.")]
        if r.get("subsets"):
            lines += ["", f"## {r['name']}: subsets", "", "| subset | pairs | ties | accuracy | consistency |",
                      "|---|---:|---:|---:|---:|"]
            lines += [f"| {name} | {s['pairs']} | {s['ties']} | {_f(s['accuracy'])} | {_f(s['position_consistency'])} |"
                      for name, s in r["subsets"].items()]
    bad = [(r["name"], b) for r in report["sets"] for b in r["bad_rows"]]
    if bad:
        lines += ["", "## Bad rows (skipped, counted)", ""]
        lines += [f"- {name}: `{b['source']}` line {b['row']}: {b['error']}" for name, b in bad[:max_bad]]
        if len(bad) > max_bad:
            lines.append(f"- ... and {len(bad) - max_bad} more (all in the JSON report)")
    return "\n".join(lines) + "\n"


def plot_pairs(report: Mapping[str, Any], path: Path) -> None:
    """Grouped bars per set: accuracy, per-order accuracy, consistency, picks-first; chance line at 0.5."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(report["sets"])
    metrics = [("accuracy", "accuracy"), ("accuracy_first_order", "acc (as given)"),
               ("accuracy_second_order", "acc (swapped)"), ("position_consistency", "consistency"),
               ("prefers_first_position", "picks first")]
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(sets) + 2), 4.2))
    for k, (key, label) in enumerate(metrics):
        xs = [i + (k - (len(metrics) - 1) / 2) * width for i in range(len(sets))]
        ys = [0.0 if r[key] is None or math.isnan(r[key]) else r[key] for r in sets]
        ax.bar(xs, ys, width, label=label)
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(sets)))
    ax.set_xticklabels([f"{r['name']}\n(n={r['scored']})" for r in sets], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate")
    ax.set_title(f"eval-pairs: {report.get('judge', {}).get('model', '')}", fontsize=10)
    ax.legend(fontsize=7, ncol=len(metrics), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- bias ------------------------------------------------------------------------------


def bias_markdown(report: Mapping[str, Any], max_skipped: int = 20) -> str:
    """The bias report as Markdown: one row per probe with its 95% Wilson interval."""
    lines = ["# Bias probes (CoBBLEr-style)", "", _judge_line(report.get("judge", {})) + ".", ""]
    srcs = ", ".join(f"{s['name']} ({s['split']}, {s['pairs']} pairs)" for s in report.get("sources", []))
    lines += [f"Base pairs: {report.get('pairs', 0)} from {srcs}.", ""]
    control = report.get("control") or {}
    if control.get("pairs"):
        lines += [(f"Unperturbed pairs: mean P(first-shown response) {_f(control['p_first_shown'])}; debiased "
                   f"P(human-worse) {_f(control['mean_p_target'])} on average, median distance from 0.5 "
                   f"{_f(control['median_margin'], 4)} (a small margin means a tiny push flips the debiased "
                   f"verdict: read *rate* together with *mean ΔP* and *raw change*)."), ""]
    lines += [("| probe | pairs | rate | 95% CI (Wilson) | toward | away | mean ΔP(target) | raw change "
               "| CoBBLEr humans |"), "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    ref = report.get("reference", {})
    for name, p in report["probes"].items():
        lo, hi = p["ci95"]
        lines.append(
            f"| {name} | {p['pairs']} | {_f(p['rate'])} | [{_f(lo)}, {_f(hi)}] | {_f(p['toward'])} "
            f"| {_f(p['away'])} | {_f(p.get('mean_shift'))} | {_f(p['raw_change_rate'])} "
            f"| {_f(ref[name]['rate']) if name in ref else '–'} |"
        )
    lines += ["", "What each rate is:", ""]
    lines += [f"- **{name}**: {p['definition']}; target = {p['target']}." for name, p in report["probes"].items()]
    lines += [
        "",
        ("toward / away: verdict changes towards / away from the target (order: picked the first-shown "
         "response both times / the second-shown both times). mean ΔP(target): mean change of the "
         "debiased P(target) from the unperturbed pair. raw change: share of single presentations whose "
         "raw verdict changed. CoBBLEr humans: mean rate in CoBBLEr's human bias study, where a comparable "
         "figure exists (definitions in the JSON `reference`)."),
    ]
    if "control_prefers_worse" in report["probes"].get("egocentric", {}):
        lines.append(f"\nEgocentric control: on the unperturbed pairs the judge prefers the human-worse response in "
                     f"{_f(report['probes']['egocentric']['control_prefers_worse'])} of pairs.")
    skipped = report.get("skipped", [])
    if skipped:
        lines += ["", "## Skipped pairs (counted, not measured)", ""]
        lines += [f"- {s['probe']}: `{s['source']}` line {s['row']}: {s['reason']}" for s in skipped[:max_skipped]]
        if len(skipped) > max_skipped:
            lines.append(f"- ... and {len(skipped) - max_skipped} more (all in the JSON report)")
    return "\n".join(lines) + "\n"


def plot_bias(report: Mapping[str, Any], path: Path) -> None:
    """One bar per probe: its rate split into changes toward / away from the target (egocentric:
    the prefers-own rate), the 95% Wilson interval, and CoBBLEr human rates as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def num(x: Any) -> float:
        return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    names = list(report["probes"])
    probes = [report["probes"][n] for n in names]
    rates = [num(p["rate"]) for p in probes]
    split = [n != "egocentric" for n in names]
    toward = [num(p["toward"]) if s else r for p, s, r in zip(probes, split, rates)]
    away = [num(p["away"]) if s else 0.0 for p, s in zip(probes, split)]
    rest = [max(0.0, r - t - a) for r, t, a in zip(rates, toward, away)]
    err = [[max(0.0, r - num(p["ci95"][0] if p["ci95"][0] is not None else r)) for r, p in zip(rates, probes)],
           [max(0.0, num(p["ci95"][1] if p["ci95"][1] is not None else r) - r) for r, p in zip(rates, probes)]]
    xs = list(range(len(names)))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 4.2))
    ax.bar(xs, toward, color="#4c72b0", label="toward target (egocentric: prefers own)")
    ax.bar(xs, away, bottom=toward, color="#a1c9f4", label="away from target")
    ax.bar(xs, rest, bottom=[t + a for t, a in zip(toward, away)], color="#cccccc", label="other change")
    ax.errorbar(xs, rates, yerr=err, fmt="none", ecolor="black", capsize=4, label="rate, 95% Wilson CI")
    ref = report.get("reference", {})
    rx = [i for i, n in enumerate(names) if n in ref]
    if rx:
        ax.scatter(rx, [ref[names[i]]["rate"] for i in rx], marker="D", color="#dd8452", zorder=3,
                   label="CoBBLEr humans")
    ax.set_xticks(xs)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of pairs")
    ax.set_title(f"bias probes: {report.get('judge', {}).get('model', '')} ({report.get('pairs', 0)} base pairs)",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out_dir: str | Path, stem: str, report: Mapping[str, Any], markdown: str,
                 plot: Any, extra_jsonl: Sequence[Mapping[str, Any]] | None = None) -> list[Path]:
    """Write ``<stem>.json``, ``<stem>.md``, ``<stem>.png`` (and ``<stem>.jsonl``) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.png"]
    write_json(paths[0], report)
    paths[1].write_text(markdown, encoding="utf-8")
    plot(report, paths[2])
    if extra_jsonl is not None:
        paths.append(out / f"{stem}.jsonl")
        write_jsonl(paths[-1], extra_jsonl)
    return paths


__all__ = ["bias_markdown", "pairs_markdown", "plot_bias", "plot_pairs", "write_json", "write_jsonl", "write_report"]
