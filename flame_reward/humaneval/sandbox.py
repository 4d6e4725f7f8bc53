"""Run untrusted candidate programs in isolated processes, and test them from outside.

A job is a program (the candidate) plus, optionally, trusted test code: a ``test`` unit
such as HumanEval's ``check(candidate)`` and/or separate ``asserts``. Each job gets three
fresh processes (the code they run is :mod:`flame_reward.humaneval.sandbox_child`):

* a **supervisor**, PID 1 of new PID, mount, network, IPC and UTS namespaces, which
  builds a root file system holding only read-only binds of the Python runtime and a
  size-capped ``/tmp``, enforces the wall clock and kills everything at the end;
* the **candidate**, uid 65534, with no file descriptor but 0-2, no way to create
  processes or exec, that runs the program and then answers calls on fd 0;
* the **tester**, uid 65533, that runs the test code with each candidate function
  replaced by a proxy: arguments and return values cross as plain data (builtin scalars
  and containers, never an object of the candidate's making), so every comparison in an
  assert happens in a process the candidate cannot reach.

Only the tester and the supervisor can write the result pipe, and a run passes only on
their reports. docs/humaneval.md ("Threat model") lists what this covers and what not;
:func:`host_protections` says which protections this host grants.
"""

from __future__ import annotations

import ast
import logging
import marshal
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import CodeType
from typing import Literal, Sequence

from flame_reward.errors import InvalidInput
from flame_reward.humaneval import sandbox_child

Status = Literal["passed", "failed", "timeout", "error"]

log = logging.getLogger(__name__)

REVISION = "4"
"""Changes when sandbox behaviour changes in a way that can alter results (cache keys use it)."""

__all__ = [
    "REVISION",
    "Job",
    "Limits",
    "RunResult",
    "Status",
    "assert_job",
    "check_asserts",
    "host_protections",
    "run_job",
    "run_many",
    "run_program",
]


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every candidate process."""

    memory_bytes: int = 1 << 30
    """Address-space limit (``RLIMIT_AS``) of the candidate and of the tester."""
    file_size_bytes: int = 16 << 20
    """Largest file the candidate may write (``RLIMIT_FSIZE``)."""
    disk_bytes: int = 64 << 20
    """Size of the candidate's ``/tmp`` (a tmpfs; the rest of its root is read-only)."""
    max_processes: int = 64
    """``RLIMIT_NPROC`` of the sandbox users: bounds threads (new processes are refused anyway)."""
    output_bytes: int = 1 << 20
    """Bytes read from stdout (and, separately, stderr) before that stream is closed."""
    tail_bytes: int = 8192
    """How much of the end of each stream is kept in the result."""
    site_packages: bool = False
    """Let candidates import installed third-party packages. Off by default: HumanEval
    needs only the standard library, and with it off the hidden-test results of the
    CodeGen-16B samples match the published ones exactly (two samples pass only because
    their leftover ``import matplotlib`` lines happen to succeed)."""


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Job:
    """One sandboxed run: a program, optionally tested by trusted code.

    Without ``test`` and ``asserts`` the job passes when the program runs to its end. That
    is the program's own claim: a program can always claim it (docs/humaneval.md), so use
    ``test`` or ``asserts`` to judge correctness.

    With them, the test code runs in a separate tester process, never in the candidate's:

    * ``prelude``: trusted code run first in the tester's namespace (for HumanEval, the
      prompt, so helpers such as ``poly`` or ``encode_cyclic`` are the task's own, not the
      candidate's);
    * ``entry_points``: names always bound to the candidate's functions, replacing what
      the prelude defines under those names; any other name the tests use that neither
      builtins, the prelude nor the test itself define is the candidate's as well;
    * ``test``: one unit under the job's wall clock (HumanEval's ``check`` definition and
      the ``check(entry_point)`` call);
    * ``asserts``: each run after ``test`` under its own ``assert_timeout``, so one
      hanging assert costs only its own result.

    A call to a candidate function sends its arguments as plain data and returns the
    plain value the candidate reports; anything else (an object with its own ``__eq__``,
    a generator, a subclass of a builtin) fails the call. ``timeout`` is the wall-clock
    limit of the whole run, process start included.
    """

    program: str
    asserts: tuple[str, ...] | None = None
    timeout: float = 10.0
    assert_timeout: float = 1.0
    test: str | None = None
    prelude: str = ""
    entry_points: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """How one run ended.

    ``status``: ``passed`` (the program ran to its end and every test unit and assert
    held), ``failed`` (the program raised or called ``sys.exit``, or a test or an assert
    failed), ``timeout`` (wall clock or CPU limit) or ``error`` (killed by a signal such
    as SIGSEGV, exited without finishing, or the sandbox itself failed). ``detail`` says
    why in words. ``returncode`` is the candidate's exit code (``-N``: signal N), or
    ``None`` when the supervisor stopped it.
    """

    status: Status
    returncode: int | None
    stdout_tail: str
    stderr_tail: str
    duration: float
    assert_results: tuple[bool, ...] = ()
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# --------------------------------------------------------------------------------------
# The child program, and the bootstrap that runs it in a fresh interpreter.

_MARKER = "flame-sandbox-job"
"""In every supervisor's command line (tests look for leftover processes by it)."""

_BOOTSTRAP = (
    f"#{_MARKER}\n"
    "import marshal,sys\n"
    "with open(sys.argv[1],'rb') as f: c,j=marshal.loads(f.read())\n"
    "g={'__name__':'flame_sandbox_child'}\n"
    "exec(c,g)\n"
    "g['main'](j,sys.argv[2])"
)


@lru_cache(maxsize=1)
def _child_code() -> CodeType:
    # The child is a real module of this package, read as a resource and compiled once
    # per harness process; the sandboxed interpreter cannot import the package (-I).
    source = resources.files("flame_reward.humaneval").joinpath("sandbox_child.py")
    return compile(source.read_text(encoding="utf-8"), str(source), "exec")


# --------------------------------------------------------------------------------------
# Host capabilities, probed once per process.


@dataclass(frozen=True)
class _Host:
    prefix: tuple[str, ...]
    """Command that starts the supervisor in new namespaces (empty: none permitted)."""
    user_namespace: bool
    binds: tuple[str, ...]
    """Real paths of the runtime's directories, bound read-only at the same place."""
    aliases: tuple[tuple[str, str], ...]
    """(path as the interpreter names it, its real path) where the two differ."""
    devices: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    """The host's top-level symlinks (``/lib`` -> ``usr/lib``), recreated in the root."""
    seccomp: bool

    @property
    def isolated(self) -> bool:
        return bool(self.prefix)


_NAMESPACES = ("--pid", "--fork", "--kill-child", "--mount", "--net", "--ipc", "--uts")

# Imports extension modules a candidate might load, then lists the directories the
# sandboxed interpreter needs: its module path and the shared libraries it maps.
_RUNTIME_PROBE = """
import os, sys
for name in ("_ctypes", "_hashlib", "_ssl", "zlib", "_bz2", "_lzma", "_sqlite3", "pyexpat",
             "_decimal", "_json", "select", "math", "_socket", "_random", "_struct", "array",
             "_datetime", "_heapq", "_bisect", "unicodedata", "binascii", "_pickle", "fcntl",
             "resource", "_queue", "_uuid", "_statistics", "cmath", "_multibytecodec", "readline",
             "_curses", "_dbm", "_gdbm", "termios", "mmap", "_posixshmem", "_zoneinfo", "_blake2",
             "_sha3", "_md5", "_sha1", "_sha256", "_sha512", "_csv", "_elementtree", "_asyncio"):
    try:
        __import__(name)
    except ImportError:
        pass
libs = set()
with open("/proc/self/maps") as fh:
    for line in fh:
        path = line.split()[-1]
        if path.startswith("/") and ".so" in os.path.basename(path):
            libs.add(os.path.dirname(path))
print(repr({"path": [p for p in sys.path if os.path.isdir(p)], "libs": sorted(libs)}))
"""


@lru_cache(maxsize=1)
def _host() -> _Host:
    prefix, user_ns = _namespace_prefix()
    binds: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    if prefix:
        binds, aliases = _runtime_dirs()
        if not binds:
            prefix, user_ns = (), False
    devices = tuple(d for d in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random") if os.path.exists(d))
    links = tuple(
        (f"/{name}", os.readlink(f"/{name}"))
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
        if os.path.islink(f"/{name}")
    )
    return _Host(prefix, user_ns, binds, aliases, devices, links, _seccomp_available())


def _namespace_prefix() -> tuple[tuple[str, ...], bool]:
    exe = shutil.which("unshare")
    if exe is None:
        return (), False
    tries = [((exe, "--user", "--map-root-user", *_NAMESPACES), True)]
    if os.geteuid() == 0:
        tries.insert(0, ((exe, *_NAMESPACES), False))
    for args, user_ns in tries:
        try:
            probe = subprocess.run([*args, "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return args, user_ns
    return (), False


def _runtime_dirs() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Directories to bind into the sandbox root (fewest, none inside another) and aliases."""
    try:
        probe = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", _RUNTIME_PROBE],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=True)
        found = ast.literal_eval(probe.stdout.decode())
    except (OSError, subprocess.SubprocessError, ValueError, SyntaxError):
        return (), ()
    paths = [*found["path"], *found["libs"]]
    aliases = tuple(sorted({(os.path.abspath(p), os.path.realpath(p)) for p in paths
                            if os.path.abspath(p) != os.path.realpath(p)}))
    return _outermost(paths), aliases


def _outermost(paths: Sequence[str]) -> tuple[str, ...]:
    """Real paths, none inside another."""
    wanted = {os.path.realpath(path) for path in paths}
    chosen: list[str] = []
    for path in sorted(wanted, key=len):
        if not any(path == c or path.startswith(c.rstrip("/") + "/") for c in chosen):
            chosen.append(path)
    return tuple(sorted(chosen))


@lru_cache(maxsize=1)
def _seccomp_available() -> bool:
    # The filter is built for these architectures only; the kernel must offer seccomp.
    if os.uname().machine not in sandbox_child._FILTER:
        return False
    try:
        with open("/proc/self/status") as fh:
            return any(line.startswith("Seccomp:") for line in fh)
    except OSError:
        return False


def host_protections() -> dict[str, bool]:
    """Which protections sandboxed runs get on this host (probed once).

    ``pid_namespace``, ``mount_namespace`` (a minimal root: host paths hidden, a
    size-capped ``/tmp``), ``network_namespace`` and ``ipc_namespace`` (``unshare``
    permitted; ``user_namespace`` when that took a user namespace, i.e. the harness is not
    root), ``unprivileged_users`` (candidate and tester run as uids 65534 and 65533: the
    harness is root), ``no_new_processes`` (seccomp filter against fork, clone and exec),
    ``separate_tester`` and ``guard`` (always).
    """
    host = _host()
    return {
        "pid_namespace": host.isolated,
        "mount_namespace": host.isolated,
        "network_namespace": host.isolated,
        "ipc_namespace": host.isolated,
        "user_namespace": host.user_namespace,
        "unprivileged_users": _may_change_users(host),
        "no_new_processes": host.seccomp,
        "separate_tester": True,
        "guard": True,
    }


@lru_cache(maxsize=1)
def _site_paths() -> tuple[str, ...]:
    # The sandboxed interpreter runs with -S (no site module): processing .pth files
    # costs ~30 ms per start and runs arbitrary code; with Limits.site_packages only the
    # directories are added, so that installed packages become importable.
    import site

    paths = [*site.getsitepackages(), site.getusersitepackages()]
    return tuple(p for p in paths if os.path.isdir(p))


# --------------------------------------------------------------------------------------
# Harness side.


class _Tail:
    """Keeps the last ``keep`` bytes of a stream and counts everything read."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.buffer = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self.buffer += data
        if len(self.buffer) > 2 * self.keep:
            del self.buffer[: len(self.buffer) - self.keep]

    def text(self) -> str:
        data = bytes(self.buffer[-self.keep :]) if self.keep else b""
        return data.decode("utf-8", errors="replace")


_RESULT_PIPE_LIMIT = 4 << 20
"""Reports beyond this size make the run an error (only trusted code writes them)."""
_DISK_INODES = 16384


def run_job(job: Job, limits: Limits = DEFAULT_LIMITS) -> RunResult:
    """Run one job in a fresh sandbox and say how it ended (never raises for bad code)."""
    if job.timeout <= 0 or job.assert_timeout <= 0:
        raise InvalidInput("timeout", "timeouts must be positive")
    host = _host()
    if not host.isolated:
        _warn_unisolated()
    workdir = tempfile.mkdtemp(prefix="flame-sandbox-")
    read_fd, write_fd = os.pipe()
    write_open = True
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    try:
        if host.isolated:
            root_dir, work_dir = os.path.join(workdir, "root"), ""
            os.mkdir(root_dir)
        else:
            root_dir, work_dir = "", os.path.join(workdir, "tmp")
            os.mkdir(work_dir)
            if _may_change_users(host):
                os.chown(work_dir, sandbox_child.CANDIDATE_UID, sandbox_child.CANDIDATE_UID)
        spec = {
            "program": job.program,
            "timeout": job.timeout,
            "cpu_seconds": int(job.timeout) + 1,
            "memory_bytes": limits.memory_bytes,
            "file_size_bytes": limits.file_size_bytes,
            "disk_bytes": limits.disk_bytes,
            "disk_inodes": _DISK_INODES,
            "max_processes": limits.max_processes,
            "no_new_processes": host.seccomp,
            "network_isolated": host.isolated,
            "result_fd": write_fd,
            "root_dir": root_dir,
            "work_dir": work_dir,
            "binds": list(_outermost([*host.binds, *_site_paths()]) if limits.site_packages else host.binds),
            "devices": list(host.devices),
            "links": [list(link) for link in host.links],
            "aliases": [list(alias) for alias in host.aliases],
            "candidate_uid": sandbox_child.CANDIDATE_UID if _may_change_users(host) else None,
            "tester_uid": sandbox_child.TESTER_UID if _may_change_users(host) else None,
            "sys_path": list(_site_paths()) if limits.site_packages else [],
            "preload": list(_preload(job.prelude)),
        }
        test = {
            "prelude": job.prelude,
            "test": job.test,
            "asserts": list(job.asserts) if job.asserts is not None else None,
            "entry_points": list(job.entry_points),
            "assert_timeout": job.assert_timeout,
        }
        job_file, test_file = os.path.join(workdir, "job"), os.path.join(workdir, "test")
        with open(job_file, "wb") as fh:
            fh.write(marshal.dumps((_child_code(), spec)))
        with open(test_file, "wb") as fh:
            fh.write(marshal.dumps(test))
        home = "/tmp" if host.isolated else work_dir
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": home, "TMPDIR": home}
        command = [*host.prefix, sys.executable, "-I", "-S", "-B", "-c", _BOOTSTRAP, job_file, test_file]
        try:
            proc = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                # stdin is the supervisor's lifeline: when this process dies, it reads EOF
                # and ends the job.
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        except OSError as exc:
            return RunResult("error", None, "", "", 0.0, _no_asserts(job), f"could not start: {exc}")
        finally:
            os.close(write_fd)  # only the sandbox may hold the write end, or EOF never comes
            write_open = False
        stdout, stderr, reports, backstop, overflow = _collect(proc, read_fd, job, limits)
        try:
            proc.wait(timeout=5.0)  # the supervisor exits right after its last report
        except subprocess.TimeoutExpired:
            _kill_session(proc.pid)
    finally:
        if proc is not None:
            if proc.poll() is None:
                _kill_session(proc.pid)
                proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
        if write_open:
            os.close(write_fd)
        os.close(read_fd)
        shutil.rmtree(workdir, ignore_errors=True)
    duration = time.monotonic() - started
    if overflow:
        status, detail, asserts, returncode = "error", "result channel overflow", _no_asserts(job), None
    else:
        status, detail, asserts, returncode = _interpret(reports, job, backstop)
    if stdout.total > limits.output_bytes or stderr.total > limits.output_bytes:
        detail = (detail + "; " if detail else "") + "output limit reached, stream closed"
    return RunResult(status, returncode, stdout.text(), stderr.text(), duration, asserts, detail)


_PRELOADABLE = frozenset({
    "bisect", "collections", "copy", "decimal", "fractions", "functools", "heapq", "itertools", "math",
    "operator", "random", "re", "statistics", "string", "typing",
})
"""Standard modules without side effects that a prelude's imports may load before the fork."""


@lru_cache(maxsize=256)
def _preload(prelude: str) -> tuple[str, ...]:
    # Only the trusted prelude names what the supervisor imports; never the candidate.
    try:
        tree = ast.parse(prelude)
    except SyntaxError:
        return ()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return tuple(sorted(names & _PRELOADABLE))


@lru_cache(maxsize=1)
def _warn_unisolated() -> None:
    log.warning(
        "sandbox: unshare is not permitted here; candidates run in the host's namespaces "
        "(host files visible, no disk cap). Do not score untrusted code on this host."
    )


def _may_change_users(host: _Host) -> bool:
    # Root can switch to the sandbox users. Without a minimal root they must also reach the
    # runtime where it lies on the host (a Python under /root is not readable by nobody);
    # otherwise the children stay root with every capability dropped.
    if os.geteuid() != 0:
        return False
    return host.isolated or all(_readable_by_others(path) for path in host.binds)


@lru_cache(maxsize=None)
def _readable_by_others(path: str) -> bool:
    import stat

    current = os.path.realpath(path)
    try:
        if not os.stat(current).st_mode & stat.S_IROTH:
            return False
        while current != "/":
            if not os.stat(current).st_mode & stat.S_IXOTH:
                return False
            current = os.path.dirname(current)
    except OSError:
        return False
    return True


def _no_asserts(job: Job) -> tuple[bool, ...]:
    return tuple(False for _ in job.asserts or ())


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _collect(
    proc: subprocess.Popen[bytes], result_fd: int, job: Job, limits: Limits
) -> tuple[_Tail, _Tail, list[dict], bool, bool]:
    """Read stdout, stderr and the result pipe until all close or the backstop passes."""
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = _Tail(limits.tail_bytes), _Tail(limits.tail_bytes)
    raw_results = bytearray()
    overflow = False
    # Streams are closed through their file objects (never os.close on the number), so a
    # number reused by another thread's pipe is never closed by mistake.
    streams = {proc.stdout.fileno(): (stdout, proc.stdout), proc.stderr.fileno(): (stderr, proc.stderr)}
    selector = selectors.DefaultSelector()
    for fd in (*streams, result_fd):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    # The supervisor enforces job.timeout itself; this only catches a supervisor that hangs.
    # Killing its session is enough: unshare --kill-child takes the namespace down with it.
    backstop = time.monotonic() + job.timeout + 5.0
    hit_backstop = False
    try:
        while selector.get_map():
            remaining = backstop - time.monotonic()
            if remaining <= 0:
                hit_backstop = True
                _kill_session(proc.pid)
                break
            for key, _ in selector.select(timeout=remaining):
                fd = key.fd
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if fd == result_fd:
                    if len(raw_results) + len(data) > _RESULT_PIPE_LIMIT:
                        overflow = True  # never parse a prefix: the rest could change the verdict
                    elif not overflow:
                        raw_results += data
                else:
                    tail = streams[fd][0]
                    tail.add(data)
                    if tail.total > limits.output_bytes:
                        data = b""  # stop reading: the writer gets EPIPE from now on
                if not data:
                    selector.unregister(fd)
                    if fd in streams:
                        streams[fd][1].close()
    finally:
        selector.close()
        for _, fileobj in streams.values():
            fileobj.close()
    reports = [item for item in map(_parse_report, bytes(raw_results).splitlines()) if item]
    return stdout, stderr, reports, hit_backstop, overflow


def _parse_report(line: bytes) -> dict | None:
    # Reports are dict reprs written by the tester and the supervisor.
    try:
        item = ast.literal_eval(line.decode("utf-8", errors="replace"))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return item if isinstance(item, dict) else None


def _interpret(
    reports: list[dict], job: Job, backstop: bool
) -> tuple[Status, str, tuple[bool, ...], int | None]:
    """Status, detail, per-assert results and the candidate's return code (-N: signal N)."""
    n_asserts = len(job.asserts or ())
    outcome = [False] * n_asserts
    program: bool | None = None
    program_error = test_error = setup_error = ""
    test_ok: bool | None = None
    done = False
    end: dict | None = None
    notes = []
    for item in reports:
        if "a" in item and isinstance(item["a"], int) and 0 <= item["a"] < n_asserts:
            outcome[item["a"]] = item.get("ok") is True
        elif "program" in item:
            program = item["program"]
            program_error = str(item.get("error", ""))
        elif "test" in item:
            test_ok = item["test"] is True
            test_error = str(item.get("error", ""))
        elif "setup" in item:
            setup_error = str(item.get("error", "")) or "sandbox setup failed"
        elif item.get("done") is True:
            done = True
        elif isinstance(item.get("end"), dict):
            end = item["end"]
        elif "note" in item:
            notes.append(str(item["note"]))
    asserts = tuple(outcome)

    def explain(text: str) -> str:
        return "; ".join([text, *notes]) if notes else text

    if backstop or end is None:
        status: Status = "timeout" if backstop else "error"
        detail = setup_error or "sandbox supervisor did not report" + (" before the backstop" if backstop else "")
        return status, explain(detail), asserts, None
    candidate = end.get("candidate") or {}
    signum = None if candidate.get("stopped") else candidate.get("signal")
    returncode = -int(signum) if signum is not None else candidate.get("exit")
    if setup_error:
        return "error", explain(setup_error), asserts, returncode
    if end.get("aborted"):
        return "error", explain("the harness's lifeline closed"), asserts, returncode
    if end.get("timed_out"):
        return "timeout", explain(f"wall clock limit of {job.timeout:g}s"), asserts, returncode
    if signum is not None:
        if signum in (signal.SIGXCPU, signal.SIGKILL) and program is not False:
            # SIGXCPU is RLIMIT_CPU's soft limit; SIGKILL its hard limit (or the OOM killer).
            detail = f"killed by {_signal_name(signum)} (CPU limit)"
            return "timeout", explain(detail), asserts, returncode
        return "error", explain(f"killed by {_signal_name(signum)}"), asserts, returncode
    if program is False:
        return "failed", explain(program_error or "program raised"), asserts, returncode
    if program is not True:
        detail = f"exited with code {returncode} before finishing" if returncode is not None else program_error
        return "error", explain(detail or "the program did not finish"), asserts, returncode
    if test_ok is False:
        if test_error == "timeout":  # the test ran out of the job's wall clock
            return "timeout", explain(f"wall clock limit of {job.timeout:g}s"), asserts, returncode
        return "failed", explain(test_error or "the test failed"), asserts, returncode
    if not done or (job.test is not None and test_ok is not True):
        return "error", explain("the tester did not finish"), asserts, returncode
    if n_asserts and not all(asserts):
        failed = n_asserts - sum(asserts)
        return "failed", explain(f"{failed} of {n_asserts} asserts failed"), asserts, returncode
    return "passed", explain(""), asserts, returncode


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def run_program(code: str, timeout: float = 10.0, *, limits: Limits = DEFAULT_LIMITS) -> RunResult:
    """Run ``code`` as a program; ``passed`` means it ran to its end without raising.

    That is the program's own claim (see :class:`Job`): use :func:`check_asserts` or a
    ``test`` job to judge correctness.
    """
    return run_job(Job(code, None, timeout=timeout), limits)


def check_asserts(
    program: str,
    asserts: Sequence[str],
    timeout: float = 1.0,
    *,
    total_timeout: float | None = None,
    prelude: str = "",
    entry_points: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> list[bool]:
    """Run ``program`` once, then each assert separately, outside it; one bool per assert.

    ``timeout`` bounds each assert; ``total_timeout`` (default: a few seconds plus
    ``timeout`` per assert, at most 60 s) bounds the whole run, after which the asserts not
    reached count as failed. If the program itself fails, every assert fails. ``prelude``
    and ``entry_points`` are as in :class:`Job`.
    """
    job = assert_job(program, asserts, timeout, total_timeout, prelude=prelude, entry_points=entry_points)
    return list(run_job(job, limits).assert_results)


def assert_job(
    program: str,
    asserts: Sequence[str],
    timeout: float = 1.0,
    total_timeout: float | None = None,
    *,
    prelude: str = "",
    entry_points: Sequence[str] = (),
) -> Job:
    """The :class:`Job` that :func:`check_asserts` runs (for batching with :func:`run_many`)."""
    if total_timeout is None:
        total_timeout = min(5.0 + timeout * len(asserts), 60.0)
    return Job(program, tuple(asserts), timeout=total_timeout, assert_timeout=timeout, prelude=prelude,
               entry_points=tuple(entry_points))


def run_many(
    jobs: Sequence[Job], workers: int | None = None, *, limits: Limits = DEFAULT_LIMITS
) -> list[RunResult]:
    """Run jobs in parallel, ``workers`` sandboxes at a time (default: CPU count); input order."""
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise InvalidInput("workers", "must be at least 1")
    if workers == 1 or len(jobs) <= 1:
        return [run_job(job, limits) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(lambda job: run_job(job, limits), jobs))
