"""Execution backends: the one place that runs the model's forward pass.

A backend turns batches of token ids into log-probabilities of chosen tokens at the last
positions, and generates text. The scoring core knows nothing else about the model, so
another runtime slots in behind the same two methods:

- :class:`TorchBackend`: PyTorch/transformers (CPU fp32, CUDA bf16). It can also hand
  back the hidden state the LM head reads at the last position (``hidden=True``), which
  trained verdict heads (:mod:`flame_reward.models.heads`) read. It can also share
  prefixes: compute a prefix's KV cache once (:meth:`TorchBackend.prefix_state`) and score
  many suffixes after it (:meth:`TorchBackend.token_logprobs_after`); the scoring core
  uses this automatically (see :mod:`flame_reward.prefix`).
- :class:`OnnxBackend`: ONNX Runtime over a graph written by ``flame-reward export-onnx``
  (fp32, or int8 dynamic quantisation; the directory format is
  :mod:`flame_reward.models.onnx_format`), whose outputs are the verdict-token
  log-probabilities, the hidden state at the last position, and the KV cache of the call's
  tokens; so it returns hidden states and shares prefixes like the torch backend. No
  generation.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from flame_reward.errors import FlameRewardError, ModelLoadError
from flame_reward.models.loading import LoadedModel
from flame_reward.models.onnx_format import HIDDEN, OUTPUT, check_onnx_dir, graph_io, new_names, verdict_feeds

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the scoring core needs from a runtime."""

    name: str
    pad_token_id: int

    def token_logprobs(self, batch: Sequence[Sequence[int]], keep: int, token_ids: Sequence[int]) -> torch.Tensor:
        """Log-softmax over the vocabulary at each row's last ``keep`` positions, restricted
        to ``token_ids``: a float32 tensor ``[rows, keep, len(token_ids)]``."""
        ...

    def generate(self, batch: Sequence[Sequence[int]], **kwargs: Any) -> list[list[int]]:
        """Generated continuations (new tokens only), one list per input row and sample."""
        ...


class HiddenStateBackend(Backend, Protocol):
    """Optional extension: a backend with ``supports_hidden = True`` also returns, with
    ``hidden=True``, the input of the LM head at each row's last position (``[rows, d]``,
    float32, CPU) beside the log-probabilities; verdict heads read it."""

    supports_hidden: bool


class PrefixSharingBackend(Backend, Protocol):
    """Optional extension: a backend with ``supports_prefix_sharing = True`` lets the
    scoring core compute a shared prefix once and score many suffixes after it."""

    supports_prefix_sharing: bool

    def prefix_state(self, ids: Sequence[int], parent: Any = None) -> Any:
        """Opaque state after ``parent``'s tokens followed by ``ids`` (batch 1)."""
        ...

    def token_logprobs_after(self, prefix: Any, batch: Sequence[Sequence[int]], keep: int,
                             token_ids: Sequence[int]) -> torch.Tensor:
        """:meth:`Backend.token_logprobs` of rows ``prefix + row`` given only each ``row``."""
        ...


def left_pad(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad so every row's last real token sits in the last column.

    Left padding is what lets one ``logits_to_keep`` slice read every row's verdict slot;
    explicit position ids make a padded row compute exactly what it computes alone.
    """
    width = max(len(row) for row in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, row in enumerate(batch):
        if row:
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


@dataclass
class PrefixState:
    """The attention state (per-layer keys and values, batch 1) after ``length`` tokens."""

    length: int
    kv: list[tuple[torch.Tensor, torch.Tensor]]


def _cache_tensors(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (keys, values) of a transformers cache, across cache API generations."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):  # transformers < 4.54
        return list(zip(cache.key_cache, cache.value_cache))
    return [(k, v) for k, v in cache]  # legacy tuple of tuples


def _make_cache(kv: Sequence[tuple[torch.Tensor, torch.Tensor]], rows: int) -> Any:
    from transformers import DynamicCache

    return DynamicCache([(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in kv])


def _selected_logprobs(logits: torch.Tensor, keep: int, token_ids: Sequence[int]) -> torch.Tensor:
    """Log-softmax over the vocabulary at the last ``keep`` columns (in float32, whatever the
    model's dtype), restricted to ``token_ids``, on the CPU."""
    logp = torch.log_softmax(logits[:, -keep:, :].float(), dim=-1)
    index = torch.tensor(list(token_ids), dtype=torch.long, device=logp.device)
    return logp.index_select(-1, index).cpu()


def _shares_prefixes(model: Any) -> bool:
    """Prefix sharing reuses a plain full-attention KV cache under an explicit padding mask;
    models with sliding-window or non-attention layers, and attention kernels other than
    eager/SDPA (flash-attention reads padding masks differently), score every row whole."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "_attn_implementation", None) not in (None, "eager", "sdpa"):
        return False
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    if getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True):
        return False
    layer_types = getattr(text, "layer_types", None)
    if layer_types and any(t != "full_attention" for t in layer_types):
        return False
    return True


class TorchBackend:
    """PyTorch/transformers runtime (CPU fp32, or CUDA bf16)."""

    name = "torch"
    supports_hidden = True

    def __init__(self, loaded: LoadedModel, threads: int | None = None) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.device = loaded.device
        tok = loaded.tokenizer
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if threads:
            torch.set_num_threads(threads)
        #: Whether :meth:`prefix_state` / :meth:`token_logprobs_after` may be used.
        self.supports_prefix_sharing = _shares_prefixes(self.model)
        # transformers 5.x renamed the ``past_key_values`` argument (and output) ``cache``.
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    def _forward(self, hidden: bool, **kwargs: Any) -> tuple[Any, torch.Tensor | None]:
        """Run the model; with ``hidden``, also return the LM head's input at the last position.

        A forward pre-hook on the output embeddings reads exactly what the model's own head
        reads (whatever norm or scaling the architecture applies before it); the hook only
        records calls from this thread, so concurrent forwards on one model stay apart.
        """
        if not hidden:
            return self.model(**kwargs), None
        seen: list[torch.Tensor] = []
        me = threading.get_ident()

        def grab(module: Any, args: tuple[Any, ...]) -> None:
            if threading.get_ident() == me:
                seen.append(args[0][:, -1, :])

        handle = self.model.get_output_embeddings().register_forward_pre_hook(grab)
        try:
            out = self.model(**kwargs)
        finally:
            handle.remove()
        return out, seen[-1].float().cpu()

    @torch.inference_mode()
    def token_logprobs(self, batch: Sequence[Sequence[int]], keep: int, token_ids: Sequence[int],
                       hidden: bool = False) -> Any:
        """Log-probabilities ``[rows, keep, len(token_ids)]``; with ``hidden``, a pair
        ``(log-probabilities, hidden state [rows, d])``."""
        ids, mask, positions = left_pad(batch, self.pad_token_id)
        out, h = self._forward(
            hidden,
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            logits_to_keep=keep,
            use_cache=False,
        )
        logp = _selected_logprobs(out.logits, keep, token_ids)
        return (logp, h) if hidden else logp

    @torch.inference_mode()
    def prefix_state(self, ids: Sequence[int], parent: PrefixState | None = None) -> PrefixState:
        """Run ``ids`` (batch 1, no padding) after ``parent``'s tokens and keep the KV cache."""
        start = parent.length if parent is not None else 0
        x = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        positions = torch.arange(start, start + x.shape[1], device=self.device).unsqueeze(0)
        mask = torch.ones((1, start + x.shape[1]), dtype=torch.long, device=self.device)
        past = _make_cache(parent.kv, 1) if parent is not None else None
        if past is None:
            from transformers import DynamicCache

            past = DynamicCache()
        out = self.model(input_ids=x, attention_mask=mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1, **{self._cache_arg: past})
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = out.past_key_values
        return PrefixState(start + x.shape[1], _cache_tensors(cache))

    @torch.inference_mode()
    def token_logprobs_after(
        self, prefix: PrefixState, batch: Sequence[Sequence[int]], keep: int, token_ids: Sequence[int],
        hidden: bool = False,
    ) -> Any:
        """:meth:`token_logprobs` for rows ``prefix + suffix`` given only the suffixes.

        The suffixes are left-padded like any batch; the attention mask is explicit over
        ``[prefix | padding | suffix]`` (a hole where the padding sits) and the position
        ids continue from the prefix, so each row computes what it computes whole and its
        last real token still sits in the last column (read with ``logits_to_keep``).
        """
        ids, mask, positions = left_pad(batch, self.pad_token_id)
        rows = ids.shape[0]
        full_mask = torch.cat([torch.ones((rows, prefix.length), dtype=torch.long), mask], dim=1)
        out, h = self._forward(
            hidden,
            input_ids=ids.to(self.device),
            attention_mask=full_mask.to(self.device),
            position_ids=(positions + prefix.length).to(self.device),
            logits_to_keep=keep,
            use_cache=True,
            **{self._cache_arg: _make_cache(prefix.kv, rows)},
        )
        logp = _selected_logprobs(out.logits, keep, token_ids)
        return (logp, h) if hidden else logp

    @torch.inference_mode()
    def generate(
        self,
        batch: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        num_samples: int = 1,
        seed: int | None = None,
    ) -> list[list[int]]:
        ids, mask, _ = left_pad(batch, self.pad_token_id)
        if seed is not None:
            torch.manual_seed(seed)
        sample = temperature > 0
        kwargs: dict[str, Any] = {"do_sample": sample, "max_new_tokens": max_new_tokens,
                                  "num_return_sequences": num_samples, "pad_token_id": self.pad_token_id}
        if sample:
            kwargs.update(temperature=temperature, top_p=top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kwargs)
        new = out[:, ids.shape[1]:].cpu().tolist()
        eos = {self.loaded.tokenizer.eos_token_id, self.pad_token_id}
        trimmed = []
        for row in new:
            cut = next((i for i, t in enumerate(row) if t in eos), len(row))
            trimmed.append(row[:cut])
        return trimmed


@dataclass
class OnnxPrefixState:
    """A prefix's keys and values (numpy float32 ``[1, kv_heads, length, head_dim]`` per
    layer, in the graph's ``past.*`` input order) after ``length`` tokens."""

    length: int
    kv: list[Any]


class OrtVerdictGraph:
    """The calls on one ONNX Runtime session over a verdict graph: whole rows, a prefix's
    state, rows after a prefix. Shared by :class:`OnnxBackend` and the exporter's parity
    check (:func:`flame_reward.models.onnx_export.verify_graph`), so both feed the graph alike.
    ``kv`` is the manifest's ``kv_cache`` (None: a graph without a KV cache)."""

    def __init__(self, session: Any, kv: dict[str, Any] | None, pad_token_id: int) -> None:
        self.session = session
        self.kv = kv
        self.pad_token_id = pad_token_id
        self._new = new_names(int(kv["layers"])) if kv else []

    def token_logprobs(self, batch: Sequence[Sequence[int]], keep: int, token_ids: Sequence[int],
                       hidden: bool = False, prefix: OnnxPrefixState | None = None) -> Any:
        """Log-probabilities ``[rows, keep, len(token_ids)]`` of ``prefix + row`` for each row
        (with ``hidden``, and the hidden state ``[rows, d]``)."""
        import numpy as np

        padded = (t.numpy() for t in left_pad(batch, self.pad_token_id))
        feeds = verdict_feeds(*padded, keep, token_ids, self.kv, prefix.kv if prefix is not None else None)
        logp, h = self.session.run([OUTPUT, HIDDEN], feeds)
        logp = torch.from_numpy(np.ascontiguousarray(logp, dtype=np.float32))
        return (logp, torch.from_numpy(np.ascontiguousarray(h, dtype=np.float32))) if hidden else logp

    def prefix_state(self, ids: Sequence[int], parent: OnnxPrefixState | None = None) -> OnnxPrefixState:
        """The state after ``parent``'s tokens followed by ``ids`` (batch 1, no padding)."""
        import numpy as np

        if not self.kv:
            raise FlameRewardError("this ONNX graph has no KV cache: it cannot share prefixes")
        x = np.asarray([list(ids)], dtype=np.int64)
        ones = np.ones_like(x)
        positions = np.arange(x.shape[1], dtype=np.int64)[None, :]
        feeds = verdict_feeds(x, ones, positions, 1, [self.pad_token_id], self.kv,
                              parent.kv if parent is not None else None)
        new = self.session.run(self._new, feeds)
        if parent is None:
            return OnnxPrefixState(x.shape[1], [np.ascontiguousarray(a) for a in new])
        return OnnxPrefixState(parent.length + x.shape[1],
                               [np.concatenate([old, a], axis=2) for old, a in zip(parent.kv, new)])

    def token_logprobs_after(self, prefix: OnnxPrefixState, batch: Sequence[Sequence[int]], keep: int,
                             token_ids: Sequence[int], hidden: bool = False) -> Any:
        return self.token_logprobs(batch, keep, token_ids, hidden=hidden, prefix=prefix)


class OnnxBackend:
    """ONNX Runtime over a graph written by ``flame-reward export-onnx``.

    The graph outputs the verdict-token log-probabilities at the kept positions and the
    hidden state the LM head reads at the last position, so it computes exactly what
    :meth:`TorchBackend.token_logprobs` returns (any ``keep`` and any token ids: both are
    graph inputs; ``hidden=True`` for verdict heads). Its KV cache inputs and outputs let
    the scoring core share prefixes (:meth:`prefix_state`, :meth:`token_logprobs_after`)
    exactly as with the torch backend. ``quantize="int8"`` picks the dynamically quantised
    graph. Providers: ``CUDAExecutionProvider`` when onnxruntime-gpu is installed and a GPU
    is visible (and ``device`` is not ``cpu``), else ``CPUExecutionProvider``; all graph
    optimisations on; ``threads`` sets ``intra_op_num_threads``. Generation is not
    available (the graph has no vocabulary output): use the torch backend.
    """

    name = "onnx"
    supports_hidden = True

    def __init__(
        self,
        path: str | Path,
        *,
        quantize: str | None = None,
        threads: int | None = None,
        device: str | None = None,
        adapter: str | None = "auto",
    ) -> None:
        self.dir = check_onnx_dir(path, quantize=quantize, adapter=adapter)
        self.manifest = self.dir.manifest
        self.precision = self.dir.precision
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ModelLoadError("the onnx backend needs onnxruntime: pip install onnxruntime") from exc
        self.tokenizer = _load_tokenizer(self.dir.path, self.manifest)
        tok = self.tokenizer
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.providers = _providers(ort, device)
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.dir.graph), options, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"ONNX Runtime cannot load {self.dir.graph}: {exc}") from exc
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        want_in, want_out = graph_io(self.manifest)
        if sorted(inputs) != sorted(want_in) or sorted(outputs) != sorted(want_out):
            missing = sorted(set(want_in + want_out) - set(inputs + outputs))
            raise ModelLoadError(
                f"{self.dir.graph} is not a flame-reward verdict graph matching its manifest: inputs {inputs[:7]}"
                f"{'...' if len(inputs) > 7 else ''}, outputs {outputs[:4]}{'...' if len(outputs) > 4 else ''}; "
                f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}: re-export it with "
                "'flame-reward export-onnx'")
        self.graph = OrtVerdictGraph(self.session, self.manifest.get("kv_cache"), self.pad_token_id)
        #: Whether :meth:`prefix_state` / :meth:`token_logprobs_after` may be used.
        self.supports_prefix_sharing = self.graph.kv is not None

    def token_logprobs(self, batch: Sequence[Sequence[int]], keep: int, token_ids: Sequence[int],
                       hidden: bool = False) -> Any:
        """Log-probabilities ``[rows, keep, len(token_ids)]``; with ``hidden``, a pair
        ``(log-probabilities, hidden state [rows, d])``."""
        return self.graph.token_logprobs(batch, keep, token_ids, hidden=hidden)

    def prefix_state(self, ids: Sequence[int], parent: OnnxPrefixState | None = None) -> OnnxPrefixState:
        """Run ``ids`` (batch 1, no padding) after ``parent``'s tokens and keep their keys and values."""
        return self.graph.prefix_state(ids, parent)

    def token_logprobs_after(self, prefix: OnnxPrefixState, batch: Sequence[Sequence[int]], keep: int,
                             token_ids: Sequence[int], hidden: bool = False) -> Any:
        """:meth:`token_logprobs` for rows ``prefix + suffix`` given only the suffixes: the
        prefix's cache (batch 1) is broadcast to every row inside the graph, the mask covers
        ``[prefix | padding | suffix]`` and positions continue after the prefix."""
        return self.graph.token_logprobs(batch, keep, token_ids, hidden=hidden, prefix=prefix)

    def generate(self, batch: Sequence[Sequence[int]], **kwargs: Any) -> list[list[int]]:
        raise FlameRewardError(
            "generation needs the torch backend: an ONNX judge graph outputs only verdict-token "
            "log-probabilities; load the model with backend='torch' (--backend torch) to generate"
        )


def _providers(ort: Any, device: str | None) -> list[str]:
    available = ort.get_available_providers()
    wants_cuda = device is not None and device.startswith("cuda")
    if device not in (None, "cpu") and not wants_cuda:
        raise ModelLoadError(f"device {device!r} is not one of cpu, cuda")
    gpu = "CUDAExecutionProvider" in available and torch.cuda.is_available()
    if wants_cuda and not gpu:
        why = "onnxruntime-gpu is not installed" if "CUDAExecutionProvider" not in available else "no CUDA GPU is visible"
        raise ModelLoadError(f"device {device!r} requested for the onnx backend but {why}")
    if gpu and device != "cpu":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _load_tokenizer(path: Path, manifest: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:  # transformers raises OSError/ValueError/... for broken files
        raise ModelLoadError(f"cannot load the tokenizer saved in {str(path)!r}: {exc}") from exc
    size = manifest.get("tokenizer_size")
    if size is not None and len(tok) != size:
        raise ModelLoadError(f"the tokenizer in {str(path)!r} has {len(tok)} tokens but the graph was exported "
                             f"with {size}: the tokenizer files do not belong to this export")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok
