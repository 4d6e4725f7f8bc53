"""Group rewards from pairwise outcomes: win rates (the package's one round robin) and Bradley-Terry strengths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flame_reward.errors import InvalidInput
from flame_reward.round_robin import win_rates


def bradley_terry(pairs: Mapping[tuple[int, int], float], members: Sequence[int], prior: float = 0.1) -> dict[int, float]:
    """Bradley-Terry log-strengths fitted to soft pairwise outcomes.

    Maximises ``sum_{i<j} s_ij log sig(t_i - t_j) + (1 - s_ij) log sig(t_j - t_i) - prior/2 *
    sum t_i^2`` by Newton's method in float64. The likelihood's gradient sums to zero over
    members, so at the optimum ``sum t_i = 0`` exactly; the prior keeps strengths finite when
    one completion wins every comparison with probability ~1.

    Args:
        pairs: ``P(i beats j)`` keyed ``(i, j)`` with ``i < j``.
        members: the completions of one group.
        prior: the L2 prior's weight (> 0).

    Returns:
        ``{member: log-strength}``, summing to 0; a single member gets 0.0.
    """
    import torch

    members = list(members)
    m = len(members)
    if m == 1:
        return {members[0]: 0.0}
    if prior <= 0:
        raise InvalidInput("bt_prior", f"must be > 0, got {prior}")
    s = torch.full((m, m), 0.5, dtype=torch.float64)
    for a, i in enumerate(members):
        for b, j in enumerate(members):
            if i < j:
                s[a, b] = pairs[(i, j)]
                s[b, a] = 1.0 - pairs[(i, j)]
    off = 1.0 - torch.eye(m, dtype=torch.float64)
    theta = torch.zeros(m, dtype=torch.float64)
    for _ in range(100):
        p = torch.sigmoid(theta[:, None] - theta[None, :])
        grad = ((s - p) * off).sum(1) - prior * theta
        w = p * (1 - p) * off
        hess = w - torch.diag(w.sum(1)) - prior * torch.eye(m, dtype=torch.float64)
        step = torch.linalg.solve(hess, grad)
        theta = theta - step
        if float(step.abs().max()) < 1e-12:
            break
    theta = theta - theta.mean()  # already ~0; removes the last rounding error
    return {i: float(t) for i, t in zip(members, theta)}


__all__ = ["bradley_terry", "win_rates"]
