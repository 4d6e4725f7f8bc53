"""The sandbox runs programs and judges them from outside, on plain data.

Each test runs real code in the real sandbox (three processes per job, ~0.1 s). Where a
protection depends on the host (namespaces, seccomp), the test says which one it relies
on and is skipped where that protection is unavailable. The hostile candidates of issue
15 live in test_sandbox_attacks.py; every test here also checks, through the
``nothing_survives`` fixture, that no sandboxed process outlives its run.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from flame_reward.errors import InvalidInput
from flame_reward.humaneval import sandbox, sandbox_child
from flame_reward.humaneval.harness import hidden_test_job
from flame_reward.humaneval.problems import load_problems
from flame_reward.humaneval.sandbox import Job, Limits, check_asserts, run_job, run_many, run_program
from flame_reward.humaneval.sandbox_child import CANDIDATE_UID, TESTER_UID, NotPlain, encode, loads, plain
from tests.sandbox_helpers import gone, nothing_survives, sandbox_processes  # noqa: F401

PROTECTIONS = sandbox.host_protections()
ISOLATED = pytest.mark.skipif(not PROTECTIONS["pid_namespace"], reason="no namespaces on this host")
ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="changing users needs root")


def test_passing_program_reports_output():
    result = run_program("print('hello')\nx = 1 + 1")
    assert result.status == "passed"
    assert result.stdout_tail == "hello\n"
    assert result.returncode == 0


def test_exception_is_failed_with_reason():
    result = run_program("raise ValueError('nope')")
    assert result.status == "failed"
    assert "ValueError: nope" in result.detail
    assert "ValueError" in result.stderr_tail


def test_infinite_loop_times_out_promptly():
    started = time.monotonic()
    result = run_program("while True:\n    pass", timeout=1.0)
    assert result.status == "timeout"
    assert time.monotonic() - started < 3.0


def test_sleeping_child_does_not_hold_the_harness():
    # Wall clock, not CPU: a sleeper uses no CPU but must still be cut off.
    result = run_program("import time\ntime.sleep(60)", timeout=0.5)
    assert result.status == "timeout"
    assert result.duration < 2.5


def test_sys_exit_zero_is_not_passed():
    result = run_program("import sys\nsys.exit(0)")
    assert result.status == "failed"
    assert "SystemExit" in result.detail


def test_hard_exit_zero_is_not_passed():
    # _exit skips every handler; only a program that reports reaching its end passes.
    result = run_program("import posix\nposix._exit(0)")
    assert result.status == "error"
    assert "exited with code 0 before finishing" in result.detail


def test_segfault_is_error():
    result = run_program("import ctypes\nctypes.string_at(0)")
    assert result.status == "error"
    assert "SIGSEGV" in result.detail
    assert result.returncode == -11


def test_input_gets_eof_instead_of_hanging():
    started = time.monotonic()
    result = run_program("input('name? ')", timeout=5.0)
    assert result.status == "failed"
    assert "EOFError" in result.detail
    assert time.monotonic() - started < 4.0


def test_memory_bomb_hits_the_address_space_limit():
    result = run_program("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))", timeout=10.0)
    assert result.status == "failed"
    assert "MemoryError" in result.detail


def test_huge_print_is_truncated_and_bounded():
    limits = Limits(output_bytes=256 << 10, tail_bytes=1000)
    started = time.monotonic()
    result = run_program("while True:\n    print('x' * 10000)", timeout=10.0, limits=limits)
    # The stream is closed once it passes output_bytes, so the candidate dies of EPIPE
    # long before the timeout and the harness kept only the tail.
    assert time.monotonic() - started < 5.0
    assert result.status == "failed"
    assert "BrokenPipeError" in result.detail
    assert "output limit" in result.detail
    assert len(result.stdout_tail) <= 1000


def test_single_huge_string_does_not_blow_memory():
    result = run_program("print('y' * (200 << 20))", timeout=10.0, limits=Limits(tail_bytes=100))
    assert result.status in ("failed", "passed")
    assert len(result.stdout_tail) <= 100


@pytest.mark.skipif(not PROTECTIONS["no_new_processes"], reason="no seccomp filter: a real fork bomb")
def test_python_fork_bomb_is_stopped():
    result = run_program("import posix\nwhile True:\n    posix.fork()", timeout=3.0)
    assert result.status == "failed"
    assert "PermissionError" in result.detail  # the seccomp filter, below the guard


@pytest.mark.skipif(not PROTECTIONS["no_new_processes"], reason="no seccomp filter on this host")
def test_ctypes_fork_and_exec_are_refused_by_seccomp():
    # ctypes bypasses every Python-level guard; the filter refuses the system calls.
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "forks = {libc.fork() for _ in range(50)}\n"
        "errno_fork = ctypes.get_errno()\n"
        "argv = (ctypes.c_char_p * 2)(b'/bin/true', None)\n"
        "rc = libc.execv(b'/bin/true', argv)\n"
        "print(sorted(forks), errno_fork, rc, ctypes.get_errno())\n"
    )
    result = run_program(code, timeout=5.0)
    assert result.status == "passed"
    assert result.stdout_tail.strip() == "[-1] 1 -1 1"  # EPERM twice


@ISOLATED
def test_escaped_daemons_die_with_the_pid_namespace(monkeypatch):
    # Without the seccomp filter (as on hosts lacking it) a candidate can start processes
    # that leave its process group (setsid + double fork). They still cannot outlive the
    # job: the PID namespace dies with its first process.
    real = sandbox._host()
    monkeypatch.setattr(sandbox, "_host", lambda: replace(real, seccomp=False))
    code = (
        "import ctypes, os, time\n"
        "libc = ctypes.CDLL(None)\n"
        "for _ in range(3):\n"
        "    if libc.fork() == 0:\n"
        "        libc.setsid()\n"
        "        if libc.fork() == 0:\n"
        "            time.sleep(60)\n"
        "        libc._exit(0)\n"
        "time.sleep(0.3)\n"
    )
    before = sandbox_processes()
    result = run_program(code, timeout=5.0)
    assert result.status == "passed"
    assert sandbox_processes() <= before


def test_guard_refuses_destructive_calls(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for code in (
        f"import os\nos.remove({str(victim)!r})",
        f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
        f"import os\nos.unlink({str(victim)!r})",
    ):
        result = run_program(code)
        assert result.status == "failed"
        assert "PermissionError" in result.detail  # the guard answers first
    assert victim.read_text() == "keep me"


@ISOLATED
def test_the_root_outside_tmp_is_read_only():
    # Bypassing the guard (open() for writing, ctypes unlink) meets a read-only root; the
    # runtime the tester imports from cannot be changed by the candidate.
    code = (
        "import ctypes, errno, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "rc = libc.unlink(os.__file__.encode())\n"
        "print(rc, errno.errorcode[ctypes.get_errno()])\n"
        "for path in ('/new.txt', os.path.dirname(os.__file__) + '/evil.py'):\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "    except OSError as exc:\n"
        "        print(errno.errorcode[exc.errno])\n"
        "open('/dev/../tmp/../new.txt', 'w')\n"
    )
    result = run_program(code)
    assert result.stdout_tail.split() == ["-1", "EROFS", "EROFS", "EROFS"]
    assert result.status == "failed"
    assert "Read-only file system" in result.detail


@ISOLATED
def test_work_dir_is_a_private_tmp_that_disappears():
    before = set(os.listdir(tempfile.gettempdir()))
    code = "import os\nopen('scratch-flame.txt', 'w').write('ok')\nprint(os.getcwd(), sorted(os.listdir('.')))"
    result = run_program(code)
    assert result.status == "passed"
    assert result.stdout_tail.strip() == "/tmp ['scratch-flame.txt']"
    assert set(os.listdir(tempfile.gettempdir())) <= before  # the job's host directory is gone


@ISOLATED
def test_network_is_unreachable():
    code = "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('1.1.1.1', 80))\n"
    result = run_program(code, timeout=5.0)
    assert result.status == "failed"
    assert "Network is unreachable" in result.detail


@ROOT
def test_candidate_and_tester_are_different_unprivileged_users():
    program = "import os\nprint(os.getuid(), os.getgid(), os.getgroups())\ndef f():\n    return os.getuid()\n"
    asserts = ("import os\nassert os.getuid() == os.getgid() == TESTER", "assert f() == CANDIDATE")
    prelude = f"TESTER, CANDIDATE = {TESTER_UID}, {CANDIDATE_UID}"
    result = run_job(Job(program, asserts, timeout=5.0, prelude=prelude))
    assert result.stdout_tail.split() == [str(CANDIDATE_UID), str(CANDIDATE_UID), "[]"]
    assert result.assert_results == (True, True)


def test_candidate_holds_no_descriptor_beyond_stdio():
    code = (
        "import os\n"
        "open_fds = []\n"
        "for fd in range(3, 4096):\n"
        "    try:\n"
        "        os.fstat(fd)\n"
        "        open_fds.append(fd)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(open_fds)\n"
    )
    result = run_program(code)
    assert result.status == "passed"
    assert result.stdout_tail.strip() == "[]"


def test_check_asserts_reports_each_assert_separately():
    program = (
        "def f(x):\n"
        "    if x == 2:\n"
        "        while True:\n"
        "            pass\n"
        "    if x == 5:\n"
        "        import sys\n"
        "        sys.exit(0)\n"
        "    return x\n"
    )
    asserts = [
        "assert f(1) == 1",
        "assert f(2) == 2",  # hangs: its own timeout, the others still run
        "assert f(3) == 4",  # wrong
        "assert f(5) == 5",  # exits: counts as failed, does not end the run
        "assert f(",  # does not compile
        "assert f(4) == 4",
    ]
    started = time.monotonic()
    assert check_asserts(program, asserts, timeout=0.3) == [True, False, False, False, False, True]
    assert time.monotonic() - started < 3.0


def test_check_asserts_when_the_program_fails():
    assert check_asserts("raise RuntimeError()", ["assert True", "assert 1"]) == [False, False]


def test_total_timeout_keeps_results_already_reported():
    program = "import time\ndef slow():\n    time.sleep(10)\n    return 1\n"
    results = check_asserts(
        program, ["assert True", "assert slow() == 1", "assert True"], timeout=5.0, total_timeout=1.0
    )
    assert results == [True, False, False]


def test_return_values_cross_as_exact_plain_types():
    program = (
        "def f(kind):\n"
        "    return {'tuple': (1, 2), 'list': [1, 2], 'set': {1, 2}, 'frozenset': frozenset({1}),\n"
        "            'dict': {'a': (1,), 2: [3]}, 'bytes': b'\\x00\\xff', 'float': -0.0,\n"
        "            'nan': float('nan'), 'big': 10 ** 5000, 'complex': 1 + 2j, 'none': None,\n"
        "            'str': 'h\\u00e9\\ud800 \"q\"'}[kind]\n"
    )
    asserts = (
        "assert type(f('tuple')) is tuple and f('tuple') == (1, 2)",
        "assert type(f('list')) is list and f('list') == [1, 2]",
        "assert type(f('set')) is set and f('set') == {1, 2}",
        "assert type(f('frozenset')) is frozenset",
        "assert f('dict') == {'a': (1,), 2: [3]}",
        "assert f('bytes') == b'\\x00\\xff'",
        "assert str(f('float')) == '-0.0'",
        "assert math.isnan(f('nan'))",
        "assert f('big') == 10 ** 5000",
        "assert f('complex') == 1 + 2j",
        "assert f('none') is None",
        "assert f('str') == 'h\\u00e9\\ud800 \"q\"'",
    )
    result = run_job(Job(program, asserts, timeout=10.0, prelude="import math"))
    assert result.assert_results == (True,) * len(asserts), result.detail


def test_objects_the_candidate_makes_never_reach_an_assert():
    program = (
        "class Yes:\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "class Str(str):\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    __hash__ = str.__hash__\n"
        "def obj():\n"
        "    return Yes()\n"
        "def sub():\n"
        "    return Str('x')\n"
        "def nested():\n"
        "    return [1, (2, Yes())]\n"
        "def gen():\n"
        "    return (i for i in range(3))\n"
    )
    asserts = ("assert obj() == 1", "assert sub() == 'y'", "assert nested() == [1, (2, 3)]",
               "assert list(gen()) == [0, 1, 2]")
    result = run_job(Job(program, asserts, timeout=5.0))
    assert result.assert_results == (False,) * 4
    assert result.status == "failed"


def test_the_prelude_not_the_candidate_defines_the_helpers():
    # HumanEval/38-like: the task's encode() is trusted; a candidate redefining it (and
    # decoding with the identity) would pass if the test used the candidate's encode.
    prelude = "def encode(s):\n    return s[1:] + s[:1]\n\ndef decode(s):\n    '''the task'''\n"
    program = prelude + "def encode(s):\n    return s\n\ndef decode(s):\n    return s\n"
    honest = prelude + "def decode(s):\n    return s[-1:] + s[:-1]\n"
    asserts = ("assert decode(encode('abcd')) == 'abcd'",)
    cheat = run_job(Job(program, asserts, timeout=5.0, prelude=prelude, entry_points=("decode",)))
    right = run_job(Job(honest, asserts, timeout=5.0, prelude=prelude, entry_points=("decode",)))
    assert cheat.assert_results == (False,) and right.assert_results == (True,)


def test_builtins_in_the_tests_are_the_testers_own():
    program = "abs = lambda x: 0\nlen = lambda x: 3\ndef f(x):\n    return x * 10\n"
    asserts = ("assert abs(f(1) - 1) < 1e-6", "assert len(f('ab')) == 3", "assert f(2) == 20")
    assert check_asserts(program, asserts) == [False, False, True]


def test_candidate_exceptions_reach_the_test_as_builtin_exceptions():
    program = (
        "class Custom(Exception):\n    pass\n"
        "def f(x):\n"
        "    if x < 0:\n"
        "        raise ValueError('negative')\n"
        "    if x == 0:\n"
        "        raise Custom('zero')\n"
        "    raise StopIteration\n"
    )
    asserts = (
        "try:\n    f(-1)\nexcept ValueError as exc:\n    assert str(exc) == 'negative'\nelse:\n    assert False",
        "try:\n    f(0)\nexcept Exception as exc:\n    assert type(exc).__name__ == 'CandidateError' and 'Custom' in str(exc)",
        "assert list(map(f, [1, 2])) == []",  # StopIteration must not end map() silently
    )
    assert check_asserts(program, asserts) == [True, True, False]


def test_hidden_test_job_matches_humaneval_semantics():
    problem = load_problems()["HumanEval/32"]  # its check() calls the prompt's poly()
    right = run_job(hidden_test_job(problem, problem.canonical_solution))
    cheat = run_job(hidden_test_job(problem, "    return 0.0\n\ndef poly(xs, x):\n    return 0.0\n"))
    assert right.status == "passed"
    assert cheat.status == "failed"


def test_junk_from_a_hostile_test_is_an_error_not_a_pass():
    # Only the tester and supervisor can write the result pipe; should test code flood it,
    # the run is an error, never a pass read from a prefix.
    flood = "import os\nfor _ in range(80):\n    os.write(4, b\"{'done': True}\\n\" * 4096)"
    result = run_job(Job("def f():\n    return 1\n", (flood, "assert f() == 1"), timeout=10.0))
    assert result.status == "error"
    assert result.detail == "result channel overflow"


def test_run_many_keeps_order_and_runs_in_parallel():
    jobs = [Job(f"import time\ntime.sleep(0.6)\nprint({i})", timeout=5.0) for i in range(4)]
    started = time.monotonic()
    results = run_many(jobs, workers=4)
    elapsed = time.monotonic() - started
    assert [r.stdout_tail.strip() for r in results] == ["0", "1", "2", "3"]
    assert all(r.status == "passed" for r in results)
    assert elapsed < 2.2  # overlapping: one after another takes over 2.4 s


def test_bad_arguments_are_rejected():
    with pytest.raises(InvalidInput):
        run_program("pass", timeout=0)
    with pytest.raises(InvalidInput):
        run_many([Job("pass")], workers=0)


@ISOLATED
def test_a_dead_harness_takes_its_sandboxes_with_it():
    before = sandbox_processes()
    dirs_before = set(Path(tempfile.gettempdir()).glob("flame-sandbox-*"))
    harness = subprocess.Popen(
        [sys.executable, "-c", "from flame_reward.humaneval.sandbox import run_program\n"
                               "run_program('import time\\ntime.sleep(60)', timeout=60)"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (sandbox_processes() - before):
            time.sleep(0.05)
        started = sandbox_processes() - before
        assert started, "no sandbox process appeared"
        time.sleep(0.3)
        harness.kill()
        harness.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(gone(p) for p in started):
            time.sleep(0.05)
        assert all(gone(p) for p in started)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        # A killed harness cannot remove its work directory; this test made it, so it does.
        for left in set(Path(tempfile.gettempdir()).glob("flame-sandbox-*")) - dirs_before:
            shutil.rmtree(left, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Hosts with fewer protections: the verdict still comes from the tester.

HUMANEVAL_0 = load_problems()["HumanEval/0"]
ALWAYS_EQUAL = "    class Yes:\n        def __eq__(self, other):\n            return True\n    return Yes()\n"
FORGED_FDS = (
    "    import posix\n"
    "    for fd in range(3, 64):\n"
    "        try:\n"
    "            posix.write(fd, b\"{'program': True}\\n{'test': True, 'error': ''}\\n{'done': True}\\n\")\n"
    "        except OSError:\n"
    "            pass\n"
    "    posix._exit(0)\n"
)


def _verdicts() -> list[str]:
    return [run_job(hidden_test_job(HUMANEVAL_0, c, 5.0)).status
            for c in (HUMANEVAL_0.canonical_solution, ALWAYS_EQUAL, FORGED_FDS)]


@ROOT
def test_without_namespaces_only_the_tester_decides(monkeypatch):
    real = sandbox._host()
    monkeypatch.setattr(sandbox, "_host", lambda: replace(real, prefix=()))
    assert not sandbox.host_protections()["pid_namespace"]
    assert _verdicts() == ["passed", "failed", "failed"]


@ROOT
@pytest.mark.skipif(not PROTECTIONS["no_new_processes"], reason="no seccomp filter on this host")
def test_without_namespaces_a_candidate_signals_only_itself(monkeypatch):
    # Where there is no PID namespace, the filter still keeps signals from leaving the
    # candidate. The probe of everyone uses signal 0, so a failure here harms nobody.
    real = sandbox._host()
    monkeypatch.setattr(sandbox, "_host", lambda: replace(real, prefix=()))
    victim = subprocess.Popen(["sleep", "60"])
    try:
        code = (
            "import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            f"print(libc.kill({victim.pid}, 15), ctypes.get_errno(), libc.kill(-1, 0), ctypes.get_errno(),\n"
            "      libc.kill(os.getpid(), 0))\n"
        )
        result = run_program(code)
        assert result.status == "passed"
        assert result.stdout_tail.split() == ["-1", "1", "-1", "1", "0"]  # EPERM, EPERM, self allowed
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


@ISOLATED
def test_in_a_user_namespace_only_the_tester_decides(monkeypatch):
    real = sandbox._host()
    unshare = real.prefix[0]
    prefix = (unshare, "--user", "--map-root-user", *sandbox._NAMESPACES)
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("user namespaces are not permitted here")
    monkeypatch.setattr(sandbox, "_host", lambda: replace(real, prefix=prefix, user_namespace=True))
    assert _verdicts() == ["passed", "failed", "failed"]


# --------------------------------------------------------------------------------------
# The plain-data codec (sandbox_child is a real module: importable and testable here).

PLAIN_VALUES = [
    None, True, False, 0, -7, 10 ** 40, 1.5, -0.0, float("inf"), float("-inf"), "", "h\u00e9\ud800\n\"",
    [], (), (1,), [1, [2, (3, {4})]], {1, 2}, frozenset({(1, 2)}), {"a": 1, (1, 2): [3], 4: None},
    b"\x00\xff", bytearray(b"ab"), 1 + 2j, {"nested": {"deep": [[[(1.0, "x")]]]}},
]


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=repr)
def test_plain_values_round_trip_with_their_exact_types(value):
    back = plain(loads(encode(value)))
    assert back == value and type(back) is type(value)
    assert encode(back) == encode(value)


def test_nan_round_trips():
    assert math.isnan(plain(loads(encode(float("nan")))))


@pytest.mark.parametrize("value", [
    object(), type("S", (str,), {})("x"), type("I", (int,), {})(1), [1, object()], {"k": {1: iter([])}},
    range(3), (i for i in range(2)), print, True.__class__, Ellipsis,
], ids=lambda v: type(v).__name__)
def test_anything_else_is_not_plain(value):
    with pytest.raises(NotPlain):
        encode(value)


def test_self_reference_and_depth_are_bounded():
    loop: list = []
    loop.append(loop)
    with pytest.raises(NotPlain):
        encode(loop)
    deep: list = []
    for _ in range(sandbox_child.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(NotPlain):
        encode(deep)


@pytest.mark.parametrize("text", [
    '{"a": 1}', '["x", 1]', '["l"', '["t", 1] 2', '[1, 2]', '["d", 1]', '["s", ["l"]]', '["b", 5]',
    '["c", "1", 2]', "[]", "nan", '["d", ["l"], 1]', "[" * 100000 + "]" * 100000,
])
def test_malformed_data_is_refused(text):
    with pytest.raises(ValueError):
        plain(loads(text))
