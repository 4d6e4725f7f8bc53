"""Reports of ``flame-reward humaneval`` runs: a Markdown table and a bar chart (PNG).

``python -m flame_reward.rerank.report RUN_DIR... --markdown T.md --png P.png`` merges the
``summary.json`` of several runs (e.g. one per slice or per strategy) into one table and
one chart.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KIND_LABELS = {
    "baseline": "baseline",
    "judge": "judge only",
    "execution": "execution only",
    "execution+judge": "execution + judge",
}


def rows_of(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per strategy of a run's ``summary.json``, with the run's slice and judge."""
    rows = []
    for s in summary["strategies"].values():
        rows.append({**s, "slice": summary["slice"], "judge": summary.get("judge") or "-",
                     "limit": summary.get("limit")})
    return rows


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The results table: random / reranked top-1 / oracle per strategy and slice.

    ``pass-vs-fail AUC``: over tasks with both passing and failing candidates, how often
    the ranking scores a passing candidate above a failing one (50 = chance)."""
    head = ("| samples | strategy | kind | tasks | random pass@1 | reranked top-1 | oracle pass@n "
            "| pass-vs-fail AUC | judge calls / task | judge calls | wall s |")
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        auc = r.get("pass_auc")
        lines.append(
            f"| {r['slice']} | {r['strategy']} | {KIND_LABELS.get(r['kind'], r['kind'])} | {r['tasks']} "
            f"| {r['random_pass1']:.1f} | **{r['top1']:.1f}** | {r['oracle']:.1f} "
            f"| {'-' if auc is None else f'{auc:.1f}'} "
            f"| {r['judge_calls_per_task']:g} | {r['judge_calls']} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def bar_chart(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "HumanEval Best-of-N pass@1") -> None:
    """Grouped bars (random, reranked top-1, oracle) per strategy and slice (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['strategy']}\n{r['slice']} ({r['tasks']})" for r in rows]
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.2))
    xs = list(range(len(rows)))
    series = [("random pass@1", "random_pass1", "#9e9e9e"), ("reranked top-1", "top1", "#1f77b4"),
              ("oracle pass@n", "oracle", "#2ca02c")]
    for k, (name, key, color) in enumerate(series):
        values = [r[key] for r in rows]
        bars = ax.bar([x + (k - 1) * width for x in xs], values, width, label=name, color=color)
        if key == "top1":
            for bar, v in zip(bars, values):
                ax.annotate(f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    ax.axhline(31.1, color="#d62728", linestyle="--", linewidth=1, label="FLAMe-RM-24B (paper) 31.1")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Merge the ``summary.json`` of runs into one Markdown table and chart."""
    parser = argparse.ArgumentParser(prog="python -m flame_reward.rerank.report", description=main.__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (each with summary.json)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here (default: stdout)")
    parser.add_argument("--png", type=Path, default=None, help="write the chart here")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for run in args.runs:
        rows.extend(rows_of(json.loads((run / "summary.json").read_text())))
    table = markdown_table(rows)
    if args.markdown:
        args.markdown.write_text(table)
    else:
        sys.stdout.write(table)
    if args.png:
        bar_chart(rows, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
