"""Reward factories for TRL's GRPO, RLOO and online DPO trainers (``reward_funcs=``).

Each factory returns a :class:`~flame_reward.trl.reward_function.FlameRewardFunction`: a
picklable callable with a ``__name__`` (TRL names its metrics after it) that takes TRL's
keyword arguments and returns one float per completion (``None`` where a completion cannot
be judged; TRL turns it into NaN). Options every factory accepts through ``**kwargs``:
``judge_kwargs``, ``criteria``, ``name``, ``invalid_score``, ``on_invalid``.
"""

from __future__ import annotations

from typing import Any

from flame_reward.trl.reward_function import FlameRewardFunction, GroupMethod


def flame_pointwise_reward(judge: Any = None, *, scale: tuple[int, int] = (1, 5), normalize: bool = False,
                           **kwargs: Any) -> FlameRewardFunction:
    """Reward each completion with the judge's expected rating (one judge forward each).

    Args:
        judge: ``None`` (the embedded default, loaded on first call), a model directory or
            hub id, an ``Autorater``/``Scorer``, or any ``VerdictSource``.
        scale: the rating scale ``(low, high)``.
        normalize: map the expected rating to [0, 1].
        **kwargs: the options every factory takes (see the module docstring).

    Returns:
        A reward function named ``flame_pointwise``.

    Example:
        >>> trainer = GRPOTrainer(model, reward_funcs=flame_pointwise_reward(), ...)
    """
    return FlameRewardFunction(judge, mode="pointwise", scale=scale, normalize=normalize, **kwargs)


def flame_reference_reward(judge: Any = None, *, reference_column: str = "reference", **kwargs: Any) -> FlameRewardFunction:
    """Reward each completion with P(it beats the dataset's reference), both orders averaged
    (two judge forwards each).

    Args:
        judge: as for :func:`flame_pointwise_reward`.
        reference_column: the dataset column holding the reference answer.
        **kwargs: the options every factory takes (see the module docstring).

    Returns:
        A reward function named ``flame_reference``.
    """
    return FlameRewardFunction(judge, mode="reference", reference_column=reference_column, **kwargs)


def flame_group_reward(judge: Any = None, *, method: GroupMethod = "win_rate", group_size: int | None = None,
                       **kwargs: Any) -> FlameRewardFunction:
    """Reward completions for the same prompt by a round-robin pairwise tournament among them
    (``n(n-1)`` judge forwards for a group of ``n``).

    Args:
        judge: as for :func:`flame_pointwise_reward`.
        method: ``win_rate`` (mean P(beats the others); a group of m sums to m/2) or
            ``bradley_terry`` (log-strengths summing to 0).
        group_size: ``None`` groups completions by identical prompt wherever they sit in the
            batch; an integer cuts the batch into consecutive blocks of that size (GRPO's
            ``num_generations``) and checks each block shares one prompt.
        **kwargs: the options every factory takes, and ``bt_prior`` for Bradley-Terry.

    Returns:
        A reward function named ``flame_group_winrate`` or ``flame_group_bt``. With online
        DPO (groups of 2) the reward is P(this sample beats the other one).
    """
    return FlameRewardFunction(judge, mode="group", method=method, group_size=group_size, **kwargs)


__all__ = ["flame_group_reward", "flame_pointwise_reward", "flame_reference_reward"]
