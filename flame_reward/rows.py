"""Reading and writing row files for the CLI: JSONL or a JSON array in, JSONL out.

No input row is ever dropped: a line that is not JSON, or not an object, comes back as
a row carrying its ``_line`` number, its raw text and an ``error``.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flame_reward.errors import DataError


@dataclass
class InputRow:
    """One input row: its 1-based line (or array position) and the object, or why not."""

    line: int
    data: dict[str, Any] | None
    raw: str | None = None
    error: str | None = None


def _open_text(path: str) -> IO[str]:
    if path == "-":
        return sys.stdin
    p = Path(path)
    if not p.is_file():
        raise DataError(f"input file {path!r} does not exist")
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8")
    return p.open(encoding="utf-8")


def read_rows(path: str) -> Iterator[InputRow]:
    """Rows of a JSONL file, a ``.jsonl.gz`` or a JSON array (detected by the first character)."""
    with _open_text(path) as fh:
        text = fh.read()
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: looks like a JSON array but is not valid JSON ({exc})") from exc
        for i, item in enumerate(items, 1):
            if isinstance(item, dict):
                yield InputRow(i, item)
            else:
                yield InputRow(i, None, json.dumps(item), f"row {i}: expected a JSON object, got {type(item).__name__}")
        return
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            yield InputRow(i, None, line, f"line {i}: invalid JSON ({exc.msg})")
            continue
        if not isinstance(item, dict):
            yield InputRow(i, None, line, f"line {i}: expected a JSON object, got {type(item).__name__}")
        else:
            yield InputRow(i, item)


class RowWriter:
    """Writes JSONL rows to a file or stdout, flushing as it goes (partial results survive)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fh: IO[str] = sys.stdout if path in (None, "-") else open(path, "w", encoding="utf-8")  # noqa: SIM115

    def write(self, row: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not sys.stdout:
            self._fh.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def row_example(row: InputRow, defaults: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """The judge example of a parsed row: ``defaults``, the row's columns, then ``--map``ped fields."""
    assert row.data is not None
    example = {**defaults, **row.data}
    for field, column in mapping.items():
        if column in row.data:
            example[field] = row.data[column]
    return example


def row_record(row: InputRow, result: Any) -> tuple[dict[str, Any], bool]:
    """The output record of a row and whether it was judged: the row with ``flame_reward``
    (the verdict), or with ``error`` and ``_line`` (an item error, or a row that did not parse)."""
    if row.data is None:
        return {"_line": row.line, "_raw": row.raw, "error": row.error}, False
    record = dict(row.data)
    if hasattr(result, "score"):
        record["flame_reward"] = result.to_dict()
        return record, True
    record["error"] = result.to_dict()["error"]
    record["_line"] = row.line
    return record, False
