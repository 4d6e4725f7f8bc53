"""Run untrusted candidate programs in isolated, resource-limited subprocesses.

Every run gets its own process tree, started as ``python -I -S -B`` in a fresh temporary
working directory that is removed afterwards. Inside it a small *supervisor* forks the
*candidate* process that executes the code; the supervisor enforces the wall-clock
limit, kills and reaps everything the candidate left behind, and reports how it ended.

Protections (``host_protections()`` says which apply on this host; written and tested on
a Firecracker VM where the harness runs as root):

* Network: the tree starts under ``unshare -m -n`` (new mount and network namespaces:
  only a downed loopback device exists, connects fail with ENETUNREACH). Where
  ``unshare`` is not permitted, a preamble replaces the ``socket`` constructors (best
  effort: ``_socket`` stays reachable).
* File system: inside the private mount namespace every mount is remounted read-only
  except the temporary working directory. A kernel barrier, also for root. Without
  ``unshare`` only the guard below protects files.
* Processes: a seccomp filter makes fork, vfork and clone-without-CLONE_THREAD fail
  (threads still work), so a fork bomb stops at its first fork, however it forks
  (``os.fork``, ``ctypes``, ``posix_spawn``). ``RLIMIT_NPROC`` is also set but the
  kernel exempts uid 0 from it, so as root it bounds nothing; a per-run ``pids`` cgroup
  would bound processes but moving a process into a cgroup v1 costs ~12 ms here.
* Privileges: as root the candidate drops every capability (bounding, effective,
  permitted) and sets ``no_new_privs``, so it cannot remount, raise rlimits or regain
  privileges through ``exec``.
* rlimits: address space (1 GiB), CPU seconds (the wall limit + 1), file size, no core
  files.
* Cleanup: the supervisor is a child sub-reaper (``PR_SET_CHILD_SUBREAPER``) and the
  candidate leads its own process group. The supervisor kills the group, then every
  descendant re-parented to it, and reaps them, so no process or zombie outlives a run
  (PID 1 of this VM does not reap orphans). ``PR_SET_PDEATHSIG`` ends the tree if the
  harness dies.
* Guard (like HumanEval's ``reliability_guard``): destructive or escaping functions of
  ``os``, ``shutil`` and ``subprocess`` (remove, rmtree, kill, fork, exec*, system,
  setsid, ...) raise ``PermissionError``. Where namespaces are unavailable this is the
  only file protection; it stops accidents, not a determined attacker (``ctypes``).
* I/O: stdin is ``/dev/null`` (``input()`` gets ``EOFError``); stdout and stderr are read
  concurrently, only a tail is kept, and a stream that exceeds ``output_bytes`` is closed
  (the candidate then gets ``BrokenPipeError``), so huge prints cannot exhaust memory.

Results travel on a dedicated pipe, not on stdout, and only a run that reaches its end
reports success: ``sys.exit(0)`` or ``os._exit(0)`` in a candidate is never "passed".
"""

from __future__ import annotations

import ast
import marshal
import os
import selectors
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Literal, Sequence

from flame_reward.errors import InvalidInput

Status = Literal["passed", "failed", "timeout", "error"]

REVISION = "3"
"""Changes when sandbox behaviour changes in a way that can alter results (cache keys use it)."""

__all__ = [
    "REVISION",
    "Job",
    "Limits",
    "RunResult",
    "Status",
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
    """Address-space limit (``RLIMIT_AS``) of the candidate process."""
    file_size_bytes: int = 16 << 20
    """Largest file the candidate may write (``RLIMIT_FSIZE``)."""
    max_processes: int = 64
    """``RLIMIT_NPROC`` (ignored for root; the seccomp filter forbids new processes anyway)."""
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
    """One sandboxed run: a program, optionally followed by assert statements.

    ``timeout`` is the wall-clock limit of the whole run (process start included).
    With ``asserts``, each one runs after the program in the same namespace under its own
    ``assert_timeout`` (``SIGALRM`` inside the candidate), so one hanging assert costs only
    its own result.
    """

    program: str
    asserts: tuple[str, ...] | None = None
    timeout: float = 10.0
    assert_timeout: float = 1.0


@dataclass(frozen=True)
class RunResult:
    """How one run ended.

    ``status``: ``passed`` (the program, and every assert if any, ran to the end),
    ``failed`` (it raised, an assert failed, or it called ``sys.exit``), ``timeout``
    (wall clock or CPU limit) or ``error`` (killed by a signal such as SIGSEGV, exited
    without reporting, or the sandbox itself failed). ``detail`` says why in words.
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
# The code that runs inside the sandbox, compiled once per harness process and shipped as
# a marshalled code object. It imports only builtin modules, ctypes and resource: json,
# signal and subprocess would each add 5-20 ms to every start.
_CHILD_SOURCE = r"""
import _signal as signal
import marshal, os, sys, time


def _main(job):
    result_fd = job["result_fd"]
    write = os.write

    def report(**obj):
        write(result_fd, (repr(obj) + "\n").encode("utf-8", "backslashreplace"))

    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != job["parent_pid"]:
        os._exit(3)  # the harness died before the death signal was armed
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    if job["private_mounts"]:
        # Only ever remount inside a namespace of our own: the host's mounts must not change.
        if os.readlink("/proc/self/ns/mnt") != job["host_mount_ns"]:
            _readonly_mounts(libc, os.getcwd(), report)
        else:
            report(note="mount namespace is the host's; mounts left alone")

    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _candidate(job, libc, report)
        finally:
            os._exit(70)
    try:
        os.setpgid(pid, pid)  # also done by the child; whichever runs first wins
    except OSError:
        pass
    status, timed_out = _wait(pid, start + job["timeout"])
    reaped = _kill_descendants(pid)
    end = {"timed_out": timed_out, "reaped": reaped, "exit": None, "signal": None}
    if os.WIFEXITED(status):
        end["exit"] = os.WEXITSTATUS(status)
    elif os.WIFSIGNALED(status):
        end["signal"] = os.WTERMSIG(status)
    report(end=end)
    os._exit(0)


def _wait(pid, deadline):
    # Wait for the candidate until the deadline; kill its group when it passes.
    import select
    timed_out = False
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, timed_out
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            _killpg(pid)
            return os.waitpid(pid, 0)[1], timed_out
        if pidfd is not None:
            select.select([pidfd], [], [], remaining)
        else:
            time.sleep(min(remaining, 0.005))


def _killpg(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _children():
    me = os.getpid()
    try:
        with open("/proc/%d/task/%d/children" % (me, me)) as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        pass
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    stat = fh.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                kids.append(int(entry))
    return kids


def _kill_descendants(pgid):
    # Kill the candidate's group, then every process re-parented to us; reap them all.
    _killpg(pgid)
    reaped = 0
    while True:
        for kid in _children():
            try:
                os.kill(kid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return reaped
        reaped += 1


_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MOUNT_FLAGS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC,
                "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}


def _readonly_mounts(libc, keep, report):
    import ctypes
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.c_ulong, ctypes.c_void_p]

    def mount(src, target, flags):
        if libc.mount(src, target.encode(), None, flags, None) != 0:
            return ctypes.get_errno()
        return 0

    failed = []
    if mount(b"none", "/", _MS_REC | _MS_PRIVATE) or mount(keep.encode(), keep, _MS_BIND):
        report(note="private mounts unavailable")
        return
    os.chdir(keep)  # the old cwd still points below the bind mount, into the read-only tree
    with open("/proc/self/mountinfo") as fh:
        rows = [line.split() for line in fh]
    for row in rows:
        target = row[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
        if target == keep:
            continue
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
        for opt in row[5].split(","):
            flags |= _MOUNT_FLAGS.get(opt, 0)  # keep nosuid/nodev/...: dropping them is refused
        if mount(None, target, flags):
            failed.append(target)
    if failed:
        report(note="could not make read-only: " + ", ".join(failed))


def _drop_capabilities(libc):
    import ctypes
    PR_CAPBSET_DROP, PR_SET_SECUREBITS = 24, 28
    # NOROOT | NO_SETUID_FIXUP | KEEP_CAPS_LOCKED, each with its lock bit: root regains
    # nothing through exec or setuid.
    libc.prctl(PR_SET_SECUREBITS, 0x2F, 0, 0, 0)
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
    except (OSError, ValueError):
        last = 40
    for cap in range(last + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    return libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()) == 0


# Syscall numbers that create processes, per architecture (AUDIT_ARCH_*, clone, clone3,
# then the legacy fork/vfork where they exist).
_PROCESS_SYSCALLS = {
    "x86_64": (0xC000003E, 56, 435, (57, 58)),
    "aarch64": (0xC00000B7, 220, 435, ()),
}


def _forbid_new_processes(libc):
    # seccomp filter: clone without CLONE_THREAD, fork and vfork fail with EPERM; clone3
    # fails with ENOSYS so that glibc creates threads through clone instead. Threads work,
    # processes cannot be created, whatever the caller (os.fork, ctypes, posix_spawn).
    import ctypes
    arch = _PROCESS_SYSCALLS.get(os.uname().machine)
    if arch is None:
        return False
    audit_arch, clone, clone3, legacy = arch
    LD_W_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
    ALLOW, KILL = 0x7FFF0000, 0x80000000
    EPERM, ENOSYS = 0x00050000 | 1, 0x00050000 | 38
    CLONE_THREAD = 0x00010000
    prog = [(LD_W_ABS, 0, 0, 4), (JEQ, 1, 0, audit_arch), (RET, 0, 0, KILL),
            (LD_W_ABS, 0, 0, 0), (JGE, 0, 1, 0x40000000), (RET, 0, 0, EPERM)]  # x32 ABI
    for number in legacy:
        prog += [(JEQ, 0, 1, number), (RET, 0, 0, EPERM)]
    prog += [(JEQ, 0, 1, clone3), (RET, 0, 0, ENOSYS),
             (JEQ, 0, 3, clone), (LD_W_ABS, 0, 0, 16), (JSET, 1, 0, CLONE_THREAD),
             (RET, 0, 0, EPERM), (RET, 0, 0, ALLOW)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                    ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*insn) for insn in prog])
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    program = Program(len(prog), filters)
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) == 0


class _AssertTimeout(BaseException):
    # Raised by SIGALRM; a BaseException so that `except Exception` in candidates lets it pass.
    pass


def _on_alarm(signum, frame):
    raise _AssertTimeout()


def _candidate(job, libc, report):
    import builtins, resource
    os.setpgid(0, 0)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the supervisor
    for name, soft, hard in (
        ("RLIMIT_AS", job["memory_bytes"], job["memory_bytes"]),
        ("RLIMIT_CPU", job["cpu_seconds"], job["cpu_seconds"] + 1),
        ("RLIMIT_FSIZE", job["file_size_bytes"], job["file_size_bytes"]),
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_NPROC", job["max_processes"], job["max_processes"]),
    ):
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError, AttributeError):
            pass
    if os.geteuid() == 0:
        _drop_capabilities(libc)
    if job["forbid_processes"] and not _forbid_new_processes(libc):
        report(note="seccomp filter not installed; process creation relies on the guard")
    sys.path.extend(job["sys_path"])
    if not job["network_isolated"]:
        _block_sockets()

    out_flush, err_flush, exit_now = sys.stdout.flush, sys.stderr.flush, os._exit

    def finish(code):
        for flush in (out_flush, err_flush):
            try:
                flush()
            except BaseException:
                pass
        exit_now(code)

    def describe(exc):
        if isinstance(exc, _AssertTimeout):
            return "timeout"
        return ("%s: %s" % (type(exc).__name__, exc))[:300]

    namespace = {"__name__": "__sandbox__", "__builtins__": builtins}
    signal.signal(signal.SIGALRM, _on_alarm)
    setitimer, ITIMER_REAL = signal.setitimer, signal.ITIMER_REAL
    try:
        code = compile(job["program"], "<candidate>", "exec")
    except BaseException as exc:
        report(program=False, error=describe(exc))
        _print_exception(exc)
        finish(1)
    _guard()
    try:
        exec(code, namespace)
    except BaseException as exc:
        report(program=False, error=describe(exc))
        _print_exception(exc)
        finish(1)
    report(program=True)
    for index, source in enumerate(job["asserts"] or ()):
        try:
            compiled = compile(source, "<assert %d>" % index, "exec")
            setitimer(ITIMER_REAL, job["assert_timeout"])
            try:
                exec(compiled, namespace)
            finally:
                setitimer(ITIMER_REAL, 0)
        except BaseException as exc:
            report(a=index, ok=False, error=describe(exc))
        else:
            report(a=index, ok=True)
    report(done=True)
    finish(0)


def _print_exception(exc):
    try:
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    except BaseException:
        pass


def _block_sockets():
    import socket

    def refuse(*args, **kwargs):
        raise PermissionError("network access is disabled in the sandbox")

    for name in ("socket", "create_connection", "create_server", "socketpair",
                 "getaddrinfo", "fromfd"):
        setattr(socket, name, refuse)


def _guard():
    # Disable destructive and escaping functions (HumanEval's reliability_guard, extended).
    # shutil and subprocess are patched when first imported (an __import__ hook), not
    # imported here: importing subprocess alone costs ~20 ms per start.
    import builtins

    def disabled(name):
        def refuse(*args, **kwargs):
            raise PermissionError("%s is disabled in the sandbox" % name)
        return refuse

    def patch(module, names):
        for name in names:
            if hasattr(module, name):
                setattr(module, name, disabled(module.__name__ + "." + name))

    patch(os, ("kill", "killpg", "system", "remove", "removedirs", "rmdir",
               "unlink", "rename", "renames", "replace", "truncate", "fchdir", "chdir",
               "chroot", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown",
               "lchflags", "chflags", "setuid", "setgid", "seteuid", "setegid",
               "setreuid", "setregid", "setresuid", "setresgid", "setsid", "setpgid",
               "setpgrp", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv",
               "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
               "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
               "spawnvp", "spawnvpe", "popen", "_exit"))
    pending = {
        "shutil": ("rmtree", "move", "chown"),
        "subprocess": ("Popen", "run", "call", "check_call", "check_output", "getoutput",
                       "getstatusoutput"),
    }
    modules = sys.modules

    def patch_pending():
        for name in list(pending):
            module = modules.get(name)
            # Skip a module still executing its own imports: its functions are not defined yet.
            if module is not None and not getattr(module.__spec__, "_initializing", False):
                patch(module, pending.pop(name))

    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        module = real_import(name, globals, locals, fromlist, level)
        if pending:
            patch_pending()
        return module

    patch_pending()
    builtins.__import__ = guarded_import
    builtins.help = disabled("help")
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter", "multiprocessing"):
        modules[name] = None


_main(JOB)
"""

# Runs the marshalled (code, job) pair named on the command line.
_BOOTSTRAP = (
    "import marshal,sys\n"
    "with open(sys.argv[1],'rb') as f: c,j=marshal.loads(f.read())\n"
    "exec(c,{'JOB':j,'__name__':'__sandbox__'})"
)


@lru_cache(maxsize=1)
def _child_code() -> CodeType:
    return compile(_CHILD_SOURCE, "<sandbox>", "exec")


# --------------------------------------------------------------------------------------
# Host capabilities, probed once per process.


@lru_cache(maxsize=1)
def _unshare_prefix() -> tuple[tuple[str, ...], bool, bool]:
    """(command prefix, network isolated, private mounts) that this host permits."""
    exe = shutil.which("unshare")
    if exe is None:
        return (), False, False
    for args, network, mounts in (((exe, "-m", "-n"), True, True), ((exe, "-n"), True, False)):
        try:
            probe = subprocess.run(
                [*args, "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return args, network, mounts
    return (), False, False


@lru_cache(maxsize=1)
def _seccomp_available() -> bool:
    # The filter is built for these architectures only; the kernel must offer seccomp.
    if os.uname().machine not in ("x86_64", "aarch64"):
        return False
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    return any(line.startswith("Seccomp:") for line in status.splitlines())


def host_protections() -> dict[str, bool]:
    """Which protections sandboxed runs get on this host (probed once).

    ``network_namespace`` and ``readonly_mounts`` (``unshare -m -n`` permitted),
    ``no_new_processes`` (seccomp filter against fork/clone), ``drops_capabilities`` (we
    are root and drop them), ``rlimit_nproc`` (effective only for non-root users: the
    kernel exempts uid 0), ``guard`` (always).
    """
    _, network, mounts = _unshare_prefix()
    root = os.geteuid() == 0
    return {
        "network_namespace": network,
        "readonly_mounts": mounts,
        "no_new_processes": _seccomp_available(),
        "drops_capabilities": root,
        "rlimit_nproc": not root,
        "guard": True,
    }


@lru_cache(maxsize=1)
def _site_paths() -> tuple[str, ...]:
    # The candidate runs with -S (no site module): processing .pth files costs ~30 ms per
    # start here and runs arbitrary code; with Limits.site_packages only the directories
    # are added, so that installed packages become importable.
    paths = [*site.getsitepackages()]
    user = site.getusersitepackages()
    return tuple(p for p in [*paths, user] if os.path.isdir(p))


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


_RESULT_PIPE_LIMIT = 8 << 20


def run_job(job: Job, limits: Limits = DEFAULT_LIMITS) -> RunResult:
    """Run one job in a fresh sandbox and say how it ended (never raises for bad code)."""
    if job.timeout <= 0 or job.assert_timeout <= 0:
        raise InvalidInput("timeout", "timeouts must be positive")
    prefix, network, mounts = _unshare_prefix()
    workdir = tempfile.mkdtemp(prefix="flame-sandbox-")
    read_fd, write_fd = os.pipe()
    write_open = True
    started = time.monotonic()
    proc: subprocess.Popen[bytes] | None = None
    try:
        spec = {
            "program": job.program,
            "asserts": list(job.asserts) if job.asserts is not None else None,
            "timeout": job.timeout,
            "assert_timeout": job.assert_timeout,
            "cpu_seconds": int(job.timeout) + 1,
            "memory_bytes": limits.memory_bytes,
            "file_size_bytes": limits.file_size_bytes,
            "max_processes": limits.max_processes,
            "forbid_processes": _seccomp_available(),
            "result_fd": write_fd,
            "parent_pid": os.getpid(),
            "private_mounts": mounts,
            "host_mount_ns": os.readlink("/proc/self/ns/mnt"),
            "network_isolated": network,
            "sys_path": list(_site_paths()) if limits.site_packages else [],
        }
        job_file = os.path.join(workdir, "job")
        with open(job_file, "wb") as fh:
            fh.write(marshal.dumps((_child_code(), spec)))
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
        command = [*prefix, sys.executable, "-I", "-S", "-B", "-c", _BOOTSTRAP, job_file]
        try:
            proc = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
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
        stdout, stderr, reports, backstop = _collect(proc, read_fd, job, limits)
        try:
            proc.wait(timeout=5.0)  # the supervisor exits right after closing its pipes
        except subprocess.TimeoutExpired:
            _kill_session(proc.pid)
    finally:
        if proc is not None and proc.poll() is None:
            _kill_session(proc.pid)
            proc.wait()
        if write_open:
            os.close(write_fd)
        os.close(read_fd)
        shutil.rmtree(workdir, ignore_errors=True)
    duration = time.monotonic() - started
    status, detail, asserts, returncode = _interpret(reports, job, backstop)
    if stdout.total > limits.output_bytes or stderr.total > limits.output_bytes:
        detail = (detail + "; " if detail else "") + "output limit reached, stream closed"
    return RunResult(status, returncode, stdout.text(), stderr.text(), duration, asserts, detail)


def _no_asserts(job: Job) -> tuple[bool, ...]:
    return tuple(False for _ in job.asserts or ())


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _collect(
    proc: subprocess.Popen[bytes], result_fd: int, job: Job, limits: Limits
) -> tuple[_Tail, _Tail, list[dict], bool]:
    """Read stdout, stderr and the result pipe until all close or the backstop passes."""
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = _Tail(limits.tail_bytes), _Tail(limits.tail_bytes)
    raw_results = bytearray()
    # Streams are closed through their file objects (never os.close on the number), so a
    # number reused by another thread's pipe is never closed by mistake.
    streams = {proc.stdout.fileno(): (stdout, proc.stdout), proc.stderr.fileno(): (stderr, proc.stderr)}
    selector = selectors.DefaultSelector()
    for fd in (*streams, result_fd):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    # The supervisor enforces job.timeout itself; this only catches a supervisor that hangs.
    # Killing it is enough: the candidate dies with it (PR_SET_PDEATHSIG).
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
                    if len(raw_results) < _RESULT_PIPE_LIMIT:
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
    return stdout, stderr, reports, hit_backstop


def _parse_report(line: bytes) -> dict | None:
    # Reports are dict reprs; the candidate can write to the pipe too, so parse defensively.
    if len(line) > 65536:
        return None
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
    program_error = ""
    done = False
    end: dict | None = None
    notes = []
    for item in reports:
        if "a" in item and isinstance(item["a"], int) and 0 <= item["a"] < n_asserts:
            outcome[item["a"]] = item.get("ok") is True
        elif "program" in item:
            program = item["program"] is True
            program_error = str(item.get("error", ""))
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
        detail = "sandbox supervisor did not report" + (" before the backstop" if backstop else "")
        return status, explain(detail), asserts, None
    signum = end.get("signal")
    returncode = -int(signum) if signum is not None else end.get("exit")
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
    if not done:
        detail = f"exited with code {returncode} before finishing"
        return "error", explain(detail), asserts, returncode
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
    """Run ``code`` as a program; ``passed`` means it ran to its end without raising."""
    return run_job(Job(code, None, timeout=timeout), limits)


def check_asserts(
    program: str,
    asserts: Sequence[str],
    timeout: float = 1.0,
    *,
    total_timeout: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[bool]:
    """Run ``program`` once, then each assert separately; one bool per assert.

    ``timeout`` bounds each assert; ``total_timeout`` (default: a few seconds plus
    ``timeout`` per assert, at most 60 s) bounds the whole run, after which the asserts not
    reached count as failed. If the program itself fails, every assert fails.
    """
    return list(run_job(assert_job(program, asserts, timeout, total_timeout), limits).assert_results)


def assert_job(
    program: str, asserts: Sequence[str], timeout: float = 1.0, total_timeout: float | None = None
) -> Job:
    """The :class:`Job` that :func:`check_asserts` runs (for batching with :func:`run_many`)."""
    if total_timeout is None:
        total_timeout = min(5.0 + timeout * len(asserts), 60.0)
    return Job(program, tuple(asserts), timeout=total_timeout, assert_timeout=timeout)


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
