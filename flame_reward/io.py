"""Row files in and out: JSONL, gzipped JSONL or a JSON array in, JSONL out.

Reading is streaming and binary-safe: a file is read a chunk at a time and split on
``\\n`` only, so one bad line costs one row, never the file. A line that is not UTF-8, not
JSON, not an object, or that JSON would change on a round trip (a duplicate key, a lone
surrogate, a number out of range) comes back as an :class:`InputRow` with ``data=None``,
its exact bytes and an ``error`` naming the line. Whole-file problems (missing, a
directory, unreadable, binary, another compression format) raise :class:`DataError` when
the file is opened, before anything else is done. A gzip stream that ends early or is
corrupt keeps every row before the damage and ends with one error row saying so.

Writing is a batch at a time: one ``write`` and a flush per batch, with SIGINT and SIGTERM
held off while it is written, so an output file only ever ends in whole rows and an
interrupted run keeps what it finished. :func:`read_written` reads such a file back so a
run can resume after the rows it already holds.

The output row of an input row is the input object with the result fields and ``_line``
added; an input that already uses one of :data:`RESERVED` keys is kept whole under
``_input`` instead, so nothing is overwritten. A row that could not be read keeps its
text in ``_raw`` (and its exact bytes in ``_raw_base64`` when they are not UTF-8).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import gzip
import hashlib
import json
import math
import os
import re
import signal
import stat
import sys
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from io import RawIOBase
from typing import IO, Any

from flame_reward.errors import DataError

#: Keys the output adds to a row; an input row holding any of them is nested under ``_input``.
RESERVED: frozenset[str] = frozenset({"flame_reward", "error", "_line", "_raw", "_raw_base64", "_input"})

_CHUNK = 1 << 16
_SNIFF = 1 << 16  # bytes of (decompressed) content looked at before reading any row
_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = b" \t\r\n"
_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_FORMATS = ((b"BZh", "bzip2-compressed"), (b"\xfd7zXZ\x00", "xz-compressed"),
                  (b"\x28\xb5\x2f\xfd", "zstd-compressed"), (b"PK\x03\x04", "a zip archive"),
                  (b"7z\xbc\xaf\x27\x1c", "a 7z archive"), (b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF"))
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: Deepest nesting a row may have: deeper values cannot be written back (or judged) reliably
#: within Python's recursion limit, so they are error rows kept as text.
MAX_DEPTH = 256


# --- rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputRow:
    """One input row: its 1-based line (or array position) and its object, or why not.

    ``raw`` holds the row's exact bytes (without the line ending) when ``data`` is None.
    """

    line: int
    data: dict[str, Any] | None
    raw: bytes | None = None
    error: str | None = None

    def record(self, result: Mapping[str, Any]) -> dict[str, Any]:
        """The output row: this row kept verbatim, plus ``result`` and ``_line``."""
        if self.data is None:
            return {"_line": self.line, **raw_fields(self.raw or b""), "error": self.error}
        if RESERVED.intersection(self.data):
            return {"_line": self.line, "_input": self.data, **result}
        return {**self.data, **result, "_line": self.line}

    def digest(self) -> bytes:
        """A fingerprint of the input, equal to :func:`original_digest` of its output row."""
        return _digest(("row", self.data) if self.data is not None else ("raw", self.raw or b""))


def raw_fields(raw: bytes) -> dict[str, str]:
    """``_raw`` (text; invalid bytes as ``\\xNN``) and, unless UTF-8, the exact ``_raw_base64``."""
    try:
        return {"_raw": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"_raw": raw.decode("utf-8", "backslashreplace"), "_raw_base64": base64.b64encode(raw).decode("ascii")}


def original_digest(record: Mapping[str, Any]) -> bytes:
    """The fingerprint of the input row an output row was written for (see :meth:`InputRow.record`)."""
    if "_input" in record:
        return _digest(("row", record["_input"]))
    if "_raw" in record:
        encoded = record.get("_raw_base64")
        raw = base64.b64decode(encoded) if isinstance(encoded, str) else str(record["_raw"]).encode("utf-8", "surrogatepass")
        return _digest(("raw", raw))
    return _digest(("row", {k: v for k, v in record.items() if k not in RESERVED}))


def _digest(original: tuple[str, Any]) -> bytes:
    kind, value = original
    if kind == "raw":
        text = "raw:" + base64.b64encode(value).decode("ascii")
    else:
        text = "row:" + json.dumps(value, sort_keys=True, ensure_ascii=True)
    return hashlib.blake2b(text.encode("ascii"), digest_size=16).digest()


# --- parsing one value -----------------------------------------------------------------


class _Decoder:
    """A JSON decoder that notes what a round trip would lose instead of losing it."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._json = json.JSONDecoder(object_pairs_hook=self._object, parse_float=self._float)

    def _object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    self.problems.append(f"duplicate key {key!r} (one of its values would be lost)")
                    break
                seen.add(key)
        return out

    def _float(self, text: str) -> float:
        value = float(text)
        if math.isinf(value):
            self.problems.append(f"number {text[:40]} is out of range for a float")
        return value

    def decode(self, text: str, start: int = 0) -> tuple[Any, int]:
        """``(value, end)`` of the JSON value at ``text[start:]``; raises ``ValueError``/``RecursionError``."""
        self.problems.clear()
        return self._json.raw_decode(text, start)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    return "a number"


def _lone_surrogate(value: Any) -> str | None:
    """Where ``value`` holds a lone surrogate (valid JSON escapes, but not Unicode), or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                path = f"{where}.{k}" if where else k
                if _has_surrogate(k):
                    return f"key {path!r}"
                stack.append((path, v))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
        elif isinstance(item, str) and _has_surrogate(item):
            return f"field {where!r}"
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check(decoder: _Decoder, value: Any, text: str) -> str | None:
    """Why a decoded value cannot be a row (or None): not an object, or lossy on a round trip."""
    if not isinstance(value, dict):
        return f"expected a JSON object, got {_json_type(value)}"
    if decoder.problems:
        return decoder.problems[0]
    if text.count("[") + text.count("{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        return f"nested deeper than {MAX_DEPTH} levels"
    if _SURROGATE_ESCAPE.search(text):  # only \\uD8xx-\\uDFxx escapes can make a surrogate
        where = _lone_surrogate(value)
        if where:
            return f"{where} holds a lone surrogate escape (\\uD800-\\uDFFF), which is not valid Unicode"
    return None


# --- reading -----------------------------------------------------------------------------


def _open_input(path: str) -> IO[bytes]:
    if path == "-":
        if sys.stdin is None or not hasattr(sys.stdin, "buffer"):
            raise DataError("input '-': there is no standard input to read")
        return sys.stdin.buffer
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"input file {path!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"cannot read input {path!r}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"input {path!r} is a directory, not a file of rows")
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by RowSource
    except OSError as exc:
        raise DataError(f"cannot read input {path!r}: {exc.strerror or exc}") from None


def _read_upto(fh: IO[bytes], size: int) -> bytes:
    parts, have = [], 0
    while have < size:
        part = fh.read(size - have)
        if not part:
            break
        parts.append(part)
        have += len(part)
    return b"".join(parts)


class _Replay(RawIOBase):
    """A binary stream that first gives back the bytes already taken from it (stdin cannot seek)."""

    def __init__(self, prefix: bytes, stream: IO[bytes]) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        read1 = getattr(self._stream, "read1", self._stream.read)
        data = read1(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class RowSource:
    """An open input file of rows, checked up front; iterate it for :class:`InputRow` s.

    Opening raises :class:`DataError` (one line naming the file) when the input is missing,
    a directory, unreadable, empty of text (binary), or compressed other than by gzip.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = "<stdin>" if path == "-" else path
        self._fh = _open_input(path)
        self._failure: str | None = None
        self._pending: list[bytes] = []
        try:
            self._stream = self._open_stream()
            self._head = self._take_head()
            self.kind = self._sniff()
        except DataError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise DataError(f"cannot read input {self.name!r}: {exc.strerror or exc}") from None

    # -- set-up --------------------------------------------------------------------------
    def _open_stream(self) -> IO[bytes]:
        prefix = _read_upto(self._fh, 8)
        for magic, what in _OTHER_FORMATS:
            if prefix.startswith(magic):
                raise DataError(f"input {self.name!r} is {what}, not JSON rows (gzip is the only compression read)")
        stream: IO[bytes] = _Replay(prefix, self._fh)  # type: ignore[assignment]
        self.compressed = prefix.startswith(_GZIP_MAGIC)
        if self.compressed:
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
        return stream

    def _chunks(self) -> Iterator[bytes]:
        """Decompressed chunks until the end, or until damage (then ``_failure`` says what)."""
        read1 = getattr(self._stream, "read1", self._stream.read)
        while True:
            try:
                chunk = read1(_CHUNK)
            except EOFError:
                self._failure = "the gzip stream is truncated (it ends before its end marker); rows after this point are missing"
                return
            except (zlib.error, gzip.BadGzipFile) as exc:
                self._failure = f"the gzip data is corrupt ({exc}); rows after this point could not be read"
                return
            except OSError as exc:
                self._failure = f"reading failed ({exc.strerror or exc}); rows after this point could not be read"
                return
            if not chunk:
                return
            yield chunk

    def _take_head(self) -> bytes:
        # A pipe is sniffed on its first whole line, so rows stream as a producer writes them.
        try:
            streaming = not stat.S_ISREG(os.fstat(self._fh.fileno()).st_mode)
        except (OSError, ValueError, AttributeError):
            streaming = True
        chunks = self._chunks()
        have = 0
        for chunk in chunks:
            self._pending.append(chunk)
            have += len(chunk)
            if have >= _SNIFF or (streaming and b"\n" in chunk):
                break
        else:
            self._eof = True
            if self._failure and not self._pending:
                raise DataError(f"input {self.name!r} holds no readable rows: {self._failure.split('; ')[0]}")
            return b"".join(self._pending)
        self._eof = False
        self._rest = chunks
        return b"".join(self._pending)

    def _sniff(self) -> str:
        """``jsonl`` or ``json`` (one array); raises DataError for content that is not JSON text at all."""
        head = self._head
        body = head[3:] if head.startswith(_BOM) else head
        lines = body.split(b"\n")
        complete = [ln for ln in (lines if self._eof else lines[:-1]) if ln.strip(_JSON_SPACE)]
        kind = "jsonl"
        if body.lstrip(_JSON_SPACE)[:1] == b"[":
            # A whole JSON value on the first line and more lines after it: JSONL whose first row is an array.
            kind = "jsonl" if len(complete) > 1 and _is_json(complete[0]) else "json"
        zero = head.find(b"\x00")
        # A NUL byte is never JSON text: with no readable row beside it, the file is binary; among
        # readable rows it is one bad line.
        if zero >= 0 and (kind == "json" or not any(_is_json(ln) for ln in complete)):
            hint = ("; it looks UTF-16: convert it to UTF-8" if head[:2] in (b"\xff\xfe", b"\xfe\xff")
                    else "; JSON text never holds a NUL byte")
            raise DataError(f"input {self.name!r} is binary (a NUL byte at offset {zero}), not UTF-8 JSON rows{hint}")
        if complete and not any(_is_utf8(ln) for ln in complete):
            raise DataError(f"input {self.name!r} is not UTF-8 text (no line of its first {len(head)} bytes "
                            "decodes); convert it to UTF-8")
        return kind

    # -- rows ----------------------------------------------------------------------------
    def _all_chunks(self) -> Iterator[bytes]:
        pending, self._pending = self._pending, []
        yield from pending
        if not self._eof:
            yield from self._rest

    def __iter__(self) -> Iterator[InputRow]:
        return self._json_array() if self.kind == "json" else self._jsonl()

    def _jsonl(self) -> Iterator[InputRow]:
        decoder = _Decoder()
        number = 0
        carry = bytearray()
        for chunk in self._all_chunks():
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    carry += chunk[start:]
                    break
                if carry:
                    carry += chunk[start:end]
                    line, carry = bytes(carry), bytearray()
                else:
                    line = chunk[start:end]
                start = end + 1
                number += 1
                row = _jsonl_row(decoder, number, line)
                if row is not None:
                    yield row
        number += 1
        if self._failure:
            yield InputRow(number, None, bytes(carry).removesuffix(b"\r"),
                           f"line {number}: {self.name} ends here: {self._failure}")
        elif carry:
            row = _jsonl_row(decoder, number, bytes(carry))
            if row is not None:
                yield row

    def _json_array(self) -> Iterator[InputRow]:
        decoder = _Decoder()
        text_of = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        chunks = self._all_chunks()
        buf, pos, eof = "", 0, False

        def more(least: int = 1) -> bool:
            """Read until ``least`` more characters are buffered; False at the end of input."""
            nonlocal buf, pos, eof
            if eof:
                return False
            buf, pos = buf[pos:], 0
            want = len(buf) + least
            while len(buf) < want:
                chunk = next(chunks, None)
                if chunk is None:
                    buf += text_of.decode(b"", final=True)
                    eof = True
                    break
                buf += text_of.decode(chunk)
            return True

        def space() -> bool:
            """Skip whitespace; False when the input ends first."""
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n\ufeff":
                    pos += 1
                if pos < len(buf):
                    return True
                if not more():
                    return False

        def rest(item: int, why: str) -> InputRow:
            # Nothing after a syntax error can be located: keep all of it, verbatim, in one row.
            while more(_CHUNK):
                pass
            why = f"{why}; {self.name} ends here: {self._failure}" if self._failure else why
            return InputRow(item, None, buf[pos:].encode("utf-8", "surrogateescape"), f"item {item}: {why}")

        space()
        pos += 1  # the '[' the sniff found
        item = 0
        while True:
            if not space():
                yield rest(item + 1, "the array is not closed (no ']')")
                return
            if buf[pos] == "]" and item == 0:
                pos += 1
                break
            item += 1
            while True:
                try:
                    value, end = decoder.decode(buf, pos)
                except (ValueError, RecursionError) as exc:
                    if more(max(_CHUNK, len(buf) - pos)):
                        continue
                    why = exc.msg if isinstance(exc, json.JSONDecodeError) else (
                        "nested too deeply" if isinstance(exc, RecursionError) else str(exc))
                    yield rest(item, f"invalid JSON ({why})")
                    return
                if end == len(buf) and more():  # a number at the buffer's edge may go on
                    continue
                break
            text = buf[pos:end]
            raw = text.encode("utf-8", "surrogateescape")
            if not _is_utf8(raw):
                yield InputRow(item, None, raw, f"item {item}: not valid UTF-8")
            else:
                why = _check(decoder, value, text)
                yield InputRow(item, None, raw, f"item {item}: {why}") if why else InputRow(item, value)
            pos = end
            if not space():
                yield rest(item + 1, "the array is not closed (no ']')")
                return
            if buf[pos] == "]":
                pos += 1
                break
            if buf[pos] != ",":
                yield rest(item + 1, f"expected ',' or ']' after item {item}")
                return
            pos += 1
            if not space() or buf[pos] == "]":
                yield rest(item + 1, f"a value is missing after the ',' that follows item {item}")
                return
        if space():
            yield rest(item + 1, "data after the array's closing ']'")
        elif self._failure:
            yield InputRow(item + 1, None, b"", f"item {item + 1}: {self.name} ends here: {self._failure}")

    # -- life cycle ----------------------------------------------------------------------
    def close(self) -> None:
        if self._fh is not getattr(sys.stdin, "buffer", None):
            self._fh.close()

    def __enter__(self) -> RowSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return True


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _jsonl_row(decoder: _Decoder, number: int, raw: bytes) -> InputRow | None:
    raw = raw.removesuffix(b"\r")
    body = raw[3:] if number == 1 and raw.startswith(_BOM) else raw
    if not body.strip(_JSON_SPACE):
        return None  # blank lines carry no row
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InputRow(number, None, raw, f"line {number}: not valid UTF-8 (byte 0x{body[exc.start]:02x} "
                                           f"at column {exc.start + 1})")
    try:
        value, end = decoder.decode(text, len(text) - len(text.lstrip(" \t\r\n")))
        if text[end:].strip(" \t\r\n"):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as exc:
        return InputRow(number, None, raw, f"line {number}: invalid JSON ({exc.msg} at column {exc.colno})")
    except RecursionError:
        return InputRow(number, None, raw, f"line {number}: invalid JSON (nested too deeply to read)")
    except ValueError as exc:  # e.g. an integer longer than Python's conversion limit
        return InputRow(number, None, raw, f"line {number}: unreadable JSON ({exc})")
    why = _check(decoder, value, text)
    return InputRow(number, None, raw, f"line {number}: {why}") if why else InputRow(number, value)


def open_rows(path: str) -> RowSource:
    """Open ``path`` (``-`` for stdin; ``.jsonl``, gzipped or a JSON array) for reading rows.

    Raises :class:`DataError` at once for a file that cannot be read as rows at all.
    """
    return RowSource(path)


def read_rows(path: str) -> Iterator[InputRow]:
    """Every row of ``path`` in order, bad ones included (see :class:`InputRow`)."""
    with open_rows(path) as source:
        yield from source


def count_rows(path: str) -> int | None:
    """How many rows a JSONL input holds (non-blank lines), for a progress bar; None if unknown."""
    try:
        if path == "-" or not stat.S_ISREG(os.stat(path).st_mode):
            return None  # a pipe can be read once only, and that read is the run's
    except OSError:
        return None
    with open_rows(path) as source:
        if source.kind != "jsonl":
            return None
        count, open_text = 0, False  # open_text: the line not yet ended holds more than whitespace
        for chunk in source._all_chunks():
            parts = chunk.split(b"\n")
            for i, part in enumerate(parts[:-1]):
                count += bool((open_text and i == 0) or part.strip(_JSON_SPACE))
            tail = bool(parts[-1].strip(_JSON_SPACE))
            open_text = (open_text or tail) if len(parts) == 1 else tail
        return count + bool(open_text or source._failure)


# --- writing -----------------------------------------------------------------------------


def same_file(a: str, b: str | None) -> bool:
    """Are two paths one file (so writing ``b`` would destroy ``a``)?"""
    if a == "-" or b in (None, "-"):
        return False
    try:
        return os.path.samefile(a, b)  # type: ignore[arg-type]
    except OSError:
        return False


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM off while a batch is written, so a write is never cut mid-row."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _dumps(record: Mapping[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate: the \\u escape keeps it, losslessly
        return json.dumps(record).encode("ascii") + b"\n"


class RowWriter:
    """Writes JSONL rows to a file (or stdout), a flushed batch at a time.

    ``keep``: bytes of an existing file to keep and append after (a resumed run); None
    starts the file afresh. Opening raises :class:`DataError` naming the path when it
    cannot be written, so a caller can check before any work is done.
    """

    def __init__(self, path: str | None, *, keep: int | None = None) -> None:
        self.path = path
        self.name = "<stdout>" if path in (None, "-") else str(path)
        self.rows = 0
        if path in (None, "-"):
            self._fh: IO[bytes] = getattr(sys.stdout, "buffer", None) or _TextBytes(sys.stdout)
            self._stdout = True
            return
        self._stdout = False
        try:
            if keep:
                self._fh = open(path, "r+b")  # noqa: SIM115
                self._fh.truncate(keep)
                self._fh.seek(keep)
            else:
                self._fh = open(path, "wb")  # noqa: SIM115
            if stat.S_ISREG(os.fstat(self._fh.fileno()).st_mode):
                # One byte written and taken back: a full disk or a quota shows now, not after the model loads.
                self._fh.write(b"\n")
                self._fh.flush()
                self._fh.truncate(keep or 0)
                self._fh.seek(keep or 0)
        except FileNotFoundError as exc:
            parent = os.path.dirname(os.path.abspath(path))
            why = f"directory {parent!r} does not exist" if not os.path.isdir(parent) else exc.strerror
            raise DataError(f"cannot write output {path!r}: {why}") from None
        except IsADirectoryError:
            raise DataError(f"cannot write output {path!r}: it is a directory") from None
        except OSError as exc:
            raise DataError(f"cannot write output {path!r}: {exc.strerror or exc}") from None

    def write(self, row: Mapping[str, Any]) -> None:
        """Write one row (and flush)."""
        self.write_rows([row])

    def write_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write a batch of rows with one write and a flush."""
        if not rows:
            return
        data = b"".join(_dumps(r) for r in rows)
        with _signals_held():
            try:
                if self._stdout:
                    sys.stdout.flush()
                self._fh.write(data)
                self._fh.flush()
                self.rows += len(rows)
            except OSError as exc:
                if self._stdout and isinstance(exc, BrokenPipeError):
                    _silence_stdout()
                    raise DataError(f"cannot write {self.name!r}: the reader closed the pipe after {self.rows} rows") from None
                raise DataError(f"cannot write {self.name!r} after {self.rows} rows: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._stdout:
            return
        with contextlib.suppress(OSError):
            self._fh.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TextBytes:
    """Bytes onto a text stream that has no ``buffer`` (a replaced ``sys.stdout``)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self._stream.flush()


def _silence_stdout() -> None:
    # Python flushes stdout at exit; a closed pipe would print a second error there.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# --- reading an output back (resume) ---------------------------------------------------


@dataclass(frozen=True)
class Written:
    """What an earlier run left in an output file: its rows' ``_line`` s and input fingerprints.

    ``keep`` is the length in bytes of its whole rows; a torn last row (a run killed while
    writing) lies past it and is written again.
    """

    lines: list[int] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    errors: int = 0
    keep: int = 0
    torn: bool = False
    tasks: frozenset[str] = frozenset()


def read_written(path: str) -> Written:
    """Read back an output file written by :class:`RowWriter` (missing or empty: nothing written).

    Raises :class:`DataError` when a whole line is not such a row (no integer ``_line``, or
    lines out of order), so a resumed run never appends to a file it did not write.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return Written()
    except OSError as exc:
        raise DataError(f"cannot read output {path!r} to resume: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"cannot write output {path!r}: it is a directory")
    lines: list[int] = []
    digests: list[bytes] = []
    errors = keep = 0
    torn = False
    tasks: set[str] = set()
    try:
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.endswith(b"\n"):
                    torn = True
                    break
                record = _written_row(path, number, raw)
                line = record["_line"]
                if lines and line <= lines[-1]:
                    raise DataError(f"output {path!r} line {number}: _line {line} follows {lines[-1]}; "
                                    "rows out of input order cannot be resumed")
                lines.append(line)
                digests.append(original_digest(record))
                errors += "error" in record
                verdict = record.get("flame_reward")
                if isinstance(verdict, dict) and isinstance(verdict.get("task"), str):
                    tasks.add(verdict["task"])
                keep += len(raw)
    except OSError as exc:
        raise DataError(f"cannot read output {path!r} to resume: {exc.strerror or exc}") from None
    return Written(lines, digests, errors, keep, torn, frozenset(tasks))


def _written_row(path: str, number: int, raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict) or type(record.get("_line")) is not int:
        raise DataError(f"output {path!r} line {number} is not a row written by flame-reward (no integer "
                        "'_line'); refusing to append to it")
    return record
