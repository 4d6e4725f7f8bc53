"""Prefix sharing: which rows of a scoring pass start with the same tokens.

Judgments often repeat a long opening: the N candidates of a pointwise batch (a GRPO
group, a Best-of-N task) share the chat header, the instruction and the prompt; the two
presentation orders of a pair share the instruction and the prompt (response A comes
after the prompt); every row of one task type shares at least the chat header and the
instruction. :func:`plan_prefixes` groups rows by their common leading token ids so a
backend that can reuse attention state (``TorchBackend``, through a KV cache) computes
each shared prefix once and only the rows' own suffixes after it.

The plan is a forest of :class:`PrefixNode`. A node covers tokens ``[start, end)`` shared
by every row under it; ``start`` is its parent's ``end`` (0 for a root), so a node is
computed from its parent's state. A node exists only where at least two rows share at
least ``min_tokens`` tokens beyond the parent, so every node saves at least
``min_tokens`` tokens of work. ``rows`` are the rows scored directly under the node
(their suffix is ``ids[end:]``); rows that share a further long stretch sit in
``children``. Every row keeps at least ``min_suffix[i]`` own tokens after its prefix (the
positions whose next-token distribution is read must be computed in the suffix pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class PrefixNode:
    """Tokens ``[start, end)`` shared by every row under this node."""

    start: int
    end: int
    rows: list[int] = field(default_factory=list)
    children: list[PrefixNode] = field(default_factory=list)

    def all_rows(self) -> list[int]:
        out = list(self.rows)
        for child in self.children:
            out += child.all_rows()
        return out


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    x = np.asarray(a[:n], dtype=np.int64)
    y = np.asarray(b[:n], dtype=np.int64)
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if diff.size else n


def plan_prefixes(
    rows: Sequence[Sequence[int]],
    min_tokens: int,
    min_suffix: Sequence[int] | None = None,
) -> tuple[list[int], list[PrefixNode]]:
    """``(unshared rows, prefix forest)`` for ``rows``; every row index appears exactly once.

    ``min_tokens``: the least number of tokens a group must share (beyond its parent's
    prefix) to be computed once. ``min_suffix[i]``: tokens row ``i`` must keep after its
    prefix (default 1).
    """
    n = len(rows)
    if min_tokens < 1:
        raise ValueError(f"min_tokens must be >= 1, got {min_tokens}")
    suffix = list(min_suffix) if min_suffix is not None else [1] * n
    order = sorted(range(n), key=lambda i: list(rows[i]))
    adjacent = [common_prefix(rows[order[j]], rows[order[j + 1]]) for j in range(n - 1)]
    return _split(order, adjacent, 0, rows, min_tokens, suffix)


def _split(
    members: list[int],
    adjacent: list[int],
    depth: int,
    rows: Sequence[Sequence[int]],
    min_tokens: int,
    suffix: list[int],
) -> tuple[list[int], list[PrefixNode]]:
    """Split lexicographically sorted ``members`` (``adjacent[j]`` = common prefix of
    members ``j`` and ``j+1``, all sharing ``depth`` tokens) into loose rows and nodes."""
    loose: list[int] = []
    nodes: list[PrefixNode] = []
    need = depth + min_tokens
    j = 0
    while j < len(members):
        e = j
        while e < len(adjacent) and adjacent[e] >= need:
            e += 1
        if e == j:
            loose.append(members[j])
            j += 1
            continue
        run, run_adjacent = members[j:e + 1], adjacent[j:e]
        # In sorted order the common prefix of a run is the minimum of its adjacent ones.
        shared = min(min(run_adjacent), min(len(rows[i]) - suffix[i] for i in run))
        if shared >= need:
            sub_loose, sub_nodes = _split(run, run_adjacent, shared, rows, min_tokens, suffix)
            nodes.append(PrefixNode(depth, shared, sub_loose, sub_nodes))
        else:
            # Rare: a row (nearly) equal to another's prefix leaves too little to share.
            loose.extend(run)
        j = e + 1
    return loose, nodes


__all__ = ["PrefixNode", "common_prefix", "plan_prefixes"]
