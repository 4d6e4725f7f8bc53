"""Resumable runs: one directory per iteration, one ``DONE`` marker per finished step.

A run directory holds ``run.json`` (the settings it was started with) and ``iter-N/``
per iteration (``iter-0`` is the starting judge, evaluated only). A step writes its
outputs, then ``iter-N/<step>.DONE`` (JSON: what it produced, seconds, when). Re-running
the same command skips every step whose marker exists and redoes the first one without
it from scratch, so an interrupted run resumes from its last finished step. Files are
written to a temporary name and renamed, so a killed step never leaves a half-written
file that looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput

log = logging.getLogger(__name__)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class RunDir:
    """The directory of one loop run.

    ``settings`` are the choices that make the run's data what it is (models, instruction
    source, sampling settings, seed, templates digest...): they are written to ``run.json``
    on the first call, and a later call with different values is refused (a resumed run
    must continue the same experiment). Keys in ``free`` (e.g. ``iterations``, ``threads``)
    may change between calls.
    """

    def __init__(self, out: str | Path, command: str, settings: Mapping[str, Any],
                 free: Iterable[str] = (), echo: bool = True) -> None:
        self.path = Path(out)
        self.echo = echo
        self.path.mkdir(parents=True, exist_ok=True)
        stored = self.path / "run.json"
        current = {"command": command, **json.loads(json.dumps(dict(settings), default=str))}
        free = set(free)
        if stored.is_file():
            before = json.loads(stored.read_text(encoding="utf-8"))
            diffs = [f"{k}: {before.get(k)!r} -> {current.get(k)!r}"
                     for k in sorted(set(before) | set(current))
                     if k not in free and before.get(k) != current.get(k)]
            if diffs:
                raise InvalidInput("--out", f"{self.path} holds a run made with other settings "
                                            f"({'; '.join(diffs)}); use a new --out, or the same settings to resume")
        write_json(stored, current)
        self.settings = current

    def iteration(self, n: int) -> Path:
        d = self.path / f"iter-{n}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def marker(self, n: int, step: str) -> Path:
        return self.iteration(n) / f"{step}.DONE"

    def done(self, n: int, step: str) -> dict[str, Any] | None:
        m = self.marker(n, step)
        return json.loads(m.read_text(encoding="utf-8")) if m.is_file() else None

    def step(self, n: int, name: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """Run ``fn(iter_dir)`` unless ``iter-n/<name>.DONE`` exists; returns the step's summary."""
        previous = self.done(n, name)
        if previous is not None:
            self._say(f"iter-{n} {name}: already done ({self.marker(n, name)}), skipped")
            return previous
        self._say(f"iter-{n} {name}: running")
        started = time.perf_counter()
        info = dict(fn(self.iteration(n)))
        info["seconds"] = round(time.perf_counter() - started, 2)
        info["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json(self.marker(n, name), info)
        self._say(f"iter-{n} {name}: done in {info['seconds']:.0f}s")
        return info

    def _say(self, text: str) -> None:
        log.info(text)
        if self.echo:
            print(text, file=sys.stderr, flush=True)


__all__ = ["RunDir", "write_json"]
