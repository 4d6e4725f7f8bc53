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
        quantize: str | None = None,
    ) -> Autorater:
        """Load a judge.

        ``model``: a local Hugging Face directory, a hub id, or ``None`` for the embedded
        default (SmolLM2-135M-Instruct). ``adapter``: a PEFT LoRA directory; ``"auto"`` (the
        default) applies the trained adapter shipped with the embedded default when one
        ships, ``None`` gives the raw model. ``device``:
        ``cpu``/``cuda`` (default: CUDA when present). ``dtype``: default bf16 on GPU, fp32
        on CPU. ``max_length``: token budget per rendered task; longer responses are
        truncated, never the instruction.

        ``backend``: ``"torch"`` (default) or ``"onnx"`` (ONNX Runtime; ``model`` is then a
        directory written by ``flame-reward export-onnx``, or a Hugging Face model / the
        embedded default, exported once into the cache on first use). ``quantize="int8"``
        runs the export's dynamically quantised graph (onnx backend only). The onnx backend
        scores verdicts only: :meth:`generate` needs the torch backend.
        """
        from flame_reward.models.loading import load_model

        if backend == "onnx":
            return cls._from_onnx(model, adapter=adapter, device=device, dtype=dtype, batch_size=batch_size,
                                  max_length=max_length, threads=threads, revision=revision, quantize=quantize)
        if backend != "torch":
            raise InvalidInput("backend", f"unknown backend {backend!r}; available: torch, onnx")
        if quantize not in (None, "", "none"):
            raise InvalidInput("quantize", f"{quantize!r} quantisation runs on the onnx backend: pass backend='onnx'")
        from flame_reward.models.backends import TorchBackend

        loaded = load_model(model, adapter=adapter, device=device, dtype=dtype, revision=revision)
        scorer = Scorer(TorchBackend(loaded, threads=threads), loaded.tokenizer,
                        batch_size=batch_size, max_length=max_length, heads=loaded.heads)
        info = {"model": loaded.name, "path": loaded.path, "device": loaded.device, "dtype": loaded.dtype,
                "adapter": loaded.adapter, "adapter_sha256": loaded.adapter_sha256, "backend": backend,
                "heads": [r.name for r in loaded.heads.routes] if loaded.heads else None}
        return cls(scorer, model_name=loaded.name, info=info)

    @classmethod
    def _from_onnx(cls, model: str | None, *, adapter: str | None, device: str | None, dtype: str | None,
                   batch_size: int, max_length: int, threads: int | None, revision: str | None,
                   quantize: str | None) -> Autorater:
        from pathlib import Path

        from flame_reward.models.backends import OnnxBackend
        from flame_reward.errors import ModelLoadError
        from flame_reward.models.onnx_export import cached_export
        from flame_reward.models.onnx_format import check_quantize, is_onnx_dir

        quantize = check_quantize(quantize)
        if dtype not in (None, "auto", "float32", "fp32"):
            raise InvalidInput("dtype", f"the onnx backend runs the exported float32 graph (or int8 with "
                                        f"quantize='int8'); dtype {dtype!r} is not available")
        if is_onnx_dir(model):
            path, onnx_adapter = str(model), adapter
        else:
            local = Path(model).expanduser() if model else None
            if local is not None and local.is_dir() and not (local / "config.json").is_file():
                raise ModelLoadError(f"{model!r} is neither a flame-reward ONNX export (manifest.json, model.onnx) "
                                     "nor a Hugging Face model directory (config.json)")
            path = str(cached_export(model, adapter=adapter, quantize=quantize, revision=revision))
            onnx_adapter = "auto"  # the cached export merged exactly what was asked for
        backend = OnnxBackend(path, quantize=quantize, threads=threads, device=device, adapter=onnx_adapter)
        heads = _onnx_heads(model, adapter, backend)
        scorer = Scorer(backend, backend.tokenizer, batch_size=batch_size, max_length=max_length, heads=heads)
        manifest = backend.manifest
        info = {"model": manifest.get("model"), "path": path, "device": backend.device,
                "dtype": backend.precision if backend.precision == "int8" else "float32",
                "adapter": manifest.get("adapter"), "adapter_sha256": manifest.get("adapter_sha256"),
                "backend": "onnx", "quantize": quantize, "providers": backend.providers,
                "heads": [r.name for r in heads.routes] if heads else None}
        return cls(scorer, model_name=str(manifest.get("model")), info=info)

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
        examples = _as_examples(pairs, ("prompt", "response_a", "response_b"),
                                {"allow_tie": allow_tie, "tie_margin": tie_margin, "criteria": criteria})
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
        examples = _as_examples(items, ("prompt", "response"), {"scale": scale, "criteria": criteria})
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
        examples = _as_examples(items, ("prompt", "response"), {"labels": list(labels), "criteria": criteria})
        return self.judge("classification", examples, progress=progress)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Autorater(model={self.model_name!r}, device={self.info.get('device')!r})"


def _onnx_heads(model: str | None, adapter: str | None, backend: Any) -> Any:
    """The verdict heads to use over an ONNX graph: a head set is never merged into the
    graph (its weights stay the raw model's), so it rides beside it, read from the graph's
    hidden-state output."""
    import logging

    from flame_reward.models.heads import is_head_dir
    from flame_reward.models.loading import load_head_set, resolve_adapter
    from flame_reward.models.onnx_format import is_onnx_dir

    # An export directory says which model it holds; the embedded default's heads fit only it.
    exported = str(backend.manifest.get("model"))
    resolved = resolve_adapter(exported if is_onnx_dir(model) else model, adapter)
    if not resolved or not is_head_dir(resolved):
        return None
    if not getattr(backend, "supports_hidden", False):
        logging.getLogger(__name__).warning(
            "verdict heads %s are not applied: this ONNX export has no hidden-state output "
            "(re-export it); verdicts are the raw model's", resolved)
        return None
    return load_head_set(resolved, exported)


def _as_examples(items: Sequence[Any], names: tuple[str, ...], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Tuples (in ``names`` order) or mappings -> examples; ``options`` fill what an item
    leaves unset (``None`` options are left out so the task's defaults apply)."""
    examples = []
    for item in items:
        ex = dict(item) if isinstance(item, Mapping) else dict(zip(names, item))
        for key, value in options.items():
            if value is not None:
                ex.setdefault(key, value)
        examples.append(ex)
    return examples


__all__ = ["Autorater", "get_task_type"]
