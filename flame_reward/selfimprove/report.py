"""Run reports: ``<out>/report.json`` and ``<out>/report.md`` (one row per iteration).

Iteration 0 is the starting judge. Each later row is the judge after that iteration's
training; the last column compares its pooled dev accuracy with the row above and says
``worse`` whenever it dropped, however little (the ± beside it is the 95% half-width of
the figure, for judging whether the change is noise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flame_reward.selfimprove.steps import write_json


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _change(row: Mapping[str, Any]) -> str:
    change = row.get("change") or {}
    if change.get("accuracy_change") is None:
        return change.get("verdict", "–")
    hw = change.get("half_width_95")
    noise = f" (±{hw:.3f})" if hw is not None else ""
    return f"{change['accuracy_change']:+.3f} {change['verdict']}{noise}"


def _dev_columns(sets: Sequence[str]) -> list[tuple[str, Callable[[Mapping[str, Any]], str]]]:
    cols: list[tuple[str, Callable[[Mapping[str, Any]], str]]] = []
    for name in sets:
        cols.append((f"{name} acc", lambda r, n=name: fmt(((r.get("dev") or {}).get("sets") or {}).get(n, {}).get("accuracy"))))
    cols.append(("all acc", lambda r: fmt(((r.get("dev") or {}).get("all") or {}).get("accuracy"))))
    cols.append(("position consistency", lambda r: fmt(((r.get("dev") or {}).get("all") or {}).get("position_consistency"))))
    cols.append(("vs previous", _change))
    return cols


def _table(columns: Sequence[tuple[str, Callable[[Mapping[str, Any]], str]]], rows: Sequence[Mapping[str, Any]]) -> str:
    head = "| " + " | ".join(c for c, _ in columns) + " |"
    sep = "|" + "|".join("---:" if i else "---" for i in range(len(columns))) + "|"
    body = ["| " + " | ".join(fn(r) for _, fn in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def self_taught_table(rows: Sequence[Mapping[str, Any]], sets: Sequence[str]) -> str:
    def kept(r: Mapping[str, Any]) -> str:
        j = r.get("judgments")
        if not j:
            return "–"
        return f"{j.get('kept', 0)} / {j.get('correct', 0)} / {j.get('parsed', 0)} / {j.get('sampled', 0)}"

    columns: list[tuple[str, Callable[[Mapping[str, Any]], str]]] = [
        ("iteration", lambda r: str(r["iteration"]) + (" (start)" if r["iteration"] == 0 else "")),
        ("pairs made", lambda r: fmt((r.get("pairs") or {}).get("made"))),
        ("judgments kept / correct / parsed / sampled", kept),
        ("train examples", lambda r: fmt((r.get("train") or {}).get("examples"))),
        *_dev_columns(sets),
    ]
    return _table(columns, rows)


def meta_reward_table(rows: Sequence[Mapping[str, Any]], sets: Sequence[str]) -> str:
    def meta(r: Mapping[str, Any]) -> str:
        m = r.get("meta_agreement") or {}
        if not m.get("compared"):
            return "– (0 comparable)" if m else "–"
        return f"{m['agreement']:.3f} (n={m['compared']})"

    columns: list[tuple[str, Callable[[Mapping[str, Any]], str]]] = [
        ("iteration", lambda r: str(r["iteration"]) + (" (start)" if r["iteration"] == 0 else "")),
        ("responses scored", lambda r: fmt((r.get("judge") or {}).get("responses_scored"))),
        ("actor pairs", lambda r: fmt((r.get("pairs") or {}).get("actor_pairs"))),
        ("judge pairs", lambda r: fmt((r.get("pairs") or {}).get("judge_pairs"))),
        ("DPO steps", lambda r: fmt((r.get("train") or {}).get("steps"))),
        *_dev_columns(sets),
        ("meta-judge agreement", meta),
    ]
    return _table(columns, rows)


def write_run_report(out: Path, command: str, rows: Sequence[Mapping[str, Any]], sets: Sequence[str],
                     settings: Mapping[str, Any]) -> str:
    """Write ``report.json`` and ``report.md`` under ``out``; returns the Markdown table."""
    table = (self_taught_table if command == "self-taught" else meta_reward_table)(rows, sets)
    write_json(out / "report.json", {"command": command, "settings": dict(settings), "iterations": list(rows)})
    note = ("Iteration 0 is the starting judge; each later row is the judge after that iteration. "
            "Dev figures: pairwise accuracy (both orders, debiased) and position consistency on the "
            f"first {settings.get('dev_limit') or 'all'} dev pairs of each set; 'vs previous' compares the "
            "pooled accuracy with the row above (± = 95% half-width).")
    if command == "self-taught":
        note += " Judgments: kept (trained on) / with the correct verdict / with a readable verdict / sampled."
    else:
        note += (" Meta-judge agreement: how often the meta-judge prefers a judgment whose verdict agrees with the "
                 "human label over one that does not, on dev pairs (n = comparisons).")
    text = f"# flame-reward {command}: {out}\n\n{note}\n\n{table}\n"
    (out / "report.md").write_text(text, encoding="utf-8")
    return table


__all__ = ["fmt", "meta_reward_table", "self_taught_table", "write_run_report"]
