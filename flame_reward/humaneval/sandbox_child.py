"""The program that runs inside the HumanEval sandbox: supervisor, candidate and tester.

The harness (:mod:`flame_reward.humaneval.sandbox`) reads this file as a package
resource, compiles it once and ships the code object to a fresh ``python -I -S -B``,
which calls :func:`main`. Inside the sandbox the package is not importable, so this
module imports only the standard library, and only cheap modules: every import is paid
once per job.

Three processes per job (docs/humaneval.md, "Threat model", says why):

* the **supervisor** (PID 1 of a fresh PID namespace, root) builds a minimal root file
  system, forks the other two, enforces the wall clock, kills everything at the end and
  reports how the processes ended;
* the **candidate** (uid 65534, no file descriptor but 0-2) runs the untrusted program,
  then answers calls on fd 0: a function name and plain-data arguments in, a plain-data
  return value out;
* the **tester** (uid 65533) runs the trusted test code, in which every candidate
  function is a proxy making such a call, so asserts compare plain values in a process
  the candidate cannot reach. Only the tester and the supervisor hold the result pipe.

The candidate is forked before the test specification is read, so no copy of the tests
or their expected values ever exists in its memory.
"""

from __future__ import annotations

import _json
import _signal as signal
import _socket
import builtins
import ctypes
import fcntl
import io
import marshal
import os
import resource
import select
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs ~10 ms per job; annotations are never evaluated
    from typing import Any, Callable

CodeType = type(compile("", "<empty>", "exec"))

CANDIDATE_UID = 65534
"""uid and gid of candidate processes (``nobody``)."""
TESTER_UID = 65533
"""uid and gid of tester processes: a different user, so a candidate cannot signal it."""
MAX_MESSAGE = 8 << 20
"""Largest message on the candidate link (a return value bigger than this fails)."""
MAX_DEPTH = 200
"""Deepest nesting of a plain value."""
GRACE = 0.1
"""Seconds a late reply or a finished candidate's exit is waited for."""
ERROR_CHARS = 300

# --------------------------------------------------------------------------------------
# Plain data. A value crosses between candidate and tester as JSON text in which every
# container is an array whose first element names its type, so tuples stay tuples and
# sets stay sets. Only exact builtin types are accepted (``type(x) is list``, never a
# subclass), so no object with its own ``__eq__`` or ``__hash__`` survives the trip.


class NotPlain(TypeError):
    """A value that is not plain data (its type name is the message)."""


_FLOAT_WORDS = {float("inf"): "Infinity", float("-inf"): "-Infinity"}
_encode_str = _json.encode_basestring_ascii


def encode(value: Any, depth: int = 0) -> str:
    """JSON text of a plain value; :class:`NotPlain` for anything else."""
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value != value:
            return "NaN"
        return _FLOAT_WORDS.get(value) or float.__repr__(value)
    if kind is str:
        return _encode_str(value)
    if depth >= MAX_DEPTH:
        raise NotPlain("value nested deeper than %d" % MAX_DEPTH)
    depth += 1
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        tag = {list: '["l"', tuple: '["t"', set: '["s"', frozenset: '["f"'}[kind]
        return tag + "".join("," + encode(item, depth) for item in value) + "]"
    if kind is dict:
        return '["d"' + "".join(
            "," + encode(key, depth) + "," + encode(item, depth) for key, item in dict.items(value)
        ) + "]"
    if kind is bytes or kind is bytearray:
        return '["%s","%s"]' % ("b" if kind is bytes else "y", value.hex())
    if kind is complex:
        return '["c",%s,%s]' % (encode(value.real), encode(value.imag))
    raise NotPlain(getattr(kind, "__qualname__", "object"))


_CONTAINERS: dict[str, Callable[[Any], Any]] = {"l": list, "t": tuple, "s": set, "f": frozenset}


def plain(raw: Any, depth: int = 0) -> Any:
    """The plain value that :func:`encode` wrote as ``raw`` (parsed JSON); ValueError if none."""
    kind = type(raw)
    if raw is None or kind is bool or kind is int or kind is float or kind is str:
        return raw
    if kind is not list or not raw or type(raw[0]) is not str or depth >= MAX_DEPTH:
        raise ValueError("not a plain value")
    tag, items = raw[0], raw[1:]
    depth += 1
    try:
        if tag in _CONTAINERS:
            return _CONTAINERS[tag](plain(item, depth) for item in items)
        if tag == "d" and len(items) % 2 == 0:
            values = [plain(item, depth) for item in items]
            return dict(zip(values[::2], values[1::2]))
        if tag in ("b", "y") and len(items) == 1 and type(items[0]) is str:
            return (bytes if tag == "b" else bytearray).fromhex(items[0])
        if tag == "c" and len(items) == 2 and all(type(p) in (int, float) for p in items):
            return complex(items[0], items[1])
    except TypeError as exc:  # an unhashable set member or dict key
        raise ValueError("not a plain value: %s" % exc) from None
    raise ValueError("not a plain value")


class _JsonSyntax:
    # The settings _json's C scanner reads; importing the json package would cost ~10 ms
    # per job (it imports re).
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__


_scan = _json.make_scanner(_JsonSyntax())


def loads(text: str) -> Any:
    """Parse one JSON document (arrays of scalars; objects parse to dicts, which
    :func:`plain` refuses)."""
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError("malformed message: %s" % type(exc).__name__) from None
    if end != len(text):
        raise ValueError("malformed message: trailing data")
    return value


# --------------------------------------------------------------------------------------
# The link between candidate and tester: a Unix socket pair carrying length-prefixed
# JSON messages.


class LinkBroken(Exception):
    """The other end closed the link, or sent something that is not a message."""


class Link:
    """One end of the candidate link; reads are bounded by ``MAX_MESSAGE``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.broken = ""

    def send(self, text: str, deadline: float | None = None) -> None:
        data = text.encode("ascii")
        view = memoryview(len(data).to_bytes(4, "big") + data)
        while view:
            if deadline is not None:
                _wait(self.fd, deadline, write=True)
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                continue

    def recv(self, deadline: float | None = None) -> Any:
        """The next message (parsed JSON), ``None`` at end of stream.

        Raises :class:`LinkBroken` on a malformed or oversized message and
        :class:`Expired` when ``deadline`` passes first.
        """
        while True:
            if len(self.buffer) >= 4:
                size = int.from_bytes(self.buffer[:4], "big")
                if size > MAX_MESSAGE:
                    raise LinkBroken("message of %d bytes is over the limit" % size)
                if len(self.buffer) >= 4 + size:
                    data = bytes(self.buffer[4 : 4 + size])
                    del self.buffer[: 4 + size]
                    try:
                        return loads(data.decode("ascii"))
                    except (UnicodeDecodeError, ValueError) as exc:
                        raise LinkBroken(str(exc)) from None
            if deadline is not None:
                _wait(self.fd, deadline)
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise LinkBroken("read failed: %s" % exc) from None
            if not chunk:
                if self.buffer:
                    raise LinkBroken("stream ended inside a message")
                return None
            self.buffer += chunk


class Expired(BaseException):
    """A deadline passed (a BaseException, so that test code's ``except Exception`` lets it by)."""


def _wait(fd: int, deadline: float, write: bool = False) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Expired()
    ready = select.select([], [fd], [], remaining) if write else select.select([fd], [], [], remaining)
    if not any(ready):
        raise Expired()


# --------------------------------------------------------------------------------------
# The supervisor.

_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 1, 4, 36
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_NOATIME, _MS_NODIRATIME, _MS_REMOUNT, _MS_BIND, _MS_RELATIME = 1024, 2048, 32, 4096, 1 << 21
_MNT_DETACH = 2
_SYSCALLS = {"x86_64": {"pivot_root": 155, "close_range": 436}, "aarch64": {"pivot_root": 41, "close_range": 436}}


class _Libc:
    """The few libc calls Python 3.11 has no wrapper for."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(None, use_errno=True)
        self.lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                   ctypes.c_char_p]
        self.lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        self.numbers = _SYSCALLS.get(os.uname().machine, {})

    def _check(self, result: int, what: str) -> None:
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, "%s: %s" % (what, os.strerror(errno)))

    def prctl(self, option: int, arg: int = 0) -> int:
        return self.lib.prctl(option, arg, 0, 0, 0)

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        enc = (lambda s: None if s is None else s.encode())
        self._check(self.lib.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), "mount " + target)

    def umount_detach(self, target: str) -> None:
        self._check(self.lib.umount2(target.encode(), _MNT_DETACH), "umount " + target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        number = self.numbers.get("pivot_root")
        if number is None:
            raise OSError("pivot_root: unknown system call number on %s" % os.uname().machine)
        self._check(self.lib.syscall(number, new_root.encode(), put_old.encode()), "pivot_root")

    def close_fds_from(self, first: int) -> None:
        number = self.numbers.get("close_range")
        if number is None or self.lib.syscall(number, first, ctypes.c_uint(0xFFFFFFFF), 0) != 0:
            os.closerange(first, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def main(job: dict, test_path: str) -> None:
    """Supervise one job: called by the bootstrap in a fresh interpreter (never returns)."""
    libc = _Libc()
    report = _Reporter(job["result_fd"])
    try:
        _supervise(job, test_path, libc, report)
    except BaseException as exc:  # a sandbox bug: say so rather than look like a candidate's failure
        report(setup=False, error=_describe(exc))
    finally:
        os._exit(0)


def _supervise(job: dict, test_path: str, libc: _Libc, report: _Reporter) -> None:
    # Neither the candidate (another uid) nor anyone else may read our memory or fds.
    libc.prctl(_PR_SET_DUMPABLE, 0)
    pid_one = os.getpid() == 1
    if not pid_one:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1)  # no PID namespace: orphans come back to us
    test_fd = os.open(test_path, os.O_RDONLY | os.O_CLOEXEC)
    os.unlink(test_path)
    if job["root_dir"]:
        _build_root(job, libc)
        work_dir = "/tmp"
    else:
        work_dir = job["work_dir"]
    os.environ.update(HOME=work_dir, TMPDIR=work_dir)
    job["supervisor_pid"] = os.getpid()
    # Modules the trusted prelude imports, loaded once here rather than once in each child
    # (typing alone costs ~10 ms).
    for name in job["preload"]:
        try:
            __import__(name)
        except ImportError:
            pass
    if job["no_new_processes"]:
        _filter_program()  # built once, before the children that install it are forked
    tester_end, candidate_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    tester_fd, candidate_fd = tester_end.detach(), candidate_end.detach()
    sys.stdout.flush()
    deadline = time.monotonic() + job["timeout"]
    candidate = os.fork()
    if candidate == 0:
        _child(lambda: _run_candidate(job, libc, candidate_fd, work_dir))
    os.close(candidate_fd)
    with os.fdopen(test_fd, "rb") as fh:
        test = marshal.loads(fh.read())  # written by the harness: plain strings and numbers
    tester = os.fork()
    if tester == 0:
        _child(lambda: _run_tester(job, test, libc, tester_fd, deadline))
    os.close(tester_fd)
    del test

    tester_status, timed_out, aborted = _await(tester, deadline)
    candidate_status = None
    if not (timed_out or aborted):
        # A finished tester closed the link; a well-behaved candidate exits at once.
        candidate_status = _await(candidate, time.monotonic() + GRACE)[0]
    _kill_everything(pid_one, candidate)
    _reap_all()
    report(end={
        "timed_out": timed_out,
        "aborted": aborted,
        "candidate": _describe_status(candidate_status),
        "tester": _describe_status(tester_status),
    })


def _child(run: Callable[[], None]) -> None:
    try:
        run()
    except BaseException as exc:
        _print_exception(exc)
    finally:
        os._exit(70)


def _await(pid: int, deadline: float) -> tuple[int | None, bool, bool]:
    """Wait for ``pid`` to exit: (its wait status or None, deadline passed, harness gone)."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status, False, False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, True, False
            # fd 0 is the harness's lifeline pipe: readable (EOF) once the harness is gone.
            watch = [0] if pidfd is None else [0, pidfd]
            timeout = remaining if pidfd is not None else min(remaining, 0.005)
            if 0 in select.select(watch, [], [], timeout)[0] and not os.read(0, 1):
                return None, False, True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _kill_everything(pid_one: bool, candidate: int) -> None:
    if pid_one:
        # As PID 1 of the namespace, -1 means every other process in it (and nothing outside).
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        return
    for pid in [candidate, *_children()]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _reap_all() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        for kid in _children():  # without a PID namespace, orphans re-parented to us
            try:
                os.kill(kid, signal.SIGKILL)
            except OSError:
                pass


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open("/proc/%d/task/%d/children" % (me, me)) as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _describe_status(status: int | None) -> dict:
    """How a process ended; ``stopped`` when it was still running when the job ended."""
    out: dict[str, Any] = {"exit": None, "signal": None, "stopped": status is None}
    if status is not None:
        if os.WIFEXITED(status):
            out["exit"] = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            out["signal"] = os.WTERMSIG(status)
    return out


def _build_root(job: dict, libc: _Libc) -> None:
    """Make a tmpfs holding only read-only binds of the Python runtime the new root."""
    root = job["root_dir"]
    libc.mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")
    for name, target in job["links"]:  # first, so that the binds below create no /lib of their own
        os.symlink(target, root + name)
    for path in job["binds"]:
        target = root + path
        os.makedirs(target, 0o755, exist_ok=True)
        libc.mount(path, target, None, _MS_BIND)
        libc.mount(None, target, None, _readonly_bind_flags(path))
    for alias, real in job["aliases"]:
        if not os.path.lexists(root + alias):  # absolute: resolved inside the new root
            os.makedirs(os.path.dirname(root + alias), 0o755, exist_ok=True)
            os.symlink(real, root + alias)
    os.mkdir(root + "/dev", 0o755)
    for device in job["devices"]:
        target = root + device
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o666))
        libc.mount(device, target, None, _MS_BIND)
    os.mkdir(root + "/tmp", 0o1777)
    libc.mount("tmpfs", root + "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV,
               "size=%d,nr_inodes=%d,mode=1777" % (job["disk_bytes"], job["disk_inodes"]))
    # pivot_root(".", ".") stacks the old root on the new one; detaching it leaves no path
    # to any host file in this mount namespace.
    os.chdir(root)
    libc.pivot_root(".", ".")
    libc.umount_detach(".")
    os.chdir("/")
    libc.mount(None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)


def _readonly_bind_flags(path: str) -> int:
    # A bind remount must keep the flags the kernel locked on the source mount (atime
    # modes, noexec), or it is refused inside a user namespace.
    flag = os.statvfs(path).f_flag
    flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
    for statvfs_bit, mount_bit in ((8, _MS_NOEXEC), (1024, _MS_NOATIME), (2048, _MS_NODIRATIME),
                                   (4096, _MS_RELATIME)):
        if flag & statvfs_bit:
            flags |= mount_bit
    return flags


# --------------------------------------------------------------------------------------
# Confining a child process (candidate or tester).


def _confine(job: dict, libc: _Libc, uid: int | None, keep: dict[int, int], cwd: str, cpu_seconds: int,
             memory_bytes: int, file_size_bytes: int) -> str:
    """Move ``keep`` fds (old -> new), close all others above 2, drop privileges, set
    limits and the system call filter. Returns a note when a protection is missing."""
    # Copy the kept fds above every target first, so that no move overwrites another.
    copies = {fcntl.fcntl(old, fcntl.F_DUPFD, 64): new for old, new in keep.items()}
    for copy, new in copies.items():
        os.dup2(copy, new)
    libc.close_fds_from(max(2, *keep.values()) + 1)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != job["supervisor_pid"]:
        os._exit(3)  # the supervisor died before the death signal was armed
    os.setpgid(0, 0)
    os.chdir(cwd)
    if not _become(uid):
        _drop_capabilities(libc)
    libc.prctl(_PR_SET_DUMPABLE, 0)  # changing uid re-arms it
    for name, soft, hard in (
        ("RLIMIT_AS", memory_bytes, memory_bytes),
        ("RLIMIT_CPU", cpu_seconds, cpu_seconds + 1),
        ("RLIMIT_FSIZE", file_size_bytes, file_size_bytes),
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_NPROC", job["max_processes"], job["max_processes"]),
    ):
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError, AttributeError):
            pass
    if job["no_new_processes"] and not _install_filter(libc):
        return "system call filter not installed"
    return ""


def _become(uid: int | None) -> bool:
    """Switch to ``uid`` (also as gid, no supplementary groups); False where not permitted."""
    if uid is None:
        return False
    try:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    except OSError:
        return False
    return True


def _drop_capabilities(libc: _Libc) -> None:
    # Still root (a user namespace mapping one uid, or no namespace): drop every capability.
    PR_CAPBSET_DROP, PR_SET_SECUREBITS = 24, 28
    # NOROOT | NO_SETUID_FIXUP | KEEP_CAPS_LOCKED, each with its lock bit.
    libc.prctl(PR_SET_SECUREBITS, 0x2F)
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        libc.prctl(PR_CAPBSET_DROP, cap)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    libc.lib.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)())


# Per architecture: AUDIT_ARCH, clone, clone3, legacy fork/vfork, the system calls a
# sandboxed process never needs that give it reach (exec, tracing other processes, new
# namespaces, mounts, kernel interfaces with a history of holes), and the signal calls,
# allowed only towards the calling process itself (so even without a PID namespace a
# candidate cannot signal anyone else).
_FILTER = {
    "x86_64": (0xC000003E, 56, 435, (57, 58), (
        59, 322,  # execve, execveat
        101, 310, 311, 438,  # ptrace, process_vm_readv/writev, pidfd_getfd
        272, 308,  # unshare, setns
        165, 166, 155, 161, 428, 429, 430, 431, 432, 433,  # mount family, pivot_root, chroot
        321, 298, 323, 425, 426, 427,  # bpf, perf_event_open, userfaultfd, io_uring
        248, 249, 250,  # add_key, request_key, keyctl
        303, 304,  # name_to_handle_at, open_by_handle_at
        246, 320, 175, 313, 176, 169, 167, 168,  # kexec, modules, reboot, swap
        200, 424, 434,  # tkill, pidfd_send_signal, pidfd_open
    ), (62, 234, 129, 297)),  # kill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo: own pid only
    "aarch64": (0xC00000B7, 220, 435, (), (
        221, 281,
        117, 270, 271, 438,
        97, 268,
        40, 39, 41, 51, 428, 429, 430, 431, 432, 433,
        280, 241, 282, 425, 426, 427,
        217, 218, 219,
        264, 265,
        104, 294, 105, 273, 106, 142, 224, 225,
        130, 424, 434,
    ), (129, 131, 138, 240)),
}


_FILTER_PROGRAM: list = []


def _filter_program() -> Any:
    """The seccomp program for this architecture (None if unknown), built once per job."""
    if _FILTER_PROGRAM:
        return _FILTER_PROGRAM[0]
    spec = _FILTER.get(os.uname().machine)
    if spec is None:
        _FILTER_PROGRAM.append(None)
        return None
    audit_arch, clone, clone3, legacy, denied, own_pid_only = spec
    LD_W_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
    ALLOW, KILL = 0x7FFF0000, 0x80000000
    EPERM, ENOSYS = 0x00050000 | 1, 0x00050000 | 38
    CLONE_THREAD = 0x00010000
    prog = [(LD_W_ABS, 0, 0, 4), (JEQ, 1, 0, audit_arch), (RET, 0, 0, KILL),
            (LD_W_ABS, 0, 0, 0), (JGE, 0, 1, 0x40000000), (RET, 0, 0, EPERM)]  # x32 ABI
    for number in (*legacy, *denied):
        prog += [(JEQ, 0, 1, number), (RET, 0, 0, EPERM)]
    pid_slots = []
    for number in own_pid_only:
        # The first argument (low 32 bits) must be our pid: patched in after each fork.
        pid_slots.append(len(prog) + 2)
        prog += [(JEQ, 0, 4, number), (LD_W_ABS, 0, 0, 16), (JEQ, 0, 1, 0), (RET, 0, 0, ALLOW),
                 (RET, 0, 0, EPERM)]
    # clone3 fails with ENOSYS so that glibc creates threads through clone instead.
    prog += [(JEQ, 0, 1, clone3), (RET, 0, 0, ENOSYS),
             (JEQ, 0, 3, clone), (LD_W_ABS, 0, 0, 16), (JSET, 1, 0, CLONE_THREAD),
             (RET, 0, 0, EPERM), (RET, 0, 0, ALLOW)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*insn) for insn in prog])
    program = Program(len(prog), filters)
    program.keep = filters  # the struct points into this array
    program.pid_slots = pid_slots
    _FILTER_PROGRAM.append(program)
    return program


def _install_filter(libc: _Libc) -> bool:
    """seccomp: no new processes (threads still work), no exec, no reach beyond this process."""
    program = _filter_program()
    if program is None:
        return False
    for slot in program.pid_slots:
        program.keep[slot].k = os.getpid()
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1)
    return libc.lib.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(program), 0, 0) == 0


# --------------------------------------------------------------------------------------
# The candidate: runs the untrusted program, then serves calls until the link closes.


class _CallTimeout(BaseException):
    pass


def _on_call_alarm(signum: int, frame: Any) -> None:
    raise _CallTimeout()


def _run_candidate(job: dict, libc: _Libc, link_fd: int, work_dir: str) -> None:
    note = _confine(job, libc, job["candidate_uid"], {link_fd: 0}, work_dir, job["cpu_seconds"],
                    job["memory_bytes"], job["file_size_bytes"])
    if not job["network_isolated"]:
        _block_sockets()
    sys.set_int_max_str_digits(0)
    sys.path.extend(job["sys_path"])
    link = Link(0)
    if note:
        link.send('["note",%s]' % _encode_str(note))
    sys.stdin = io.StringIO()  # fd 0 is the link: input() must not read it
    _serve(job["program"], link)


def _serve(program: str, link: Link) -> None:
    exit_now, flush = os._exit, _flush
    namespace = {"__name__": "__sandbox__", "__builtins__": builtins}
    signal.signal(signal.SIGALRM, _on_call_alarm)
    try:
        code = compile(program, "<candidate>", "exec")
        _guard()
        exec(code, namespace)
    except BaseException as exc:
        _print_exception(exc)
        flush()
        link.send('["failed",%s]' % _encode_str(_describe(exc)))
        exit_now(1)
    flush()
    link.send('["ready"]')
    while True:
        try:
            request = link.recv()
        except LinkBroken:
            exit_now(2)
        if request is None:
            flush()
            exit_now(0)
        link.send(_answer(namespace, request))


_MISSING = object()


def _answer(namespace: dict, request: Any) -> str:
    """Run one call request ``["call", id, name, seconds, args, kwargs]``; the reply text."""
    try:
        _, call_id, name, seconds, raw_args, raw_kwargs = request
        args, kwargs = plain(raw_args), plain(raw_kwargs)
    except (TypeError, ValueError):
        return '["bad",0]'
    setitimer = signal.setitimer
    try:
        setitimer(signal.ITIMER_REAL, max(float(seconds), 0.001))
        try:
            function = namespace.get(name, _MISSING)
            if function is _MISSING:
                raise NameError("name %r is not defined" % name)
            text = '["value",%d,%s]' % (call_id, encode(function(*args, **kwargs)))
        finally:
            setitimer(signal.ITIMER_REAL, 0)
    except _CallTimeout:
        text = '["timeout",%d]' % call_id
    except NotPlain as exc:
        text = '["unplain",%d,%s]' % (call_id, _encode_str(str(exc)[:ERROR_CHARS]))
    except BaseException as exc:
        text = '["raised",%d,%s,%s]' % (call_id, _encode_str(type(exc).__name__[:100]),
                                        _encode_str(_message(exc)))
    _flush()
    return text


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _message(exc: BaseException) -> str:
    try:
        return str(exc)[:ERROR_CHARS]
    except BaseException:
        return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (Expired, _CallTimeout)):
        return "timeout"
    return ("%s: %s" % (type(exc).__name__, _message(exc)))[:ERROR_CHARS]


def _print_exception(exc: BaseException) -> None:
    try:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    except BaseException:
        pass


def _block_sockets() -> None:
    # Only where no network namespace exists; best effort (_socket stays reachable).
    import socket

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError("network access is disabled in the sandbox")

    for name in ("socket", "create_connection", "create_server", "socketpair", "getaddrinfo", "fromfd"):
        setattr(socket, name, refuse)


def _guard() -> None:
    # Destructive or escaping functions raise PermissionError (HumanEval's
    # reliability_guard, extended): a clear error for honest code. The kernel-level
    # protections stop the rest. shutil and subprocess are patched when first imported:
    # importing subprocess alone costs ~20 ms.
    def disabled(name: str) -> Callable[..., None]:
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise PermissionError("%s is disabled in the sandbox" % name)
        return refuse

    def patch(module: Any, names: tuple[str, ...]) -> None:
        for name in names:
            if hasattr(module, name):
                setattr(module, name, disabled(module.__name__ + "." + name))

    patch(os, ("kill", "killpg", "system", "remove", "removedirs", "rmdir", "unlink", "rename",
               "renames", "replace", "truncate", "fchdir", "chdir", "chroot", "chmod", "fchmod",
               "lchmod", "chown", "fchown", "lchown", "lchflags", "chflags", "setuid", "setgid",
               "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid", "setsid",
               "setpgid", "setpgrp", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv",
               "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnl",
               "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "popen",
               "_exit"))
    pending = {
        "shutil": ("rmtree", "move", "chown"),
        "subprocess": ("Popen", "run", "call", "check_call", "check_output", "getoutput",
                       "getstatusoutput"),
    }
    modules = sys.modules

    def patch_pending() -> None:
        for name in list(pending):
            module = modules.get(name)
            # Skip a module still executing its own imports: its functions are not defined yet.
            if module is not None and not getattr(module.__spec__, "_initializing", False):
                patch(module, pending.pop(name))

    real_import = builtins.__import__

    def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                       level: int = 0) -> Any:
        module = real_import(name, globals, locals, fromlist, level)
        if pending:
            patch_pending()
        return module

    patch_pending()
    builtins.__import__ = guarded_import
    builtins.help = disabled("help")
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter", "multiprocessing"):
        modules[name] = None  # type: ignore[assignment]


# --------------------------------------------------------------------------------------
# The tester: trusted test code, candidate functions as proxies, plain-data comparisons.


class CandidateError(Exception):
    """The candidate function raised, returned something that is not plain data, or is gone."""


class _Unit:
    """The clock of the test unit (one assert, or the whole test) now running."""

    deadline = 0.0
    armed = False
    in_call = False
    pending = False


def _on_test_alarm(signum: int, frame: Any) -> None:
    # Never interrupt the link mid-message: a call notices the deadline itself.
    if _Unit.in_call:
        _Unit.pending = True
    elif _Unit.armed:
        raise Expired()


class Remote:
    """A candidate function as the test code sees it: a call sends plain arguments to the
    candidate process and returns the plain value it reports."""

    def __init__(self, name: str, link: _TesterLink) -> None:
        self.__name__ = name
        self._link = link

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._link.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return "<candidate function %s>" % self.__name__


_UNMAPPED = {"StopIteration", "StopAsyncIteration"}


class _TesterLink:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.next_id = 0
        os.set_blocking(link.fd, False)

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        if self.link.broken:
            raise CandidateError(self.link.broken)
        try:
            payload = '["call",%d,%s,%s,%s,%s]'
            self.next_id += 1
            call_id = self.next_id
            remaining = _Unit.deadline - time.monotonic()
            if remaining <= 0:
                raise Expired()
            try:
                text = payload % (call_id, _encode_str(name), float.__repr__(remaining), encode(args),
                                  encode(kwargs))
            except NotPlain as exc:
                raise TypeError("argument is not plain data: %s" % exc) from None
            _Unit.in_call = True
            try:
                return self._exchange(text, call_id)
            finally:
                _Unit.in_call = False
        finally:
            if _Unit.pending and _Unit.armed:
                _Unit.pending = False
                raise Expired()

    def _exchange(self, text: str, call_id: int) -> Any:
        limit = _Unit.deadline + GRACE
        try:
            self.link.send(text, limit)
            while True:
                message = self.link.recv(limit)
                if message is None:
                    raise LinkBroken("the candidate process ended")
                if type(message) is not list or len(message) < 2 or type(message[0]) is not str:
                    raise LinkBroken("malformed reply")
                kind, reply_id = message[0], message[1]
                if type(reply_id) is not int or reply_id != call_id:
                    continue  # a late reply to a call that already timed out
                if kind == "value" and len(message) == 3:
                    try:
                        return plain(message[2])
                    except (ValueError, RecursionError, MemoryError):
                        raise CandidateError("the candidate returned data that is not plain") from None
                if kind == "timeout":
                    raise Expired()
                if kind == "unplain" and len(message) == 3:
                    raise CandidateError("the candidate returned a %s, which is not plain data"
                                         % str(message[2])[:ERROR_CHARS])
                if kind == "raised" and len(message) == 4:
                    raise _rebuilt(str(message[2]), str(message[3]))
                raise LinkBroken("malformed reply")
        except LinkBroken as exc:
            self.link.broken = str(exc)
            raise CandidateError(self.link.broken) from None


def _rebuilt(type_name: str, message: str) -> Exception:
    """The exception the candidate reported, as a builtin exception where it names one."""
    cls = getattr(builtins, type_name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and type_name not in _UNMAPPED:
        try:
            return cls(message)
        except BaseException:
            pass
    return CandidateError("%s: %s" % (type_name, message))


def _free_names(code: CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _free_names(const)
    return names


def _run_tester(job: dict, test: dict, libc: _Libc, link_fd: int, deadline: float) -> None:
    # fds: 0-2 /dev/null (test code's prints are not the candidate's output), 3 the
    # candidate link, 4 the result pipe.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    cwd = "/" if job["root_dir"] else job["work_dir"]
    note = _confine(job, libc, job["tester_uid"], {link_fd: 3, job["result_fd"]: 4}, cwd,
                    job["cpu_seconds"], job["memory_bytes"], 1 << 20)
    report = _Reporter(4)
    try:
        sys.set_int_max_str_digits(0)
        sys.path.extend(job["sys_path"])
        if note:
            report(note="tester: " + note)
        _test(test, _TesterLink(Link(3)), report, deadline)
    except BaseException as exc:
        report(setup=False, error="the tester failed: " + _describe(exc))


def _test(test: dict, link: _TesterLink, report: _Reporter, deadline: float) -> None:
    tests = test["test"] is not None or test["asserts"] is not None
    # Prepared while the candidate still runs its program: the two overlap.
    prepared = _prepare(test, link) if tests else None
    if isinstance(prepared, str):
        report(setup=False, error=prepared)
        return
    if not _await_program(link, report, deadline) or prepared is None:
        if not tests:
            report(done=True)
        return
    namespace, codes, errors = prepared
    # The test (one unit on the job's clock), then each assert on its own clock.
    signal.signal(signal.SIGALRM, _on_test_alarm)
    position = 0
    if test["test"] is not None:
        ok, error = _run_unit(codes[0], errors[0], namespace, deadline - time.monotonic() - GRACE)
        report(test=ok, error=error)
        position = 1
    for index, code in enumerate(codes[position:]):
        ok, error = _run_unit(code, errors[position + index], namespace, test["assert_timeout"])
        report(a=index, ok=ok, error=error)
    report(done=True)


def _prepare(test: dict, link: _TesterLink) -> tuple[dict, list[CodeType | None], list[str]] | str:
    """The trusted namespace and the compiled test units, or why there are none.

    The namespace holds builtins, the prelude's definitions, then proxies for the
    candidate's functions: the entry points always, and any other name the tests use that
    nothing trusted defines.
    """
    namespace: dict[str, Any] = {"__name__": "__test__", "__builtins__": builtins}
    try:
        exec(compile(test["prelude"], "<prelude>", "exec"), namespace)
    except BaseException as exc:
        return "the trusted prelude raised " + _describe(exc)
    codes: list[CodeType | None] = []
    errors: list[str] = []
    sources = ([] if test["test"] is None else [test["test"]]) + list(test["asserts"] or ())
    for index, source in enumerate(sources):
        try:
            codes.append(compile(source, "<test>" if index == 0 and test["test"] is not None
                                 else "<assert>", "exec"))
            errors.append("")
        except BaseException as exc:
            codes.append(None)
            errors.append(_describe(exc))
    wanted = set(test["entry_points"])
    for code in codes:
        if code is not None:
            wanted |= _free_names(code) - set(namespace) - set(vars(builtins))
    for name in wanted:
        namespace[name] = Remote(name, link)
    return namespace, codes, errors


def _await_program(link: _TesterLink, report: _Reporter, deadline: float) -> bool:
    """Whether the candidate says its program ran to its end (reported either way).

    The supervisor ends the job at the deadline; waiting a little longer leaves that call
    to it.
    """
    notes = 0
    while True:
        try:
            message = link.link.recv(deadline + GRACE)
        except LinkBroken as exc:
            report(program=None, error=str(exc))
            return False
        except Expired:
            return False
        if message is None:
            report(program=None, error="the candidate process ended before finishing its program")
            return False
        if type(message) is list and message and message[0] == "note" and len(message) == 2:
            notes += 1
            if notes <= 3:  # the candidate's own notes: a few, or they could flood the results
                report(note=str(message[1])[:ERROR_CHARS])
            continue
        if message == ["ready"]:
            report(program=True)
            return True
        if type(message) is list and len(message) == 2 and message[0] == "failed":
            report(program=False, error=str(message[1])[:ERROR_CHARS])
            return False
        report(program=None, error="malformed message from the candidate")
        return False


def _run_unit(code: CodeType | None, compile_error: str, namespace: dict, seconds: float) -> tuple[bool, str]:
    if code is None:
        return False, compile_error
    if seconds <= 0:
        return False, "timeout"
    try:
        return _timed(code, namespace, seconds)
    except Expired:  # the alarm struck between the unit's end and disarming it
        return False, "timeout"


def _timed(code: CodeType, namespace: dict, seconds: float) -> tuple[bool, str]:
    _Unit.deadline = time.monotonic() + seconds
    _Unit.pending = False
    _Unit.armed = True
    signal.setitimer(signal.ITIMER_REAL, seconds + 2 * GRACE)
    try:
        exec(code, namespace)
        _Unit.armed = False
        return True, ""
    except BaseException as exc:
        _Unit.armed = False
        return False, _describe(exc)
    finally:
        _Unit.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


class _Reporter:
    """Writes reports (dict reprs, one a line) to the result pipe; only trusted code holds it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __call__(self, **fields: Any) -> None:
        data = (repr(fields) + "\n").encode("utf-8", "backslashreplace")
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
