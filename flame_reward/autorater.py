"""The facade users hold: ``Autorater.from_pretrained(...)`` then compare / score / classify."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.results import Generation, ItemError, Verdict
from flame_reward.scoring import OnError, Scorer
from flame_reward.tasks.base import TaskType
from flame_reward.tasks.registry import get_task_type, list_task_types


class Autorater:
    """An LLM judge that answers FLAMe-format tasks with calibrated verdict probabilities.

    >>> judge = Autorater.from_pretrained()            # the embedded default
    >>> v = judge.compare("What is 2+2?", "4", "5")
    >>> v.score          # P(response A is better), averaged over both orders
    """

    def __init__(self, scorer: Scorer, *, model_name: str = "", info: Mapping[str, Any] | None = None) -> None:
        self.scorer = scorer
        self.model_name = model_name
        self.info = dict(info or {})

    @classmethod
    def from_pretrained(
        cls,
        model: str | None = None,
        *,
        adapter: str | None = "auto",
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        max_length: int = 2048,
        threads: int | None = None,
        backend: str = "torch",
        revision: str | None = None,
    ) -> Autorater:
        """Load a judge.

        ``model``: a local Hugging Face directory, a hub id, or ``None`` for the embedded
        default (SmolLM2-135M-Instruct). ``adapter``: a PEFT LoRA directory; ``"auto"`` (the
        default) applies the trained adapter shipped with the embedded default when one
        ships, ``None`` gives the raw model. ``device``:
        ``cpu``/``cuda`` (default: CUDA when present). ``dtype``: default bf16 on GPU, fp32
        on CPU. ``max_length``: token budget per rendered task; longer responses are
        truncated, never the instruction.
        """
        from flame_reward.models.loading import load_model

        if backend != "torch":
            raise InvalidInput("backend", f"unknown backend {backend!r}; available: torch")
        from flame_reward.backends import TorchBackend

        loaded = load_model(model, adapter=adapter, device=device, dtype=dtype, revision=revision)
        scorer = Scorer(TorchBackend(loaded, threads=threads), loaded.tokenizer,
                        batch_size=batch_size, max_length=max_length)
        info = {"model": loaded.name, "path": loaded.path, "device": loaded.device, "dtype": loaded.dtype,
                "adapter": loaded.adapter, "adapter_sha256": loaded.adapter_sha256, "backend": backend}
        return cls(scorer, model_name=loaded.name, info=info)

    # -- generic --------------------------------------------------------------------------
    @staticmethod
    def task_types() -> dict[str, TaskType]:
        """Every registered task type, plugins included."""
        return list_task_types()

    def judge(
        self,
        task: str | TaskType,
        examples: Iterable[Mapping[str, Any]],
        *,
        on_error: OnError = "raise",
        progress: bool = False,
        both_orders: bool = True,
    ) -> list[Verdict | ItemError]:
        """Verdicts for examples of any registered task type, in input order."""
        return self.scorer.judge(task, examples, on_error=on_error, progress=progress, both_orders=both_orders)

    def generate(self, task: str | TaskType, examples: Iterable[Mapping[str, Any]], **kwargs: Any) -> list[Generation | ItemError]:
        """Generation mode (rationale then verdict, or open-ended text); see :meth:`Scorer.generate`."""
        return self.scorer.generate(task, examples, **kwargs)

    # -- pairwise -------------------------------------------------------------------------
    def compare(
        self,
        prompt: str,
        response_a: str,
        response_b: str,
        *,
        criteria: str | None = None,
        allow_tie: bool = False,
        tie_margin: float = 0.0,
    ) -> Verdict:
        """Which response is better? ``score`` = P(A better), averaged over both orders."""
        return self.compare_batch([(prompt, response_a, response_b)], criteria=criteria,
                                  allow_tie=allow_tie, tie_margin=tie_margin)[0]

    def compare_batch(
        self,
        pairs: Sequence[tuple[str, str, str] | Mapping[str, Any]],
        *,
        criteria: str | None = None,
        allow_tie: bool = False,
        tie_margin: float = 0.0,
        progress: bool = False,
    ) -> list[Verdict]:
        """:meth:`compare` for many ``(prompt, response_a, response_b)`` tuples or mappings."""
        examples = []
        for item in pairs:
            ex = dict(item) if isinstance(item, Mapping) else dict(zip(("prompt", "response_a", "response_b"), item))
            ex.setdefault("allow_tie", allow_tie)
            ex.setdefault("tie_margin", tie_margin)
            if criteria is not None:
                ex.setdefault("criteria", criteria)
            examples.append(ex)
        return self.judge("pairwise", examples, progress=progress)  # type: ignore[return-value]

    # -- pointwise ------------------------------------------------------------------------
    def score(
        self,
        prompt: str,
        response: str,
        *,
        scale: tuple[int, int] = (1, 5),
        criteria: str | None = None,
        source: str | None = None,
        reference: str | None = None,
    ) -> Verdict:
        """Rate one response; ``score`` = the expected rating on ``scale``."""
        item: dict[str, Any] = {"prompt": prompt, "response": response}
        if source is not None:
            item["source"] = source
        if reference is not None:
            item["reference"] = reference
        return self.score_batch([item], scale=scale, criteria=criteria)[0]

    def score_batch(
        self,
        items: Sequence[tuple[str, str] | Mapping[str, Any]],
        *,
        scale: tuple[int, int] = (1, 5),
        criteria: str | None = None,
        progress: bool = False,
    ) -> list[Verdict]:
        """:meth:`score` for many ``(prompt, response)`` tuples or mappings."""
        examples = []
        for item in items:
            ex = dict(item) if isinstance(item, Mapping) else dict(zip(("prompt", "response"), item))
            ex.setdefault("scale", scale)
            if criteria is not None:
                ex.setdefault("criteria", criteria)
            examples.append(ex)
        return self.judge("pointwise", examples, progress=progress)  # type: ignore[return-value]

    # -- classification -------------------------------------------------------------------
    def classify(
        self,
        prompt: str,
        response: str,
        *,
        labels: Sequence[str] = ("yes", "no"),
        criteria: str | None = None,
        source: str | None = None,
    ) -> Verdict:
        """Pick a label for ``response``; ``score`` = P(first label)."""
        item: dict[str, Any] = {"prompt": prompt, "response": response}
        if source is not None:
            item["source"] = source
        return self.classify_batch([item], labels=labels, criteria=criteria)[0]

    def classify_batch(
        self,
        items: Sequence[tuple[str, str] | Mapping[str, Any]],
        *,
        labels: Sequence[str] = ("yes", "no"),
        criteria: str | None = None,
        progress: bool = False,
    ) -> list[Verdict]:
        """:meth:`classify` for many ``(prompt, response)`` tuples or mappings."""
        examples = []
        for item in items:
            ex = dict(item) if isinstance(item, Mapping) else dict(zip(("prompt", "response"), item))
            ex.setdefault("labels", list(labels))
            if criteria is not None:
                ex.setdefault("criteria", criteria)
            examples.append(ex)
        return self.judge("classification", examples, progress=progress)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Autorater(model={self.model_name!r}, device={self.info.get('device')!r})"


__all__ = ["Autorater", "get_task_type"]
