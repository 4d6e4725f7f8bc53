"""The CLI end to end: rows in, rows out, nothing dropped, one-line errors."""

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flame_reward import cli
from flame_reward.cli import main
from tests.test_io import unreadable_file


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_tasks_lists_builtins_and_plugin(capsys):
    assert main(["tasks", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"pairwise", "pointwise", "classification", "open_ended", "summary_faithfulness"} <= set(out)
    assert out["summary_faithfulness"]["module"] == "flame_reward_faithfulness"


def test_missing_input_is_one_line_error(capsys, tmp_path):
    assert main(["compare", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flame-reward: error:") and "nope.jsonl" in err[0]


def test_bad_map_is_one_line_error(capsys, tmp_path):
    f = _write(tmp_path / "in.jsonl", ['{"prompt": "p", "response_a": "a", "response_b": "b"}'])
    assert main(["compare", f, "--map", "response_a"]) == 2
    assert "--map" in capsys.readouterr().err


@pytest.mark.model
def test_compare_keeps_every_row(tmp_path, capsys):
    f = _write(tmp_path / "in.jsonl", [
        '{"id": 1, "prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}',
        '{"id": 2, "prompt": "What is 2+2?", "chosen": "", "rejected": "5"}',
        "{not json",
        '{"id": 4, "prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome"}',
        '[1, 2]',
    ])
    out = tmp_path / "out.jsonl"
    code = main(["compare", f, "-o", str(out), "-q", "--map", "response_a=chosen", "--map", "response_b=rejected"])
    assert code == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 5
    assert rows[0]["id"] == 1 and 0.0 <= rows[0]["flame_reward"]["score"] <= 1.0
    assert len(rows[0]["flame_reward"]["orders"]) == 2
    assert rows[1]["id"] == 2 and rows[1]["error"].startswith("response_a") and rows[1]["_line"] == 2
    assert rows[2]["_line"] == 3 and "invalid JSON" in rows[2]["error"] and rows[2]["_raw"] == "{not json"
    assert rows[3]["id"] == 4 and "flame_reward" in rows[3]
    assert rows[4]["_line"] == 5 and "JSON object" in rows[4]["error"]
    summary = capsys.readouterr().err
    assert "2 rows judged, 3 rows with errors" in summary
    # --strict turns row errors into a non-zero exit, still writing every row.
    assert main(["compare", f, "-o", str(out), "-q", "--strict", "--map", "response_a=chosen",
                 "--map", "response_b=rejected"]) == 1
    assert len(out.read_text().splitlines()) == 5


@pytest.mark.model
def test_score_classification_and_plugin_task(tmp_path):
    f = tmp_path / "in.json"
    f.write_text(json.dumps([
        {"prompt": "Is this a greeting?", "response": "Hello there!"},
        {"source": "The cat sat on the mat.", "summary": "A cat sat on a mat.", "prompt": "x", "response": "y"},
    ]))
    out = tmp_path / "out.jsonl"
    assert main(["score", str(f), "-o", str(out), "-q", "--task", "classification", "--labels", "yes,no"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [set(r["flame_reward"]["distribution"]) for r in rows] == [{"yes", "no"}] * 2
    assert main(["score", str(f), "-o", str(out), "-q", "--task", "summary_faithfulness"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert "error" in rows[0] and rows[0]["error"].startswith("source")
    assert rows[1]["flame_reward"]["task"] == "summary_faithfulness"
    assert main(["score", str(f), "-o", str(out), "-q", "--scale", "1-10"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert 1.0 <= rows[0]["flame_reward"]["score"] <= 10.0 and len(rows[0]["flame_reward"]["distribution"]) == 10


# --- losing nothing: bad lines, whole-file problems, streaming and --resume ---------------

PAIR = [{"id": i, "prompt": f"What is {i} + {i}?", "response_a": str(2 * i), "response_b": str(2 * i + 1)}
        for i in range(6)]


def _lines(*items) -> bytes:
    return b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in items)


def _read(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines()]


@pytest.fixture()
def no_model(monkeypatch):
    """Fails the test if the judge is loaded (whole-file problems must stop the run before that)."""
    calls = []
    monkeypatch.setattr(cli, "load_judge", lambda args: calls.append(args) or pytest.fail("the model was loaded"))
    return calls


@pytest.fixture()
def tiny_loads(monkeypatch, tiny_judge):
    """The CLI judging with the tiny random Llama; the list records each load."""
    loads = []
    monkeypatch.setattr(cli, "load_judge", lambda args: loads.append(args) or tiny_judge)
    return loads


def test_one_bad_line_costs_one_row_and_every_good_row_is_judged(tmp_path, tiny_loads, capsys):
    bad = {2: b'{"prompt": "caf\xe9", "response_a": "\xff", "response_b": "b"}', 4: b"[1, 2]",
           6: b'{"prompt": "x\\ud800", "response_a": "a", "response_b": "b"}', 8: b"\x00\x01\x02 binary junk",
           9: b'{"prompt": "p", "prompt": "q", "response_a": "a", "response_b": "b"}'}
    lines = [bad.get(n) or {**PAIR[n % 6], "line": n} for n in range(1, 11)]
    lines[6] = {"prompt": "p", "response_a": "", "response_b": "b", "line": 7}  # judged, but invalid
    src = tmp_path / "in.jsonl"
    src.write_bytes(_lines(*lines))
    out = tmp_path / "out.jsonl"
    assert main(["compare", str(src), "-o", str(out), "-q"]) == 0
    rows = _read(out)
    assert [r["_line"] for r in rows] == list(range(1, 11))  # every line once, in input order
    for row in rows:
        n = row["_line"]
        if n in bad:
            exact = row["_raw"].encode() if "_raw_base64" not in row else __import__("base64").b64decode(row["_raw_base64"])
            assert exact == bad[n] and row["error"].startswith(f"line {n}: ") and set(row) <= {
                "_line", "_raw", "_raw_base64", "error"}
        elif n == 7:
            assert row["error"].startswith("response_a") and row["response_b"] == "b"
        else:  # the input row verbatim, plus the verdict and its line
            assert {k: v for k, v in row.items() if k not in ("flame_reward", "_line")} == lines[n - 1]
            assert set(row["flame_reward"]) >= {"score", "label", "distribution", "orders"}
    assert "4 rows judged, 6 rows with errors" in capsys.readouterr().err
    assert len(tiny_loads) == 1


def _argv_cases():
    def src(tmp_path, data=_lines(PAIR[0], PAIR[1]), name="in.jsonl"):
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)

    def foreign_output(tmp_path):
        (tmp_path / "out.jsonl").write_text('{"not": "ours"}\n')
        return ["compare", src(tmp_path), "-o", str(tmp_path / "out.jsonl"), "--resume"]

    def changed_input(tmp_path):
        (tmp_path / "out.jsonl").write_bytes(_lines({**PAIR[3], "_line": 1, "flame_reward": {"score": 0.5}}))
        return ["compare", src(tmp_path), "-o", str(tmp_path / "out.jsonl"), "--resume"]

    def other_task(tmp_path):
        (tmp_path / "out.jsonl").write_bytes(_lines({**PAIR[0], "_line": 1, "flame_reward": {"task": "pointwise"}}))
        return ["compare", src(tmp_path), "-o", str(tmp_path / "out.jsonl"), "--resume"]

    def read_only(tmp_path):
        if os.geteuid() != 0:
            (tmp_path / "ro").mkdir(mode=0o555)
            return ["compare", src(tmp_path), "-o", str(tmp_path / "ro" / "out.jsonl")]
        return ["compare", src(tmp_path), "-o", "/sys/flame-reward-out.jsonl"]  # sysfs refuses even root

    def link_to_input(tmp_path):
        (tmp_path / "link.jsonl").symlink_to(src(tmp_path))
        return ["compare", src(tmp_path), "-o", str(tmp_path / "link.jsonl")]

    return {
        "missing input": (lambda t: ["compare", str(t / "nope.jsonl")], "does not exist"),
        "directory input": (lambda t: ["compare", str(t)], "is a directory"),
        "binary input": (lambda t: ["compare", src(t, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")], "PNG"),
        "NUL bytes": (lambda t: ["compare", src(t, b"\x00\x00\x00\x01\n\x02\x00\n")], "binary"),
        "UTF-16": (lambda t: ["compare", src(t, json.dumps(PAIR[0]).encode("utf-16"))], "UTF-16"),
        "xz": (lambda t: ["compare", src(t, b"\xfd7zXZ\x00\x00", "in.jsonl.xz")], "xz"),
        "gzip header only": (lambda t: ["compare", src(t, b"\x1f\x8b\x08", "in.jsonl.gz")], "no readable rows"),
        "unreadable input": (lambda t: ["compare", unreadable_file(t)], "cannot read input"),
        "output dir missing": (lambda t: ["compare", src(t), "-o", str(t / "no" / "out.jsonl")], "does not exist"),
        "output is a dir": (lambda t: ["compare", src(t), "-o", str(t)], "is a directory"),
        "output read-only": (read_only, "cannot write output"),
        "output is the input": (lambda t: ["compare", src(t), "-o", src(t)], "is the input"),
        "output links to input": (link_to_input, "is the input"),
        "resume to stdout": (lambda t: ["compare", src(t), "--resume"], "--resume"),
        "resume a foreign file": (foreign_output, "not a row written by flame-reward"),
        "resume a changed input": (changed_input, "was the input changed"),
        "resume another task": (other_task, "task 'pointwise', not 'pairwise'"),
        "batch size 0": (lambda t: ["compare", src(t), "--batch-size", "0"], "--batch-size"),
        "max length -1": (lambda t: ["score", src(t), "--max-length", "-1"], "--max-length"),
        "scale reversed": (lambda t: ["score", src(t), "--scale", "5-1"], "--scale"),
        "scale words": (lambda t: ["score", src(t), "--scale", "low-high"], "--scale"),
        "labels on pointwise": (lambda t: ["score", src(t), "--labels", "yes,no"], "--labels"),
        "one label": (lambda t: ["score", src(t), "--task", "classification", "--labels", "yes"], "--labels"),
        "tie margin 2": (lambda t: ["compare", src(t), "--tie-margin", "2"], "--tie-margin"),
        "map unknown field": (lambda t: ["compare", src(t), "--map", "respons_a=x"], "respons_a"),
        "unknown task": (lambda t: ["score", src(t), "--task", "nonesuch"], "nonesuch"),
    }


CASES = _argv_cases()


@pytest.mark.parametrize("case", list(CASES))
def test_whole_file_and_flag_problems_are_one_line_and_exit_2_before_the_model_loads(case, tmp_path, no_model, capsys):
    make, words = CASES[case]
    argv = make(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.glob("*.jsonl") if p.is_file() and not p.is_symlink()}
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flame-reward: error:") and words in err[0], err
    assert no_model == []
    assert {p: p.read_bytes() for p in before} == before  # no input was touched


def test_truncated_gzip_keeps_and_judges_every_row_before_the_damage(tmp_path, tiny_loads):
    packed = gzip.compress(_lines(*[{**PAIR[i % 6], "n": i} for i in range(400)]))
    src = tmp_path / "in.jsonl.gz"
    src.write_bytes(packed[: len(packed) * 3 // 4])
    out = tmp_path / "out.jsonl"
    assert main(["compare", str(src), "-o", str(out), "-q", "--batch-size", "64"]) == 0
    *good, last = _read(out)
    assert len(good) > 50 and [r["n"] for r in good] == list(range(len(good)))
    assert all("flame_reward" in r for r in good)
    assert last["_line"] == len(good) + 1 and "truncated" in last["error"] and "_raw" in last
    assert main(["compare", str(src), "-o", str(out), "-q", "--strict", "--batch-size", "64"]) == 1


def test_resume_repairs_a_torn_tail_and_appends_the_rest_in_order(tmp_path, tiny_loads, capsys):
    src = tmp_path / "in.jsonl"
    src.write_bytes(_lines(PAIR[0], PAIR[1], b"{broken", PAIR[2], PAIR[3], PAIR[4]))
    whole, part = tmp_path / "whole.jsonl", tmp_path / "part.jsonl"
    assert main(["compare", str(src), "-o", str(whole), "-q", "--batch-size", "2"]) == 0
    done = whole.read_bytes().splitlines(keepends=True)
    # An interrupted run: three whole rows and a fourth cut mid-write.
    part.write_bytes(b"".join(done[:3]) + done[3][:17])
    capsys.readouterr()
    assert main(["compare", str(src), "-o", str(part), "-q", "--resume", "--batch-size", "2"]) == 0
    assert part.read_bytes() == whole.read_bytes()
    assert "3 rows judged, 0 rows with errors (kept in the output with 'error'), 3 in total, 3 already in" in capsys.readouterr().err
    # Resuming a finished output judges nothing and never loads the model.
    loads = len(tiny_loads)
    assert main(["compare", str(src), "-o", str(part), "-q", "--resume", "--strict"]) == 1  # the {broken row
    assert part.read_bytes() == whole.read_bytes() and len(tiny_loads) == loads


def test_rows_at_every_nesting_depth_are_judged_or_kept_never_a_traceback(tmp_path, tiny_loads):
    # Near Python's recursion limit a row parses but cannot be written back: such rows must be error rows.
    deep = [{**PAIR[0], "x": json.loads("[" * d + "]" * d)} if d < 200 else
            b'{"prompt": "p", "response_a": "a", "response_b": "b", "x": ' + b"[" * d + b"]" * d + b"}"
            for d in [1, 100, 199, 255, *range(300, 1000, 25), 5000]]
    src = tmp_path / "in.jsonl"
    src.write_bytes(_lines(*deep))
    out = tmp_path / "out.jsonl"
    assert main(["compare", str(src), "-o", str(out), "-q", "--batch-size", "8"]) == 0
    rows = _read(out)
    assert [r["_line"] for r in rows] == list(range(1, len(deep) + 1))
    assert all("flame_reward" in r for r in rows[:4]) and all("nested" in r["error"] for r in rows[4:])


def test_a_full_device_is_one_line_not_a_traceback(tmp_path, tiny_loads, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    src = tmp_path / "in.jsonl"
    src.write_bytes(_lines(PAIR[0]))
    assert main(["compare", str(src), "-o", "/dev/full", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]


def test_stdin_json_array_to_stdout(tmp_path, tiny_loads, monkeypatch, capsys):
    data = json.dumps([PAIR[0], 7, PAIR[1]]).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["compare", "-", "-q"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["_line"] for r in rows] == [1, 2, 3] and rows[1]["_raw"] == "7" and "JSON object" in rows[1]["error"]
    assert rows[0]["id"] == 0 and rows[2]["id"] == 1 and "flame_reward" in rows[2]


def test_a_row_the_core_fails_on_costs_only_that_row(tmp_path, tiny_loads, tiny_judge, monkeypatch):
    # Fault injection: the real judge, made to raise on one row the way a tokenizer can on odd text.
    real = tiny_judge.judge

    def judge(task, examples, **kw):
        if any(e.get("prompt") == "boom" for e in examples):
            raise TypeError("TextEncodeInput must be Union[...]")
        return real(task, examples, **kw)

    monkeypatch.setattr(tiny_judge, "judge", judge)
    src = tmp_path / "in.jsonl"
    src.write_bytes(_lines(PAIR[0], {**PAIR[1], "prompt": "boom"}, PAIR[2]))
    out = tmp_path / "out.jsonl"
    assert main(["compare", str(src), "-o", str(out), "-q", "--batch-size", "8"]) == 0
    rows = _read(out)
    assert "flame_reward" in rows[0] and "flame_reward" in rows[2]
    assert rows[1]["error"].startswith("judge failed on this row: TypeError") and rows[1]["prompt"] == "boom"
    alone = real("pairwise", [PAIR[2]])[0]
    assert rows[2]["flame_reward"]["score"] == pytest.approx(alone.score, abs=1e-6)


@pytest.mark.model
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """SIGTERM a real run after its first batch is written, --resume it, compare with a whole run."""
    src = tmp_path / "in.jsonl"
    src.write_bytes(_lines(PAIR[0], PAIR[1], b"{broken", PAIR[2]))
    out, whole = tmp_path / "out.jsonl", tmp_path / "whole.jsonl"
    flags = ["-q", "--batch-size", "1", "--max-length", "256"]
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "flame_reward.cli", "compare", str(src), "-o", str(out), *flags],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while not (out.exists() and out.read_bytes().count(b"\n") >= 1):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no row written in 600 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert "rerun with --resume" in err.decode()
    first = _read(out)
    assert 1 <= len(first) < 4 and out.read_bytes().endswith(b"\n")
    real_load, loaded = cli.load_judge, []
    monkeypatch.setattr(cli, "load_judge", lambda args: loaded[0] if loaded else loaded.append(real_load(args)) or loaded[0])
    assert main(["compare", str(src), "-o", str(out), "--resume", *flags]) == 0
    assert main(["compare", str(src), "-o", str(whole), *flags]) == 0
    resumed, expected = _read(out), _read(whole)
    assert [r["_line"] for r in resumed] == [r["_line"] for r in expected] == [1, 2, 3, 4]
    for got, want in zip(resumed, expected):
        assert {k: v for k, v in got.items() if k != "flame_reward"} == {k: v for k, v in want.items() if k != "flame_reward"}
        if "flame_reward" in want:
            g, w = got["flame_reward"], want["flame_reward"]
            assert abs(g["score"] - w["score"]) <= 1e-6
            for gd, wd in zip([g["distribution"], *g["orders"]], [w["distribution"], *w["orders"]]):
                assert gd.keys() == wd.keys() and all(abs(gd[k] - wd[k]) <= 1e-6 for k in wd)
