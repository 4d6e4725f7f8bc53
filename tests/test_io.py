"""flame_reward.io: rows in line by line (bad lines are rows, never lost), rows out a batch at a time."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import sys
import threading

import pytest

from flame_reward.errors import DataError
from flame_reward.io import (
    InputRow,
    RowWriter,
    count_rows,
    open_rows,
    original_digest,
    read_rows,
    read_written,
    same_file,
)

GOOD = [{"id": i, "prompt": f"q{i}", "response": "r" * i} for i in range(1, 4)]


def _line(obj) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _by_line(rows):
    return {r.line: r for r in rows}


# Every class of bad line, each with the exact bytes it must come back with.
BAD_LINES = [
    ("not valid UTF-8", b'{"prompt": "caf\xe9 \xff\xfe"}'),
    ("invalid JSON", b'{"prompt": "unterminated'),
    ("JSON object", b'["a", "list"]'),
    ("duplicate key", b'{"prompt": "a", "prompt": "b"}'),
    ("lone surrogate", b'{"prompt": "x\\ud800y"}'),
    ("out of range", b'{"prompt": "p", "n": 1e999}'),
    ("nested too deeply", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("nested deeper than 256", b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}"),
    ("4300 digits", b'{"n": ' + b"9" * 5000 + b"}"),
    ("invalid JSON", b"\x1b[31m\x07\x08 not json"),
    ("invalid JSON", b"\x00\x00\x01\x02 a NUL line among readable rows"),
]


def test_every_bad_line_is_one_error_row_with_its_exact_bytes(tmp_path):
    lines = [_line(GOOD[0])]
    for _, raw in BAD_LINES:
        lines += [raw + b"\n", _line(GOOD[1])]
    lines += [b"   \n", b"\t\r\n", _line(GOOD[2]).rstrip(b"\n")]  # blank lines carry no row; no final newline
    rows = list(read_rows(_write(tmp_path / "in.jsonl", b"".join(lines))))
    assert [r.line for r in rows] == [1] + [n for i in range(len(BAD_LINES)) for n in (2 + 2 * i, 3 + 2 * i)] + [len(lines)]
    for i, (why, raw) in enumerate(BAD_LINES):
        bad, good = rows[1 + 2 * i], rows[2 + 2 * i]
        assert bad.data is None and bad.raw == raw, why
        assert bad.error.startswith(f"line {bad.line}: ") and why in bad.error, bad.error
        assert good.data == GOOD[1] and good.error is None
        record = bad.record({})
        assert record["_line"] == bad.line and record["error"] == bad.error
        exact = base64.b64decode(record["_raw_base64"]) if "_raw_base64" in record else record["_raw"].encode()
        assert exact == raw
        assert ("_raw_base64" in record) == (why == "not valid UTF-8")
    assert rows[-1].data == GOOD[2]


def test_line_endings_bom_and_unicode_separators(tmp_path):
    text = '\ufeff{"a": 1}\r\n{"b": "x\u2028y\u0085z"}\n{"c": "\\ud83d\\ude00"}\n'
    rows = list(read_rows(_write(tmp_path / "in.jsonl", text.encode())))
    # Only \n ends a line: U+2028 and NEL inside a string are data, and a valid surrogate pair is one character.
    assert [r.data for r in rows] == [{"a": 1}, {"b": "x\u2028y\u0085z"}, {"c": "\U0001f600"}]


def test_gzip_is_read_by_content_and_truncation_keeps_every_row_before(tmp_path):
    plain = b"".join(_line({"i": i, "text": "x" * (i % 50)}) for i in range(3000))
    packed = gzip.compress(plain)
    # The content decides, not the name: the same bytes read alike as .jsonl.gz and .jsonl.
    whole = [r.data for r in read_rows(_write(tmp_path / "a.jsonl.gz", packed))]
    assert whole == [r.data for r in read_rows(_write(tmp_path / "b.jsonl", packed))]
    assert len(whole) == 3000 and count_rows(str(tmp_path / "a.jsonl.gz")) == 3000
    cut = _write(tmp_path / "cut.jsonl.gz", packed[: len(packed) // 2])
    rows = list(read_rows(cut))
    *good, last = rows
    assert [r.data for r in good] == whole[: len(good)] and len(good) > 100
    # The last row is the damage: the partial line, verbatim, and a message saying what happened.
    assert last.data is None and last.line == len(good) + 1
    assert plain.split(b"\n")[len(good)].startswith(last.raw)
    assert "truncated" in last.error and "rows after this point are missing" in last.error


def test_corrupt_gzip_and_trailing_junk_end_in_an_error_row(tmp_path):
    plain = b"".join(_line({"i": i}) for i in range(50))
    bad_crc = bytearray(gzip.compress(plain))
    bad_crc[-8] ^= 0xFF  # the CRC32 trailer
    rows = list(read_rows(_write(tmp_path / "crc.jsonl.gz", bytes(bad_crc))))
    assert [r.data for r in rows[:-1]] == [{"i": i} for i in range(50)]
    assert rows[-1].data is None and "corrupt" in rows[-1].error
    junk = list(read_rows(_write(tmp_path / "junk.jsonl.gz", gzip.compress(plain) + b"not gzip")))
    assert len(junk) == 51 and junk[-1].data is None and "corrupt" in junk[-1].error
    flipped = bytearray(gzip.compress(b"".join(_line({"i": i, "pad": os.urandom(8).hex()}) for i in range(4000))))
    flipped[len(flipped) // 2] ^= 0xFF
    damaged = list(read_rows(_write(tmp_path / "mid.jsonl.gz", bytes(flipped))))
    assert damaged[-1].data is None  # whatever zlib makes of the damage, the read ends in an error row


@pytest.mark.parametrize("name, data, words", [
    ("nul.jsonl", b"\x7fELF\x02\x01\x01\x00\x00\n\x00\x00\x00\x01binary\n", "binary"),
    ("zeros.jsonl", bytes(1 << 17), "binary"),
    ("utf16.jsonl", '{"a": 1}\n'.encode("utf-16"), "UTF-16"),
    ("latin1.jsonl", '{"a": "café"}\n{"b": "naïve"}\n'.encode("latin-1"), "not UTF-8"),
    ("rows.jsonl.xz", b"\xfd7zXZ\x00\x00\x04", "xz"),
    ("rows.zip", b"PK\x03\x04\x14\x00", "zip"),
    ("head.jsonl.gz", b"\x1f\x8b\x08\x00\x00", "no readable rows"),
    ("notgz.jsonl.gz", b"\x1f\x8bnot really gzip at all", "no readable rows"),
])
def test_whole_file_problems_raise_one_data_error_on_open(tmp_path, name, data, words):
    path = _write(tmp_path / name, data)
    with pytest.raises(DataError) as err:
        open_rows(path)
    assert words in str(err.value) and path in str(err.value) and "\n" not in str(err.value)


def test_missing_directory_and_unreadable_inputs(tmp_path):
    for path, words in [(tmp_path / "nope.jsonl", "does not exist"), (tmp_path, "is a directory"),
                        (tmp_path / "f.jsonl" / "x", "Not a directory")]:
        (tmp_path / "f.jsonl").write_text("{}\n")
        with pytest.raises(DataError, match=words):
            open_rows(str(path))
    with pytest.raises(DataError, match="cannot read input"):
        open_rows(unreadable_file(tmp_path))


def unreadable_file(tmp_path) -> str:
    """A file this process may not open for reading (root ignores modes: use a write-only proc file)."""
    if os.geteuid() != 0:
        path = tmp_path / "locked.jsonl"
        path.write_text('{"a": 1}\n')
        path.chmod(0)
        return str(path)
    for candidate in ("/proc/sys/vm/compact_memory", "/proc/sys/vm/drop_caches"):
        if os.path.exists(candidate):
            return candidate
    pytest.skip("running as root on a system without a write-only /proc file to stand for an unreadable input")


def test_json_array_items_stream_and_bad_items_keep_their_text(tmp_path):
    data = (b'[\n {"a": 1},\n {"b": "\xff"},\n 3,\n {"c": [1, 2]},\n {"d": 1, "d": 2},\n {"e": 12345}\n]\n')
    rows = list(read_rows(_write(tmp_path / "rows.json", data)))
    assert [(r.line, r.data) for r in rows if r.data] == [(1, {"a": 1}), (4, {"c": [1, 2]}), (6, {"e": 12345})]
    bad = {r.line: r for r in rows if r.data is None}
    assert bad[2].raw == b'{"b": "\xff"}' and "UTF-8" in bad[2].error
    assert bad[3].raw == b"3" and "JSON object" in bad[3].error
    assert bad[5].raw == b'{"d": 1, "d": 2}' and "duplicate key" in bad[5].error
    # After a syntax error nothing can be located again: the rest is kept, verbatim, in one row.
    rows = list(read_rows(_write(tmp_path / "broken.json", b'[{"a": 1}, {"b": 2} oops {"c": 3}]')))
    assert [r.data for r in rows[:2]] == [{"a": 1}, {"b": 2}]
    assert rows[2].line == 3 and rows[2].raw == b'oops {"c": 3}]' and "expected ','" in rows[2].error
    cut = gzip.compress(b'[{"a": 1}, {"b": 2}, {"c": 3}]')[:-12]
    rows = list(read_rows(_write(tmp_path / "cut.json.gz", cut)))
    assert [r.data for r in rows[:2]] == [{"a": 1}, {"b": 2}] and "truncated" in rows[-1].error
    assert list(read_rows(_write(tmp_path / "empty.json", b" [ ] "))) == []
    tail = list(read_rows(_write(tmp_path / "tail.json", b'[{"a": 1}] {"b": 2}')))
    assert tail[-1].raw == b'{"b": 2}' and "after the array" in tail[-1].error
    big = b"[" + b",".join(b'{"i": %d, "t": "%s"}' % (i, b"x" * (i % 300)) for i in range(5000)) + b"]"
    assert [r.data["i"] for r in read_rows(_write(tmp_path / "big.json", big))] == list(range(5000))


def test_a_jsonl_whose_first_row_is_an_array_stays_jsonl(tmp_path):
    rows = list(read_rows(_write(tmp_path / "in.jsonl", b'[1, 2]\n{"a": 1}\n')))
    assert rows[0].data is None and "JSON object" in rows[0].error and rows[1].data == {"a": 1}


def test_stdin_and_a_pipe_stream_rows_before_the_writer_finishes(monkeypatch):
    stdin = io.TextIOWrapper(io.BytesIO(gzip.compress(_line(GOOD[0]) + b"\xff\n" + _line(GOOD[1]))))
    monkeypatch.setattr(sys, "stdin", stdin)
    rows = list(read_rows("-"))
    assert [r.data for r in rows] == [GOOD[0], None, GOOD[1]] and rows[1].raw == b"\xff"
    read_end, write_end = os.pipe()
    os.write(write_end, _line(GOOD[0]))
    got: list = []

    def first_row() -> None:
        rows = iter(open_rows("-"))
        got.extend([next(rows), rows])

    with open(read_end, "rb") as fh:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(fh))
        reader = threading.Thread(target=first_row, daemon=True)
        reader.start()
        reader.join(10)
        waited = reader.is_alive()
        os.write(write_end, _line(GOOD[1]))
        os.close(write_end)
        reader.join(10)
        assert not waited, "the first row of a pipe waited for more than its own line"
        assert got[0].data == GOOD[0] and [r.data for r in got[1]] == [GOOD[1]]


def test_writer_appends_after_kept_bytes_and_keeps_surrogates_losslessly(tmp_path):
    out = tmp_path / "out.jsonl"
    with RowWriter(str(out)) as w:
        w.write_rows([{"a": 1}, {"b": "x\ud800y"}])
        w.write({"c": "ü"})
    lines = out.read_bytes().splitlines()
    assert [json.loads(x) for x in lines] == [{"a": 1}, {"b": "x\ud800y"}, {"c": "ü"}]
    assert lines[2] == '{"c": "ü"}'.encode()  # UTF-8 as is, not escaped
    keep = len(lines[0]) + 1
    with RowWriter(str(out), keep=keep) as w:
        w.write({"d": 4})
    assert out.read_bytes() == lines[0] + b'\n{"d": 4}\n'


@pytest.mark.parametrize("where, words", [("nodir/out.jsonl", "does not exist"), (".", "is a directory")])
def test_writer_refuses_an_unwritable_path_on_open(tmp_path, where, words):
    with pytest.raises(DataError, match=words):
        RowWriter(str(tmp_path / where))


def test_writer_refuses_a_read_only_place(tmp_path):
    if os.geteuid() != 0:
        place = tmp_path / "ro"
        place.mkdir()
        place.chmod(0o555)
        target = place / "out.jsonl"
    else:  # root writes through modes; sysfs refuses new files even to root
        target = "/sys/flame-reward-out.jsonl"
    with pytest.raises(DataError, match="cannot write output"):
        RowWriter(str(target))


def test_records_keep_the_input_and_digests_match_it_back(tmp_path):
    plain = InputRow(3, {"id": 1, "prompt": "p"})
    clash = InputRow(4, {"id": 2, "error": "a column of the user's", "_line": "theirs"})
    raw = InputRow(5, None, b"caf\xe9 {", "line 5: not valid UTF-8")
    records = [plain.record({"flame_reward": {"score": 0.5}}), clash.record({"flame_reward": {"score": 0.25}}),
               raw.record({})]
    assert records[0] == {"id": 1, "prompt": "p", "flame_reward": {"score": 0.5}, "_line": 3}
    # An input using an output key is kept whole under _input: nothing of it is overwritten.
    assert records[1] == {"_line": 4, "_input": clash.data, "flame_reward": {"score": 0.25}}
    assert records[2]["_raw"] == "caf\\xe9 {" and base64.b64decode(records[2]["_raw_base64"]) == b"caf\xe9 {"
    out = tmp_path / "out.jsonl"
    with RowWriter(str(out)) as w:
        w.write_rows(records)
    written = read_written(str(out))
    assert written.lines == [3, 4, 5] and written.errors == 1 and not written.torn
    assert written.digests == [plain.digest(), clash.digest(), raw.digest()]
    assert original_digest(records[0]) != InputRow(3, {"id": 1, "prompt": "q"}).digest()


def test_read_written_drops_a_torn_tail_and_refuses_foreign_files(tmp_path):
    out = tmp_path / "out.jsonl"
    whole = b'{"a": 1, "_line": 1}\n{"a": 2, "_line": 2}\n'
    out.write_bytes(whole + b'{"a": 3, "_li')
    written = read_written(str(out))
    assert written.lines == [1, 2] and written.keep == len(whole) and written.torn
    assert read_written(str(tmp_path / "missing.jsonl")).lines == []
    for bad, words in [(b'{"a": 1}\n', "not a row written by flame-reward"),
                       (b"not json\n", "not a row written by flame-reward"),
                       (b'{"_line": true}\n', "not a row written by flame-reward"),
                       (b'{"_line": 2}\n{"_line": 1}\n', "out of input order")]:
        out.write_bytes(bad)
        with pytest.raises(DataError, match=words):
            read_written(str(out))


def test_same_file_sees_through_links(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text("{}\n")
    (tmp_path / "link.jsonl").symlink_to(a)
    assert same_file(str(a), str(tmp_path / "link.jsonl")) and not same_file(str(a), str(tmp_path / "b.jsonl"))
    assert not same_file("-", str(a)) and not same_file(str(a), None)


def test_damaged_gzip_never_raises_anything_but_data_error(tmp_path):
    # Valid header, then deflate data with random damage: each read must end in a DataError or an error row.
    plain = b"".join(_line({"i": i}) for i in range(200))
    for seed in range(20):
        damaged = bytearray(gzip.compress(plain, mtime=0))
        for k in range(1, 4):
            damaged[(seed * 37 + k * 101) % (len(damaged) - 20) + 10] ^= 1 << (seed % 8)
        path = _write(tmp_path / f"d{seed}.jsonl.gz", bytes(damaged))
        try:
            rows = list(read_rows(path))
        except DataError:
            continue
        assert rows and (rows[-1].data is None or [r.data for r in rows] == [{"i": i} for i in range(200)])


def test_count_rows_counts_a_file_and_leaves_a_pipe_alone(tmp_path):
    path = _write(tmp_path / "in.jsonl", b'{"a": 1}\n\n  \n{"b": 2}\n{"c": 3}')
    assert count_rows(path) == len(list(read_rows(path))) == 3
    read_end, write_end = os.pipe()
    os.write(write_end, b'{"a": 1}\n')
    os.close(write_end)
    assert count_rows(f"/proc/self/fd/{read_end}") is None
    assert os.read(read_end, 100) == b'{"a": 1}\n'  # still there for the run itself
    os.close(read_end)
