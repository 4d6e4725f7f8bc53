"""JSONL files of records the package wrote or ships (data sets, run directories).

Strict on purpose: a line that is not a JSON object stops the read with a
:class:`DataError` naming the file and line, because these files are inputs to a
measurement, where a silently skipped row would change the figures. (User row files with
per-row errors go through :mod:`flame_reward.rows`.)
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from flame_reward.errors import DataError


def _open(path: Path, mode: str, gz: bool) -> IO[str]:
    if gz:
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")  # noqa: SIM115


def iter_jsonl(path: str | os.PathLike[str], *, what: str = "data file") -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` or ``.jsonl.gz`` file, one per non-blank line.

    Args:
        path: the file; a ``.gz`` suffix is read through gzip.
        what: how a missing file is named in the error (e.g. ``"samples file"``).

    Returns:
        An iterator of dicts, in file order. Raises :class:`DataError` for a missing or
        unreadable file, a line that is not JSON or a line that is not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        with _open(path, "r", path.suffix == ".gz") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise DataError(f"{path}: line {number} is not a JSON object")
                yield row
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def read_jsonl(path: str | os.PathLike[str], *, what: str = "data file") -> list[dict[str, Any]]:
    """Every object of :func:`iter_jsonl` as a list."""
    return list(iter_jsonl(path, what=what))


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write ``rows`` as JSONL (UTF-8, ``default=str``) and return how many were written.

    The file is written beside its final name and renamed into place, so a reader (or a
    resumed run) never sees half a file.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with _open(tmp, "w", path.suffix == ".gz") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


__all__ = ["iter_jsonl", "read_jsonl", "write_jsonl"]
