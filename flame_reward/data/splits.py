"""Deterministic train/dev splits.

The shared sets come without a usable official train split (the HH-RLHF files here are
halves of Anthropic's *test* files), so we make one. A record's split depends only on its
own key, hashed with sha256: reordering a file, adding rows or reading a subset never moves
an existing record from train to dev or back.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from flame_reward.errors import InvalidInput

Split = Literal["train", "dev"]
SPLITS: tuple[str, ...] = ("all", "train", "dev")

# The first 8 bytes of the digest, read as an integer, give a uniform point in [0, 1).
_SCALE = float(2**64)


def _check_fraction(dev_fraction: float) -> None:
    if isinstance(dev_fraction, bool) or not isinstance(dev_fraction, (int, float)) or not 0.0 <= dev_fraction <= 1.0:
        raise InvalidInput("dev_fraction", f"must be a number in [0, 1], got {dev_fraction!r}")


def split_of(key: str, dev_fraction: float = 0.2) -> Split:
    """``"dev"`` for about ``dev_fraction`` of all keys, ``"train"`` for the rest; fixed per key."""
    _check_fraction(dev_fraction)
    point = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / _SCALE
    return "dev" if point < dev_fraction else "train"


def check_split(split: str) -> str:
    """Return ``split`` if it is ``"all"``, ``"train"`` or ``"dev"``; raise :class:`InvalidInput` otherwise."""
    if split not in SPLITS:
        raise InvalidInput("split", f"must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def in_split(key: str, split: str, dev_fraction: float = 0.2) -> bool:
    """Whether the record with ``key`` belongs to ``split`` (``"all"`` holds every record)."""
    check_split(split)
    return split == "all" or split_of(key, dev_fraction) == split
