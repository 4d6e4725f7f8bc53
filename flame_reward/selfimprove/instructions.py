"""Where the loops' instructions come from: real prompts, never labels.

``hh`` (or ``hh-helpful`` / ``hh-harmless``) takes the single-turn prompts of the
HH-RLHF *train* split (the dev split, on which the judge is evaluated, is never used, and
a train prompt that also occurs in the dev split is left out) and only the human turn: the chosen/rejected responses and their labels are not read into an
instruction. ``mt-bench`` takes the first turn of the 80 MT-Bench questions (they carry no
labels). Anything else is a file: JSONL, JSONL.gz or a JSON array of objects with a
non-empty ``prompt`` or ``instruction`` string; a bad row stops the run with an
:class:`InvalidInput` naming its line (no row is silently dropped).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flame_reward.errors import DataError, InvalidInput

HH_SETS = {"hh": ("hh-helpful", "hh-harmless"), "hh-helpful": ("hh-helpful",), "hh-harmless": ("hh-harmless",)}
SOURCES = (*HH_SETS, "mt-bench")
MT_BENCH_FILE = "mt-bench-questions/fastchat/llm_judge/data/mt_bench/question.jsonl"
_TURN = re.compile(r"^\s*Human:\s*(.*?)\s*(?:\n\nAssistant:\s*)?$", re.DOTALL)


@dataclass(frozen=True)
class Instruction:
    """One instruction: a stable id, its text and where it came from."""

    id: str
    text: str
    source: str


@dataclass
class InstructionSet:
    """The instructions of one source, and what was left out of it on purpose (counted)."""

    spec: str
    items: list[Instruction]
    notes: dict[str, Any] = field(default_factory=dict)


def _hh_instructions(names: Sequence[str], split: str) -> InstructionSet:
    from flame_reward.data import load_pairs

    items: list[Instruction] = []
    seen: set[str] = set()
    notes = {"split": split, "prompts_read": 0, "multi_turn_skipped": 0, "duplicates_merged": 0,
             "dev_prompts_excluded": 0}
    for name in names:
        # Dev splits are drawn per comparison, so a prompt can have comparisons on both
        # sides: a prompt that also appears in the dev split is left out entirely.
        dev = {r.prompt for r in load_pairs(name, split="dev").records} if split != "dev" else set()
        for record in load_pairs(name, split=split).records:
            notes["prompts_read"] += 1
            prompt = record.prompt
            if prompt in dev:
                notes["dev_prompts_excluded"] += 1
                continue
            if prompt.count("Human:") != 1:
                notes["multi_turn_skipped"] += 1
                continue
            m = _TURN.match(prompt)
            text = (m.group(1) if m else prompt).strip()
            if not text:
                notes["multi_turn_skipped"] += 1
                continue
            if text in seen:
                notes["duplicates_merged"] += 1
                continue
            seen.add(text)
            items.append(Instruction(f"{name}:{record.row}", text, f"{record.source}:{record.row}"))
    return InstructionSet("+".join(names), items, notes)


def _mt_bench() -> InstructionSet:
    from flame_reward.data.location import shared_data_dir

    path = shared_data_dir() / MT_BENCH_FILE
    if not path.is_file():
        raise DataError(f"MT-Bench questions not found at {path}")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        turns = row.get("turns") or []
        if not turns or not isinstance(turns[0], str) or not turns[0].strip():
            raise DataError(f"{path}: line {number} has no first turn")
        items.append(Instruction(f"mt-bench:{row.get('question_id', number)}", turns[0].strip(), f"{path}:{number}"))
    return InstructionSet("mt-bench", items, {"turn": "first turn of each question"})


def _from_file(path: str) -> InstructionSet:
    from flame_reward.io import read_rows

    items = []
    for row in read_rows(path):
        where = f"{path} line {row.line}"
        if row.data is None:
            raise InvalidInput("instructions", f"{where}: {row.error}")
        key = "prompt" if "prompt" in row.data else "instruction" if "instruction" in row.data else None
        if key is None:
            raise InvalidInput("prompt", f"{where}: no 'prompt' or 'instruction' field "
                                         f"(columns: {', '.join(sorted(row.data)) or 'none'})")
        value = row.data[key]
        if not isinstance(value, str):
            raise InvalidInput(key, f"{where}: must be a string, got {type(value).__name__}")
        if not value.strip():
            raise InvalidInput(key, f"{where}: is empty")
        ident = row.data.get("id")
        items.append(Instruction(str(ident) if ident is not None else f"line-{row.line}", value.strip(), where))
    if not items:
        raise InvalidInput("instructions", f"{path}: holds no rows")
    return InstructionSet(path, items, {})


def load_instructions(spec: str, split: str = "train") -> InstructionSet:
    """The instructions of ``spec``: ``hh``, ``hh-helpful``, ``hh-harmless``, ``mt-bench`` or a file."""
    if spec in HH_SETS and not Path(spec).exists():
        return _hh_instructions(HH_SETS[spec], split)
    if spec == "mt-bench" and not Path(spec).exists():
        return _mt_bench()
    if not Path(spec).expanduser().exists():
        raise InvalidInput("--instructions", f"{spec!r} is neither a file nor one of {', '.join(SOURCES)}")
    return _from_file(str(Path(spec).expanduser()))


def iteration_slice(items: Sequence[Instruction], n: int | None, iteration: int, seed: int) -> list[Instruction]:
    """The ``n`` instructions of ``iteration`` (1-based): a seeded shuffle of the pool, cut in
    consecutive slices so iterations see fresh instructions while the pool lasts (then it
    wraps around). ``n=None`` takes the whole pool every iteration."""
    if n is not None and n < 1:
        raise InvalidInput("--n-instructions", f"must be >= 1, got {n}")
    pool = list(items)
    random.Random(seed).shuffle(pool)
    if n is None or n >= len(pool):
        return pool
    start = ((iteration - 1) * n) % len(pool)
    return [pool[(start + i) % len(pool)] for i in range(n)]


__all__ = ["SOURCES", "Instruction", "InstructionSet", "iteration_slice", "load_instructions"]
