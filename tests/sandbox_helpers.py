"""Finding what a sandboxed run left behind: processes of the sandbox users or supervisors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flame_reward.humaneval import sandbox
from flame_reward.humaneval.sandbox_child import CANDIDATE_UID, TESTER_UID

SANDBOX_UIDS = {CANDIDATE_UID, TESTER_UID}
MARKER = sandbox._MARKER.encode()


def sandbox_processes() -> set[int]:
    """Host PIDs of every process (zombies included) owned by a sandbox user, or whose
    command line carries the supervisor's marker."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        uids = next((line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")), [])
        if SANDBOX_UIDS & {int(u) for u in uids} or MARKER in cmdline:
            found.add(int(entry))
    return found


def gone(pid: int) -> bool:
    """True once ``pid`` no longer exists (a zombie still answers kill(pid, 0))."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(autouse=True)
def nothing_survives():
    """Every test in a module using this fixture leaves no sandbox process behind."""
    before = sandbox_processes()
    yield
    left = sandbox_processes() - before
    assert not left, f"sandbox processes survived the run: {sorted(left)}"
