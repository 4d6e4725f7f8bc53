"""Reading JSON data files, and the pairwise row formats of public preference datasets.

Two layers:

* :func:`iter_json_rows` turns a ``.jsonl``, ``.json`` (an array) or gzipped file into
  numbered rows; a line that is not JSON comes back as a :class:`BadRow` with its line
  number instead of stopping the read.
* A :class:`PairFormat` recognises one dataset's columns and converts a row into the
  fields of a :class:`PairRecord`. Built-in formats cover RewardBench, HH-RLHF, PandaLM,
  Auto-J and LLMBar; plugins add more through the ``register_pair_formats`` hook, and
  :data:`PAIR_FORMATS` holds them all (built-ins first).

:func:`read_pairs` combines the two and accounts for every row.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from flame_reward.data.records import PAIR_LABELS, BadRow, PairReadResult, PairRecord
from flame_reward.errors import DataError, InvalidInput
from flame_reward.hookspecs import hookimpl
from flame_reward.registry import Registry

Row = Mapping[str, Any]


# --- files -> rows -------------------------------------------------------------------


def _kind(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    raise DataError(f"{path}: unsupported file type (expected .jsonl, .json, optionally .gz)")


def _open_bytes(path: Path) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as exc:  # unreadable, or a truncated/corrupt gzip stream
        raise DataError(f"{path}: cannot read ({exc})") from exc


def iter_json_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    """Yield ``(row number, row)`` for each row of a JSON Lines or JSON-array file.

    Row numbers are 1-based line numbers for JSONL and 1-based array positions for JSON.
    Blank JSONL lines carry no data and are skipped. A line that is not valid JSON, or a
    row that is not a JSON object, is yielded as a :class:`BadRow`. A file that cannot be
    read at all (missing, corrupt gzip, a ``.json`` that is not one JSON array) raises
    :class:`DataError`.
    """
    path = Path(path)
    kind = _kind(path)
    data = _open_bytes(path)
    source = str(path)

    if kind == "json":
        try:
            items = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON array of rows, got {type(items).__name__}")
        for number, item in enumerate(items, start=1):
            yield number, _as_object(item, source, number)
        return

    # Decode line by line so one bad byte costs one row, not the file.
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield number, BadRow(source, number, f"not UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        except json.JSONDecodeError as exc:
            yield number, BadRow(source, number, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        yield number, _as_object(item, source, number)


def _as_object(item: Any, source: str, number: int) -> dict[str, Any] | BadRow:
    if isinstance(item, dict):
        return item
    return BadRow(source, number, f"expected a JSON object, got {type(item).__name__}")


# --- field access: every failure names the field ------------------------------------


def _text(row: Row, name: str) -> str:
    if name not in row or row[name] is None:
        raise InvalidInput(name, "missing")
    value = row[name]
    if not isinstance(value, str):
        raise InvalidInput(name, f"must be a string, got {type(value).__name__}")
    return value


def _optional_text(row: Row, name: str) -> str | None:
    if row.get(name) is None:
        return None
    return _text(row, name)


def _code(row: Row, name: str, meaning: Mapping[int, str]) -> str:
    """Map an integer code (also accepted as a digit string, as some exports write it)."""
    if name not in row or row[name] is None:
        raise InvalidInput(name, "missing")
    value = row[name]
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in meaning:
        raise InvalidInput(name, f"must be one of {sorted(meaning)}, got {row[name]!r}")
    return meaning[value]


# --- pairwise formats ----------------------------------------------------------------


class PairFields(NamedTuple):
    """What a :class:`PairFormat` extracts from a row; the reader adds dataset, source and row."""

    prompt: str
    response_a: str
    response_b: str
    label: str
    subset: str | None = None


@dataclass(frozen=True)
class PairFormat:
    """A pairwise dataset's row layout.

    ``detect`` looks only at which columns a row has (cheap, used to pick a format);
    ``convert`` validates the row and raises :class:`InvalidInput` naming the bad field.
    """

    name: str
    description: str
    detect: Callable[[Row], bool]
    convert: Callable[[Row], PairFields]


def _has(*names: str) -> Callable[[Row], bool]:
    return lambda row: all(n in row for n in names)


def _rewardbench(row: Row) -> PairFields:
    # The scorer judges both presentation orders, so always putting `chosen` first is fine.
    return PairFields(
        prompt=_text(row, "prompt"),
        response_a=_text(row, "chosen"),
        response_b=_text(row, "rejected"),
        label="A",
        subset=_optional_text(row, "subset"),
    )


_ASSISTANT = "\n\nAssistant:"
_HUMAN = "\n\nHuman:"


def split_hh_transcripts(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two HH-RLHF transcripts into (shared prompt, chosen reply, rejected reply).

    The prompt is the longest common prefix cut after the last ``\\n\\nAssistant:`` marker
    it contains, with its leading newlines removed (the Human:/Assistant: turns stay as
    text). Cutting the *common* prefix rather than each transcript's own last marker
    matters: some replies contain ``\\n\\nAssistant:`` themselves (the model repeating the
    marker), and they are still the final turn. Raises :class:`InvalidInput` when no such
    prefix exists, when a Human turn follows it (the dialogues diverge earlier), or when
    the two replies are identical.
    """
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind(_ASSISTANT)
    if cut < 0:
        culprit = "chosen" if _ASSISTANT not in chosen else "rejected"
        raise InvalidInput(culprit, "the transcripts share no prefix ending at an Assistant turn")
    end = cut + len(_ASSISTANT)
    for name, rest in (("chosen", chosen[end:]), ("rejected", rejected[end:])):
        if _HUMAN in rest:
            raise InvalidInput(name, "the transcripts diverge before the final Assistant turn")
    reply_a, reply_b = chosen[end:].strip(), rejected[end:].strip()
    if reply_a == reply_b:
        raise InvalidInput("rejected", "the final Assistant turn is identical to chosen's")
    return chosen[:end].lstrip("\n"), reply_a, reply_b


def _hh_rlhf(row: Row) -> PairFields:
    prompt, chosen, rejected = split_hh_transcripts(_text(row, "chosen"), _text(row, "rejected"))
    return PairFields(prompt, chosen, rejected, "A")


_PANDALM_VOTE = {0: "tie", 1: "A", 2: "B"}


def _pandalm_response(row: Row, name: str) -> str:
    # PandaLM's test set stores a few one-word answers "True" as JSON `true`; PandaLM's own
    # code formats them with str(), so the judge saw "True". Restore that text.
    value = row.get(name)
    return str(value) if isinstance(value, bool) else _text(row, name)


def _pandalm(row: Row) -> PairFields:
    instruction = _text(row, "instruction")
    extra_input = _optional_text(row, "input")
    prompt = instruction + ("\n\n" + extra_input if extra_input and extra_input.strip() else "")
    votes = [_code(row, f"annotator{i}", _PANDALM_VOTE) for i in (1, 2, 3)]
    label, count = Counter(votes).most_common(1)[0]
    # Three annotators: without two agreeing there is no majority, which we read as a tie.
    return PairFields(
        prompt=prompt,
        response_a=_pandalm_response(row, "response1"),
        response_b=_pandalm_response(row, "response2"),
        label=label if count >= 2 else "tie",
        subset=_optional_text(row, "motivation_app"),
    )


def _auto_j(row: Row) -> PairFields:
    return PairFields(
        prompt=_text(row, "prompt"),
        response_a=_text(row, "response 1"),
        response_b=_text(row, "response 2"),
        label=_code(row, "label", {0: "A", 1: "B", 2: "tie"}),
        subset=_optional_text(row, "scenario"),
    )


def _llmbar(row: Row) -> PairFields:
    return PairFields(
        prompt=_text(row, "input"),
        response_a=_text(row, "output_1"),
        response_b=_text(row, "output_2"),
        label=_code(row, "label", {1: "A", 2: "B"}),
    )


_BUILTIN = (
    # Order matters for detection: the more specific column sets come first.
    PairFormat(
        "rewardbench",
        "prompt, chosen, rejected, optional subset (RewardBench style); label A = chosen",
        _has("prompt", "chosen", "rejected"),
        _rewardbench,
    ),
    PairFormat(
        "hh-rlhf",
        "chosen, rejected: whole '\\n\\nHuman: ... \\n\\nAssistant: ...' transcripts (Anthropic HH-RLHF)",
        lambda row: "chosen" in row and "rejected" in row and "prompt" not in row,
        _hh_rlhf,
    ),
    PairFormat(
        "pandalm",
        "instruction, input, response1, response2, annotator1..3 (0 tie, 1, 2); majority vote",
        _has("instruction", "response1", "response2", "annotator1"),
        _pandalm,
    ),
    PairFormat(
        "auto-j",
        "prompt, 'response 1', 'response 2', label (0 first, 1 second, 2 tie), scenario",
        _has("response 1", "response 2"),
        _auto_j,
    ),
    PairFormat(
        "llmbar",
        "input, output_1, output_2, label (1 or 2)",
        _has("output_1", "output_2"),
        _llmbar,
    ),
)


@hookimpl
def register_pair_formats(register: Callable[[PairFormat], None]) -> None:
    for fmt in _BUILTIN:
        register(fmt)


def _unknown_format(name: str, known: list[str]) -> DataError:
    return DataError(f"unknown pair format {name!r}; known: {', '.join(known)}")


#: Every pairwise format by name, in detection order (the order their hooks ran: the
#: built-ins, then entry-point plugins' formats; see :mod:`flame_reward.plugins`).
PAIR_FORMATS: Registry[PairFormat] = Registry("register_pair_formats", "pair format", _unknown_format)


def get_pair_format(name: str) -> PairFormat:
    """The registered format called ``name``; :class:`DataError` listing known names otherwise."""
    return PAIR_FORMATS.lookup(name)


def _match(row: Row) -> PairFormat | None:
    return next((fmt for fmt in PAIR_FORMATS.values() if fmt.detect(row)), None)


def detect_format(row: Row) -> PairFormat:
    """The first registered format whose columns ``row`` has; :class:`DataError` if none."""
    fmt = _match(row)
    if fmt is None:
        raise DataError(
            f"no pair format matches columns {sorted(row)}; known formats: "
            + "; ".join(f"{f.name} ({f.description})" for f in PAIR_FORMATS.values())
        )
    return fmt


def read_pairs(
    path: str | Path,
    format: str | None = None,
    dataset: str | None = None,
    *,
    subset: str | None = None,
) -> PairReadResult:
    """Read a pairwise file into :class:`PairRecord` objects, accounting for every row.

    ``format`` names a registered :class:`PairFormat`; by default it is detected from the
    first row some format recognises. ``dataset`` defaults to the format's name;
    ``subset``, if given, overrides the subset of every record (e.g. a folder name).
    Malformed rows land in ``.bad``; ``total_rows == len(records) + len(bad)``.
    """
    source = str(path)
    rows = list(iter_json_rows(path))
    fmt = get_pair_format(format) if format is not None else None
    if fmt is None:
        objects = [row for _, row in rows if not isinstance(row, BadRow)]
        fmt = next((m for m in map(_match, objects) if m is not None), None)
        if fmt is None and objects:
            detect_format(objects[0])  # raises, listing the known formats
    result = PairReadResult(total_rows=len(rows))
    for number, row in rows:
        if isinstance(row, BadRow):
            result.bad.append(row)
            continue
        assert fmt is not None  # only None when there are no object rows at all
        try:
            fields = fmt.convert(row)
            if fields.label not in PAIR_LABELS:
                raise InvalidInput("label", f"format {fmt.name!r} produced {fields.label!r}, not one of {PAIR_LABELS}")
        except InvalidInput as exc:
            result.bad.append(BadRow(source, number, str(exc)))
            continue
        except KeyError as exc:  # a plugin converter indexing a missing column
            result.bad.append(BadRow(source, number, f"{exc.args[0]}: missing"))
            continue
        result.records.append(
            PairRecord(
                prompt=fields.prompt,
                response_a=fields.response_a,
                response_b=fields.response_b,
                label=fields.label,
                dataset=dataset or fmt.name,
                subset=subset if subset is not None else fields.subset,
                source=source,
                row=number,
            )
        )
    return result
