"""A tiny judge with real verdict heads, for the tests of every face that reports ``Verdict.head``."""

from __future__ import annotations

from typing import Any

HELPFUL = "Which response is more helpful and accurate for the user?"
CLARITY = "Rate how clearly the response answers the question."
PAIR_ROUTE, POINT_ROUTE = "pairs-helpful", "points-clarity"


def headed_judge(tokenizer: Any, seed: int = 3) -> Any:
    """The tiny random Llama (initializer_range 0.5) as an Autorater whose scorer holds a
    two-route :class:`HeadSet` with random weights: pairwise under ``HELPFUL``, pointwise
    1-5 under ``CLARITY``."""
    import torch

    from flame_reward.autorater import Autorater
    from flame_reward.models.backends import TorchBackend
    from flame_reward.models.heads import Head, HeadSet, Route
    from flame_reward.scoring import Scorer
    from tests.conftest import make_tiny_loaded

    loaded = make_tiny_loaded(tokenizer, seed=seed, initializer_range=0.5)
    hidden = loaded.model.config.hidden_size
    g = torch.Generator().manual_seed(0)
    heads = []
    for name, task, criteria, labels in ((PAIR_ROUTE, "pairwise", HELPFUL, ("A", "B")),
                                         (POINT_ROUTE, "pointwise", CLARITY, ("1", "2", "3", "4", "5"))):
        heads.append(Head(Route(name, task, criteria, labels), torch.randn(len(labels), hidden, generator=g),
                          torch.randn(len(labels), generator=g)))
    scorer = Scorer(TorchBackend(loaded), tokenizer, batch_size=8, max_length=512, heads=HeadSet("test-heads", heads))
    return Autorater(scorer, model_name="tiny-headed")
