"""``eval-pairs``: judge human-labelled preference pairs and report accuracy per set.

A *source* is a named pairwise set (``hh-helpful``, ``pandalm``, ... or a plugin's: see
:func:`flame_reward.data.named_sets`; one split of it) or a file in any pairwise format
:func:`flame_reward.data.read_pairs` knows (RewardBench, HH-RLHF, PandaLM, Auto-J, LLMBar
and formats plugins register through ``register_pair_formats``). Files are always read
whole; ``split`` applies to named sets only.

Row accounting: every row of a source is either judged or reported as bad with its file
and line number: rows the reader could not turn into a pair (``BadRow``) and pairs the
judge rejected (e.g. an empty response, or a prompt too long for ``max_length``).
``rows == judged + bad`` always holds in a report; human ties are judged and counted, but
left out of accuracy (see :mod:`flame_reward.eval.metrics`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flame_reward.data import BadRow, PairRecord, load_pairs, named_sets, read_pairs
from flame_reward.errors import DataError, InvalidInput
from flame_reward.eval.metrics import pairwise_metrics
from flame_reward.eval.rewardbench import rewardbench_summary
from flame_reward.results import ItemError, Verdict


@dataclass
class PairSource:
    """The pairs of one named set or file, after the split and ``limit``, and its bad rows."""

    name: str
    kind: str  # "set" or "file"
    split: str
    records: list[PairRecord]
    bad: list[BadRow] = field(default_factory=list)
    rows_in_file: int = 0
    records_in_split: int = 0
    limit: int | None = None

    @property
    def rows(self) -> int:
        """Rows this evaluation accounts for: the selected pairs plus the unreadable rows."""
        return len(self.records) + len(self.bad)


def load_source(spec: str, split: str = "dev", limit: int | None = None, format: str | None = None) -> PairSource:
    """A named pairwise set (``spec`` in ``named_sets("pairwise")``) or a pairwise file (any other ``spec``).

    ``limit`` keeps the first ``limit`` pairs of the split in file order (bad rows are all
    still reported). Raises :class:`DataError` when ``spec`` is neither a set nor a file.
    """
    if limit is not None and limit < 1:
        raise InvalidInput("--limit", f"must be >= 1, got {limit}")
    sets = named_sets("pairwise")
    if spec in sets and not Path(spec).exists():
        result = load_pairs(spec, split=split)
        kind, used_split = "set", split
    elif Path(spec).exists():
        result = read_pairs(spec, format=format)
        kind, used_split = "file", "all"
    else:
        raise DataError(f"{spec!r} is neither a file nor a named pair set; sets: {', '.join(sets)}")
    records = list(result.records)
    in_split = len(records)
    if limit is not None:
        records = records[:limit]
    return PairSource(spec, kind, used_split, records, list(result.bad), result.total_rows, in_split, limit)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def pair_example(record: PairRecord, *, allow_tie: bool = False, tie_margin: float = 0.0,
                 criteria: str | None = None) -> dict[str, Any]:
    """The ``pairwise`` task example for a record (responses in the record's order).

    ``criteria`` replaces the record's own (a set's, e.g. HH harmlessness), which replaces
    the task default.
    """
    ex: dict[str, Any] = {"prompt": record.prompt, "response_a": record.response_a,
                          "response_b": record.response_b, "allow_tie": allow_tie, "tie_margin": tie_margin}
    criteria = criteria or record.criteria
    if criteria:
        ex["criteria"] = criteria
    return ex


def evaluate_source(
    judge: Any,
    source: PairSource,
    *,
    allow_tie: bool = False,
    tie_margin: float = 0.0,
    criteria: str | None = None,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Judge every pair of ``source`` (both orders) and summarise; returns (report, per-pair rows)."""
    examples = [pair_example(r, allow_tie=allow_tie, tie_margin=tie_margin, criteria=criteria) for r in source.records]
    started = time.perf_counter()
    verdicts = judge.judge("pairwise", examples, on_error="return", progress=progress) if examples else []
    seconds = time.perf_counter() - started
    report = summarize_source(source, verdicts, seconds=seconds)
    report["allow_tie"] = allow_tie
    report["tie_margin"] = tie_margin
    return report, verdict_rows(source, verdicts)


def summarize_source(source: PairSource, verdicts: Sequence[Verdict | ItemError],
                     seconds: float | None = None) -> dict[str, Any]:
    """The report of one source from its verdicts (one per record, in record order).

    Pure arithmetic, so it can be checked on hand-made verdicts. Judge errors
    (:class:`ItemError`) become bad rows carrying the record's line number.
    """
    if len(verdicts) != len(source.records):
        raise ValueError(f"{len(verdicts)} verdicts for {len(source.records)} pairs")
    ok: list[tuple[PairRecord, Verdict]] = []
    bad = list(source.bad)
    for record, verdict in zip(source.records, verdicts):
        if isinstance(verdict, ItemError):
            bad.append(BadRow(record.source, record.row, f"{verdict.field}: {verdict.message}"))
        else:
            ok.append((record, verdict))
    labels = [r.label for r, _ in ok]
    m = pairwise_metrics([v for _, v in ok], labels)
    subsets: dict[str, dict[str, Any]] = {}
    if any(r.subset for r, _ in ok):
        groups: dict[str, list[int]] = {}
        for i, (r, _) in enumerate(ok):
            groups.setdefault(r.subset or "(none)", []).append(i)
        for name, idx in sorted(groups.items()):
            sub = pairwise_metrics([ok[i][1] for i in idx], [ok[i][0].label for i in idx])
            subsets[name] = {"pairs": sub.pairs, "ties": sub.ties, "accuracy": sub.accuracy,
                             "position_consistency": sub.position_consistency}
    rb = rewardbench_summary({name: s["accuracy"] for name, s in subsets.items()})
    truncated = sum(1 for _, v in ok if v.truncated)
    report: dict[str, Any] = {
        "name": source.name,
        "kind": source.kind,
        "split": source.split,
        "limit": source.limit,
        "rows": source.rows,
        "rows_in_file": source.rows_in_file,
        "pairs_in_split": source.records_in_split,
        "judged": len(ok),
        "bad": len(bad),
        "ties": m.ties,
        "scored": len(ok) - m.ties,
        "accuracy": m.accuracy,
        "accuracy_first_order": m.accuracy_first_order,
        "accuracy_second_order": m.accuracy_second_order,
        "position_consistency": m.position_consistency,
        "prefers_first_position": m.prefers_first_position,
        "tie_agreement": m.tie_agreement,
        "truncated_pairs": truncated,
        "head_verdicts": sum(1 for _, v in ok if v.head is not None),
        "subsets": subsets,
        "rewardbench": rb,
        "bad_rows": [{"source": b.source, "row": b.row, "error": b.error} for b in sorted(bad, key=_bad_key)],
    }
    if seconds is not None:
        report["seconds"] = seconds
        report["pairs_per_second"] = len(ok) / seconds if seconds > 0 and ok else float("nan")
    assert report["rows"] == report["judged"] + report["bad"], "every row is judged or reported bad"
    return report


def _bad_key(b: BadRow) -> tuple[str, int]:
    return (b.source, b.row)


def verdict_rows(source: PairSource, verdicts: Sequence[Verdict | ItemError]) -> list[dict[str, Any]]:
    """One line per pair for the per-pair JSONL (no texts: source, row, label and the verdict)."""
    rows = []
    for record, v in zip(source.records, verdicts):
        row: dict[str, Any] = {"set": source.name, "source": record.source, "row": record.row,
                               "subset": record.subset, "label": record.label}
        if isinstance(v, ItemError):
            row["error"] = f"{v.field}: {v.message}"
        else:
            row.update({"verdict": v.label, "score": v.score, "orders": list(v.orders),
                        "consistent": v.consistent, "truncated": list(v.truncated), "tokens": v.tokens,
                        "head": v.head})
        rows.append(row)
    return rows


def pooled(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pair-weighted means of the headline figures over several sources (the ``all`` row)."""
    def weighted(key: str, weight: str) -> float:
        pairs = [(r[key], r[weight]) for r in reports if r[weight] and not _nan(r[key])]
        total = sum(w for _, w in pairs)
        return sum(x * w for x, w in pairs) / total if total else float("nan")

    out: dict[str, Any] = {
        "name": "all",
        "rows": sum(r["rows"] for r in reports),
        "judged": sum(r["judged"] for r in reports),
        "bad": sum(r["bad"] for r in reports),
        "ties": sum(r["ties"] for r in reports),
        "scored": sum(r["scored"] for r in reports),
        "accuracy": weighted("accuracy", "scored"),
        "accuracy_first_order": weighted("accuracy_first_order", "scored"),
        "accuracy_second_order": weighted("accuracy_second_order", "scored"),
        "position_consistency": weighted("position_consistency", "judged"),
        "prefers_first_position": weighted("prefers_first_position", "judged"),
    }
    if any("seconds" in r for r in reports):
        out["seconds"] = sum(r.get("seconds", 0.0) for r in reports)
    return out


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


__all__ = ["PairSource", "evaluate_source", "load_source", "pair_example", "pooled", "summarize_source",
           "verdict_rows"]
