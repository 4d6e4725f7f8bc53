"""Hostile candidates for HumanEval/0 never pass, and leave no process behind.

Every attack is a real completion of HumanEval/0 whose honest part is wrong (``return
None``), run as final scoring runs it (:func:`harness.hidden_test_job`: the hidden
``check`` in the tester, the candidate in its own process). The first group forged a pass
against the previous sandbox (issue 15); the second group is what that sandbox already
held. Each test asserts the exact status and, through the ``nothing_survives`` fixture,
that no process of the sandbox users or supervisors outlives the run.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from flame_reward.humaneval import sandbox
from flame_reward.humaneval.harness import evaluate_candidates, hidden_test_job
from flame_reward.humaneval.problems import load_problems
from flame_reward.humaneval.sandbox import run_job
from tests.sandbox_helpers import CANDIDATE_UID, gone, nothing_survives, sandbox_processes  # noqa: F401

PROBLEM = load_problems()["HumanEval/0"]
WRONG = "    return None\n"
PROTECTIONS = sandbox.host_protections()
ISOLATED = pytest.mark.skipif(not PROTECTIONS["pid_namespace"], reason="no namespaces on this host")

# A forged report for every format the harness ever parsed (this sandbox's and the last one's).
FORGED_REPORTS = (
    "{'program': True}\\n{'test': True, 'error': ''}\\n{'a': 0, 'ok': True}\\n{'done': True}\\n"
    "{'end': {'timed_out': False, 'aborted': False, 'candidate': {'exit': 0, 'signal': None, "
    "'stopped': False}, 'tester': {'exit': 0, 'signal': None, 'stopped': False}}}\\n"
    "{'end': {'timed_out': False, 'reaped': 0, 'exit': 0, 'signal': None}}\\n"
)

FORGED_FDS = f"""    import posix
    for fd in range(3, 64):
        try:
            posix.write(fd, b"{FORGED_REPORTS}")
        except OSError:
            pass
    posix._exit(0)
"""

FORGED_FDS_AT_IMPORT = WRONG + f"""

import posix
for fd in range(3, 64):
    try:
        posix.write(fd, b"{FORGED_REPORTS}")
    except OSError:
        pass
posix._exit(0)
"""

# Climb to the frames that called us; call every reporter-like function found there with
# a forged pass, send forged "true" replies on every link-like object, then exit at once.
FRAME_REACH = f"""    import sys, gc
    targets = []
    frame = sys._getframe(1)
    while frame is not None:
        targets += list(frame.f_locals.values()) + list(frame.f_globals.values())
        frame = frame.f_back
    targets += [o for o in gc.get_objects() if hasattr(o, "send") or callable(o)][:5000]
    for target in targets:
        for forge in (lambda t: t(done=True), lambda t: t(program=True), lambda t: t(test=True, error=""),
                      lambda t: t(a=0, ok=True), lambda t: t.send('["ready"]')):
            try:
                forge(target)
            except BaseException:
                pass
        if hasattr(target, "send"):
            for call_id in range(1, 20):
                try:
                    target.send('["value",%d,true]' % call_id)
                except BaseException:
                    pass
    for name in ("report", "finish", "exit_now"):
        frame = sys._getframe(1)
        while frame is not None:
            found = frame.f_locals.get(name)
            if callable(found):
                try:
                    found(0)
                except BaseException:
                    pass
            frame = frame.f_back
    return None
"""

JUNK_FLOOD = f"""    import posix
    junk = b"x" * (9 << 20)
    for fd in range(0, 64):
        for data in (b"{FORGED_REPORTS}", junk, b"{FORGED_REPORTS}"):
            try:
                posix.write(fd, data)
            except OSError:
                pass
    posix._exit(0)
"""

EXECV = f"""    import ctypes, posix, sys
    forged = "import os\\nfor fd in range(64):\\n    try:\\n        os.write(fd, b\\"{FORGED_REPORTS}\\")\\n    except OSError:\\n        pass\\n"
    for exe in (sys.executable, "/usr/bin/python3", "/proc/self/exe", "/bin/sh"):
        try:
            posix.execv(exe, [exe, "-c", forged])
        except OSError:
            pass
    argv = (ctypes.c_char_p * 4)(sys.executable.encode(), b"-c", forged.encode(), None)
    ctypes.CDLL(None).execv(sys.executable.encode(), argv)
    return None
"""

ALWAYS_EQUAL = """    class AlwaysEqual:
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        def __bool__(self):
            return True

        __hash__ = object.__hash__

    return AlwaysEqual()
"""

EQUAL_INT = """    class Yes(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    return Yes(1)
"""

# Install tracers and profilers that replace `candidate` inside check() with a function
# returning an always-equal object; also patch builtins the asserts might rely on.
SETTRACE = WRONG + """

import builtins, sys, threading


class _Yes:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


def _swap(frame, event, arg):
    if frame.f_code.co_name == "check" and "candidate" in frame.f_locals:
        frame.f_locals["candidate"] = lambda *a, **k: _Yes()
        import ctypes
        ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))
    return _swap


sys.settrace(_swap)
threading.settrace(_swap)
sys.setprofile(lambda frame, event, arg: _swap(frame, event, arg))
builtins.AssertionError = type("AssertionError", (BaseException,), {})
"""

# Look for the hidden test anywhere this process can see: its own heap, its files, its
# environment. Prints how many hits it had.
TEST_HUNT = """    import gc, os
    needles = ("3.9, 4.0, 5.0, " + "2.2], 0.3", "'author': " + "'jt'")
    hits = 0
    for obj in gc.get_objects():
        if obj is needles:
            continue
        try:
            values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
            hits += sum(any(n in v for n in needles) for v in values if isinstance(v, str))
        except Exception:
            pass
    for dirpath, dirnames, filenames in [*os.walk("/tmp"), ("/", [], os.listdir("/"))]:
        for name in filenames:
            try:
                with open(os.path.join(dirpath, name), errors="replace") as fh:
                    hits += any(n in fh.read(1 << 16) for n in needles)
            except OSError:
                pass
    hits += any(any(n in v for n in needles) for v in os.environ.values())
    print("hits", hits, flush=True)
    return None
"""

PDEATHSIG_OFF_KILL_SUPERVISOR = """    import ctypes, os, time
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG off
    libc.setsid()
    # In its PID namespace: 1 is the supervisor, 3 the tester.
    print("kills", [libc.kill(pid, 9) for pid in (os.getppid(), 1, 3)], flush=True)
    while True:
        time.sleep(0.1)
"""

KILL_EVERYTHING = """    import ctypes
    ctypes.CDLL(None).kill(-1, 9)
    return None
"""

HOST_FILES = """    import os
    print("root", sorted(os.listdir("/")), flush=True)
    for path in ("/etc/shadow", "/etc/passwd", "/proc/self/status", "/proc/1/environ", SECRET):
        try:
            with open(path) as fh:
                print("READ", path, len(fh.read()), flush=True)
        except OSError as exc:
            print("refused", path, type(exc).__name__, flush=True)
    return None
"""

HOST_UNIX_SOCKET = """    import socket
    for address in (SOCKET_PATH, "\\0" + ABSTRACT):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(address)
            print("CONNECTED", flush=True)
        except OSError as exc:
            print("refused", type(exc).__name__, flush=True)
    return None
"""

DISK_FILL = """    written = 0
    try:
        for i in range(1024):
            with open("/tmp/fill%d" % i, "wb") as fh:
                fh.write(b"\\0" * (1 << 20))
            written += 1 << 20
    finally:
        print("written", written, flush=True)
    return None
"""

KILL_HOST_PROCESS = """    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    print("kill", libc.kill(VICTIM, 9), ctypes.get_errno(), flush=True)
    return None
"""

# Already held by the previous sandbox: keep it that way.
FORK_BOMB = WRONG + """
import posix
while True:
    posix.fork()
"""

CTYPES_FORK_BOMB = """    import ctypes
    libc = ctypes.CDLL(None)
    print("forks", sorted({libc.fork() for _ in range(200)}), flush=True)
    return None
"""

SPAWN = """    import posix, subprocess
    for attempt in (lambda: subprocess.run(["/bin/sh", "-c", "true"]),
                    lambda: posix.posix_spawn("/bin/sh", ["sh"], {})):
        try:
            attempt()
            print("SPAWNED", flush=True)
        except OSError as exc:
            print("refused", type(exc).__name__, flush=True)
    return None
"""

THREAD_BOMB = WRONG + """
import threading, time
threads = []
while True:
    thread = threading.Thread(target=time.sleep, args=(60,), daemon=True)
    thread.start()
    threads.append(thread)
"""

MEMORY_BOMB = WRONG + """
blocks = []
while True:
    blocks.append(bytearray(64 << 20))
"""

LOOP = """    while True:
        pass
"""

DEAF_LOOP = """    import signal
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass
"""

SLEEP_AT_IMPORT = WRONG + """
import time
time.sleep(60)
"""

OUTPUT_FLOOD = """    while True:
        print("x" * 10000)
"""

WRITE_OUTSIDE = """    import os
    for path in (os.__file__, "/usr/lib/flame-test.txt", "/flame-test.txt", "/dev/flame-test"):
        try:
            open(path, "a").write("overwritten")
            print("WROTE", path, flush=True)
        except OSError as exc:
            print("refused", type(exc).__name__, flush=True)
    return None
"""

LOOPBACK_TCP = """    import socket
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", PORT))
        print("CONNECTED", flush=True)
    except OSError as exc:
        print("refused", type(exc).__name__, flush=True)
    return None
"""

SYS_EXIT = """    import sys
    sys.exit(0)
"""

EXIT_AT_IMPORT = WRONG + """
import posix
posix._exit(0)
"""

KILL_SELF = """    import posix
    posix.kill(posix.getpid(), 9)
"""


def _run(completion: str, timeout: float = 5.0):
    return run_job(hidden_test_job(PROBLEM, completion, timeout))


ATTACKS = {
    # name: (completion, expected status[, timeout])
    "forged reports on inherited fds, then _exit": (FORGED_FDS, "failed"),
    "forged reports on inherited fds at import": (FORGED_FDS_AT_IMPORT, "error"),
    "reporter reached through frames": (FRAME_REACH, "failed"),
    "forged end report and 9 MiB of junk": (JUNK_FLOOD, "failed"),
    "execv of a new Python": (EXECV, "failed"),
    "always-equal return value": (ALWAYS_EQUAL, "failed"),
    "int subclass equal to everything": (EQUAL_INT, "failed"),
    "settrace swaps candidate inside check": (SETTRACE, "failed"),
    "hunting the hidden test in memory and files": (TEST_HUNT, "failed"),
    "kill(-1) from the candidate": (KILL_EVERYTHING, "failed"),
    "fork bomb": (FORK_BOMB, "failed"),
    "ctypes fork bomb": (CTYPES_FORK_BOMB, "failed"),
    "spawn": (SPAWN, "failed"),
    "thread bomb": (THREAD_BOMB, "failed"),
    "memory bomb": (MEMORY_BOMB, "failed", 10.0),  # filling 1 GiB takes 3-4 s on this VM
    "busy loop": (LOOP, "timeout"),
    "busy loop that ignores its alarm": (DEAF_LOOP, "timeout"),
    "sleep at import": (SLEEP_AT_IMPORT, "timeout"),
    "output flood": (OUTPUT_FLOOD, "failed"),
    "writes outside the work dir": (WRITE_OUTSIDE, "failed"),
    "sys.exit(0) in the call": (SYS_EXIT, "failed"),
    "_exit(0) at import": (EXIT_AT_IMPORT, "error"),
    "SIGKILL to itself": (KILL_SELF, "timeout"),
}


# Attacks that would hit the host itself where the namespaces or the system call filter
# are missing (kill(-1) as root kills every process on the machine): never run there.
CONTAINED_ONLY = {"kill(-1) from the candidate", "fork bomb", "ctypes fork bomb", "spawn", "thread bomb"}
CONTAINED = PROTECTIONS["pid_namespace"] and PROTECTIONS["no_new_processes"]


def test_controls_an_honest_right_answer_passes_and_a_wrong_one_fails():
    assert _run(PROBLEM.canonical_solution).status == "passed"
    wrong = _run(WRONG)
    assert wrong.status == "failed" and "AssertionError" in wrong.detail


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_not_passed(name):
    if name in CONTAINED_ONLY and not CONTAINED:
        pytest.skip("needs a PID namespace and the system call filter on this host")
    completion, expected, *timeout = ATTACKS[name]
    result = _run(completion, timeout=timeout[0] if timeout else 3.0)
    assert result.status == expected, (result.status, result.detail, result.stdout_tail[-500:])
    if name == "hunting the hidden test in memory and files":
        assert result.stdout_tail.strip() == "hits 0"
    if name == "ctypes fork bomb":
        assert result.stdout_tail.strip() == "forks [-1]"
    if name in ("spawn", "writes outside the work dir"):
        assert "SPAWNED" not in result.stdout_tail and "WROTE" not in result.stdout_tail
        assert result.stdout_tail.count("refused") >= 2
    if name == "output flood":
        assert len(result.stdout_tail) <= sandbox.DEFAULT_LIMITS.tail_bytes and "output limit" in result.detail


def test_the_harness_scores_every_attack_as_failed():
    completions = [attack[0] for name, attack in ATTACKS.items() if len(attack) == 2 and "sleep" not in attack[0]
                   and (CONTAINED or name not in CONTAINED_ONLY)]
    passed = evaluate_candidates(PROBLEM, [PROBLEM.canonical_solution, *completions], timeout=3.0, workers=2)
    assert passed == [True] + [False] * len(completions)


@ISOLATED
def test_candidate_cannot_kill_a_host_process():
    victim = subprocess.Popen(["sleep", "60"])
    try:
        result = _run(KILL_HOST_PROCESS.replace("VICTIM", str(victim.pid)))
        assert result.status == "failed"
        # EPERM from the filter (signals reach only the caller); the PID namespace below
        # it would answer ESRCH: the victim is not in it.
        assert result.stdout_tail.split() == ["kill", "-1", "1"]
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


@ISOLATED
def test_candidate_cannot_kill_its_supervisor_and_dies_with_the_job():
    started = time.monotonic()
    result = _run(PDEATHSIG_OFF_KILL_SUPERVISOR, timeout=2.0)
    assert result.status == "timeout"
    assert result.stdout_tail.split() == ["kills", "[-1,", "-1,", "-1]"]
    assert time.monotonic() - started < 6.0


@ISOLATED
def test_a_killed_supervisor_takes_every_sandboxed_process_with_it():
    # The supervisor cannot be killed from inside; here the host kills it mid-run, as a
    # crash would. The candidate, blocked in its call, must not outlive it.
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("r", _run(LOOP, timeout=30.0)))
    runner.start()
    try:
        candidates: list[int] = []
        deadline = time.monotonic() + 20
        while not candidates and time.monotonic() < deadline:
            time.sleep(0.05)
            candidates = [p for p in sandbox_processes() if _uid(p) == CANDIDATE_UID]
        assert candidates, "no candidate process appeared"
        supervisor = _parent(candidates[0])
        os.kill(supervisor, 9)
    finally:
        runner.join(60)
    assert outcome["r"].status == "error"
    assert all(gone(pid) for pid in candidates)


@ISOLATED
def test_host_files_are_hidden(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    secret.chmod(0o644)
    result = _run(HOST_FILES.replace("SECRET", repr(str(secret))))
    assert result.status == "failed"
    lines = result.stdout_tail.splitlines()
    listing = ast.literal_eval(lines[0].split(" ", 1)[1])
    assert "etc" not in listing and "work" not in listing and "home" not in listing
    assert set(listing) <= {"bin", "dev", "lib", "lib32", "lib64", "libx32", "root", "sbin", "tmp", "usr"}
    assert not any(line.startswith("READ") for line in lines)
    assert sum(line.startswith("refused") for line in lines) == 5


@ISOLATED
def test_host_unix_sockets_are_unreachable(tmp_path):
    path = str(tmp_path / "host.sock")
    abstract = f"flame-sandbox-test-{os.getpid()}"
    servers = []
    for address in (path, "\0" + abstract):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        server.listen(8)
        server.setblocking(False)
        servers.append(server)
    try:
        code = HOST_UNIX_SOCKET.replace("SOCKET_PATH", repr(path)).replace("ABSTRACT", repr(abstract))
        result = _run(code)
        assert result.status == "failed"
        assert result.stdout_tail.split() == ["refused", "FileNotFoundError", "refused", "ConnectionRefusedError"]
        for server in servers:
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        for server in servers:
            server.close()


@ISOLATED
def test_loopback_tcp_is_unreachable():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    try:
        result = _run(LOOPBACK_TCP.replace("PORT", str(server.getsockname()[1])))
        assert result.status == "failed"
        assert result.stdout_tail.split() == ["refused", "OSError"]  # ENETUNREACH: no loopback device up
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


@ISOLATED
def test_disk_is_capped_per_job():
    started = time.monotonic()
    result = _run(DISK_FILL)
    assert result.status == "failed"
    assert "No space left on device" in result.detail
    written = int(result.stdout_tail.split()[1])
    assert written <= sandbox.DEFAULT_LIMITS.disk_bytes
    assert time.monotonic() - started < 10.0


def _uid(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
