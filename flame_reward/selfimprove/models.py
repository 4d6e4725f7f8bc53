"""Loading the loops' models: judges (adapter merged, through the scoring core), samplers,
and raw bases for training.

A *loader* is ``loader(model, adapter) -> LoadedModel`` (default:
:func:`flame_reward.models.loading.load_model` in float32); tests pass one that builds a
tiny model. One judge and one sampler are kept loaded at a time; training always gets a
fresh raw base (LoRA wraps a model in place).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from flame_reward.selfimprove.sampling import ChatSampler

Loader = Callable[[Any, Any], Any]


def default_loader(device: str | None = None) -> Loader:
    def load(model: str | None, adapter: str | None) -> Any:
        from flame_reward.models.loading import load_model

        return load_model(model, adapter=adapter, device=device, dtype="float32")

    return load


class Models:
    """Judges and samplers built on demand from ``loader``, one of each cached."""

    def __init__(self, loader: Loader, *, threads: int | None = None, batch_size: int = 8,
                 max_length: int = 1024, progress: bool = False) -> None:
        self.loader = loader
        self.threads = threads
        self.batch_size = batch_size
        self.max_length = max_length
        self.progress = progress
        self._judge: tuple[tuple[Any, Any], Any] | None = None
        self._sampler: tuple[tuple[Any, Any, tuple[Any, ...]], ChatSampler] | None = None

    def judge(self, model: str | None, adapter: str | None) -> Any:
        """An :class:`~flame_reward.autorater.Autorater` over ``model`` + ``adapter`` (merged)."""
        from flame_reward.autorater import Autorater
        from flame_reward.models.backends import TorchBackend
        from flame_reward.scoring import Scorer

        key = (model, adapter)
        if self._judge is None or self._judge[0] != key:
            self._judge = None
            gc.collect()
            loaded = self.loader(model, adapter)
            scorer = Scorer(TorchBackend(loaded, threads=self.threads), loaded.tokenizer,
                            batch_size=self.batch_size, max_length=self.max_length)
            judge = Autorater(scorer, model_name=loaded.name, info={"model": loaded.name, "adapter": adapter})
            self._judge = (key, judge)
        return self._judge[1]

    def sampler(self, model: str | None, adapter: str | None, *, max_new_tokens: int, temperature: float,
                top_p: float) -> ChatSampler:
        """A :class:`ChatSampler` over ``model`` + ``adapter``; shares the loaded judge when
        it is the same model and adapter."""
        from flame_reward.models.backends import TorchBackend

        settings = (max_new_tokens, temperature, top_p)
        key = (model, adapter, settings)
        if self._sampler is None or self._sampler[0] != key:
            if self._judge is not None and self._judge[0] == (model, adapter):
                backend = self._judge[1].scorer.backend
                tokenizer = self._judge[1].scorer.tokenizer
            else:
                self._sampler = None
                gc.collect()
                loaded = self.loader(model, adapter)
                backend, tokenizer = TorchBackend(loaded, threads=self.threads), loaded.tokenizer
            sampler = ChatSampler(backend, tokenizer, max_new_tokens=max_new_tokens, temperature=temperature,
                                  top_p=top_p, batch_size=self.batch_size, progress=self.progress)
            self._sampler = (key, sampler)
        return self._sampler[1]

    def raw(self, model: str | None) -> Any:
        """A fresh base model without any adapter, for training."""
        return self.loader(model, None)

    def release(self) -> None:
        """Drop the cached models (before training, to keep memory for it)."""
        self._judge = None
        self._sampler = None
        gc.collect()


__all__ = ["Loader", "Models", "default_loader"]
