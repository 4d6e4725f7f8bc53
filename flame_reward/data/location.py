"""Where the shared human-labelled data lives.

The data is read in place and never copied into the repository. By convention it sits in
``shared/data`` beside the repository root (``<repo>/../shared/data``); the
``FLAME_REWARD_DATA`` environment variable overrides the search.
"""

from __future__ import annotations

import os
from pathlib import Path

from flame_reward.errors import DataError

ENV_VAR = "FLAME_REWARD_DATA"


def _candidates(start: Path) -> list[Path]:
    # Both <dir>/shared/data and <dir>/../shared/data, for the directory and each parent:
    # the repo may be checked out beside `shared/` or contain it.
    out: list[Path] = []
    for directory in (start, *start.parents):
        out.append(directory / "shared" / "data")
        out.append(directory.parent / "shared" / "data")
    return out


def shared_data_dir() -> Path:
    """The shared data folder: ``$FLAME_REWARD_DATA`` if set, else the nearest ``shared/data``.

    The search walks up from the current directory and from this package's directory.
    Raises :class:`DataError` (saying what was tried) when nothing is found.
    """
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise DataError(f"{ENV_VAR}={configured!r} is not a directory")
        return path.resolve()

    starts = [Path.cwd().resolve(), Path(__file__).resolve().parent]
    tried: list[Path] = []
    for start in starts:
        for candidate in _candidates(start):
            if candidate in tried:
                continue
            tried.append(candidate)
            if candidate.is_dir():
                return candidate.resolve()
    raise DataError(
        "shared data folder not found; looked for shared/data and ../shared/data above "
        f"{' and '.join(str(s) for s in starts)}; set {ENV_VAR} to the folder that holds the data"
    )
