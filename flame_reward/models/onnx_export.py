"""Write a judge as an ONNX directory: export, ORT fusions, int8 quantisation, parity check.

What the directory holds, and how it is read back and checked, is
:mod:`flame_reward.models.onnx_format`. The graph comes from torch's dynamo exporter
(``torch.onnx.export(..., dynamo=True)``) because it keeps batch and sequence symbolic;
why not the TorchScript exporter, and what fusions and int8 cost or gain, is in
``docs/speed.md``.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flame_reward.errors import ModelLoadError
from flame_reward.models.digests import adapter_sha256, sha256_file
from flame_reward.models.onnx_format import (
    FORMAT,
    FORMAT_VERSION,
    GRAPH_FILES,
    INPUTS,
    MANIFEST,
    OUTPUTS,
    check_onnx_dir,
    check_quantize,
    new_names,
    past_names,
    read_manifest,
)

log = logging.getLogger(__name__)

#: Above this many bytes of weights the graph keeps its tensors in an external data file.
_EXTERNAL_DATA_BYTES = 1_800_000_000


def _verdict_module(model: Any, layers: int) -> Any:
    import torch

    from flame_reward.models.backends import _cache_tensors

    class VerdictGraph(torch.nn.Module):
        """What the graph computes: the chosen tokens' log-probabilities at chosen columns,
        the LM head's input at the last column, and (``layers`` > 0) this call's keys and
        values after a given prefix cache (see :mod:`flame_reward.models.onnx_format`)."""

        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids, attention_mask, position_ids, keep_positions, token_ids, *past):  # type: ignore[no-untyped-def]
            from transformers import DynamicCache

            rows = input_ids.shape[0]
            kwargs: dict[str, Any] = {"use_cache": False}
            if layers:
                # Batch-1 prefix broadcast to every row inside the graph: the caller never
                # copies the prefix per row.
                kv = [(past[2 * i].expand(rows, -1, -1, -1), past[2 * i + 1].expand(rows, -1, -1, -1))
                      for i in range(layers)]
                kwargs = {"use_cache": True, "past_key_values": DynamicCache(kv)}
            seen: list[Any] = []
            # The same pre-hook as TorchBackend._forward: exactly what the model's own head reads.
            handle = self.lm.get_output_embeddings().register_forward_pre_hook(
                lambda module, args: seen.append(args[0][:, -1, :]))
            try:
                out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              logits_to_keep=keep_positions, **kwargs)
            finally:
                handle.remove()
            logp = torch.log_softmax(out.logits.float(), dim=-1).index_select(-1, token_ids)
            new: list[Any] = []
            if layers:
                start = past[0].shape[2]
                for k, v in _cache_tensors(out.past_key_values):
                    new += [k[:, :, start:, :], v[:, :, start:, :]]
            return (logp, seen[-1].float(), *new)

    return VerdictGraph(model).eval()


def kv_cache_spec(model: Any) -> dict[str, Any] | None:
    """The manifest's ``kv_cache`` for ``model``, or None when it cannot share prefixes (the
    same rule as the torch backend: sliding-window or non-attention layers score whole)."""
    from flame_reward.models.backends import _shares_prefixes

    if not _shares_prefixes(model):
        return None
    config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return {"layers": config.num_hidden_layers, "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
            "head_dim": head_dim, "dtype": "float32", "inputs": "past.{layer}.{key|value} [1, kv_heads, past, head_dim]",
            "outputs": "new.{layer}.{key|value} [batch, kv_heads, sequence, head_dim]"}


def _file_entry(path: Path) -> dict[str, Any]:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def export_onnx(
    model: str | None = None,
    *,
    out: str | os.PathLike[str],
    adapter: str | None = "auto",
    quantize: str | None = None,
    revision: str | None = None,
    opset: int | None = None,
    verify: bool = True,
    fuse: bool = True,
    int8_keep_fp32: tuple[str, ...] = (),
    kv_cache: bool | None = None,
) -> Path:
    """Export ``model`` (+ ``adapter``, merged) to the ONNX directory ``out``; returns it.

    ``quantize="int8"`` also writes ``model.int8.onnx`` (dynamic quantisation of every
    linear layer, except those ``int8_keep_fp32`` selects: see :func:`keeps_fp32`). The
    model is loaded on CPU in float32 (what the graph computes in). ``fuse`` applies ONNX
    Runtime fusions (RMSNorm, rotary embedding, attention) when they keep the graph's
    output unchanged. ``verify`` runs each graph against the torch model on two rendered
    tasks, whole and after a shared prefix, and records the largest log-probability and
    hidden-state differences in the manifest (``parity``). ``kv_cache``: give the graph
    KV cache inputs/outputs for prefix sharing (default: when the model can share prefixes).
    """
    from flame_reward.models.loading import load_model

    quantize = check_quantize(quantize)
    loaded = load_model(model, adapter=adapter, device="cpu", dtype="float32", revision=revision)
    return export_loaded(loaded, out, quantize=quantize, revision=revision, opset=opset, verify=verify, fuse=fuse,
                         int8_keep_fp32=int8_keep_fp32, kv_cache=kv_cache)


def export_loaded(
    loaded: Any,
    out: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    revision: str | None = None,
    opset: int | None = None,
    verify: bool = True,
    fuse: bool = True,
    int8_keep_fp32: tuple[str, ...] = (),
    kv_cache: bool | None = None,
) -> Path:
    """:func:`export_onnx` for a model already loaded (a :class:`LoadedModel` on CPU, fp32)."""
    import torch

    quantize = check_quantize(quantize)
    if loaded.dtype != "float32" or str(loaded.device) != "cpu":
        raise ModelLoadError(f"ONNX export needs the model on cpu in float32, got {loaded.device} {loaded.dtype}")
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # the directory is unfinished until rewritten
    for name in GRAPH_FILES.values():
        for stale in (out_dir / name, out_dir / (name + ".data")):
            stale.unlink(missing_ok=True)

    kv = kv_cache_spec(loaded.model) if kv_cache in (None, True) else None
    if kv_cache and kv is None:
        raise ModelLoadError(f"{loaded.name!r} cannot share prefixes (sliding-window or non-attention layers, or "
                             "an attention kernel other than eager/SDPA): export it without kv_cache")
    layers = kv["layers"] if kv else 0
    wrapper = _verdict_module(loaded.model, layers)
    # Example inputs: sizes >= 2 and distinct, so torch.export keeps every axis symbolic
    # (it specialises axes of size 0 and 1); the prefix is 4 tokens long.
    batch, seq, plen = 2, 9, 4 if kv else 0
    ids = torch.full((batch, seq), 5, dtype=torch.long)
    mask = torch.ones((batch, plen + seq), dtype=torch.long)
    mask[0, plen:plen + 3] = 0
    positions = (mask[:, plen:].cumsum(-1) - 1).clamp(min=0) + plen
    keep = torch.arange(seq - 2, seq)
    tokens = torch.tensor([1, 2, 3], dtype=torch.long)
    past = [torch.randn(1, kv["kv_heads"], plen, kv["head_dim"]) for _ in range(2 * layers)] if kv else []
    dim = torch.export.Dim
    b, s, k, t = dim("batch"), dim("sequence"), dim("keep"), dim("tokens")
    # With a cache the mask covers [prefix | row]: its own axis; without one it is the row's.
    dynamic: dict[str, Any] = {"input_ids": {0: b, 1: s}, "attention_mask": {0: b, 1: dim("total") if kv else s},
                               "position_ids": {0: b, 1: s}, "keep_positions": {0: k}, "token_ids": {0: t}}
    if kv:
        dynamic["past"] = tuple({2: dim("past")} for _ in past)
    input_names, output_names = list(INPUTS) + past_names(layers), list(OUTPUTS) + new_names(layers)
    weight_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    external = weight_bytes > _EXTERNAL_DATA_BYTES
    fp32_path = out_dir / GRAPH_FILES["fp32"]
    started = time.perf_counter()
    _quiet_exporter_logs()
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # Exporter chatter: renamed dynamic axes, a pytree deprecation inside torch.
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
            warnings.filterwarnings("ignore", category=FutureWarning)
            torch.onnx.export(
                wrapper, (ids, mask, positions, keep, tokens, *past), str(fp32_path), dynamo=True,
                input_names=input_names, output_names=output_names, dynamic_shapes=dynamic,
                external_data=external, opset_version=opset, verbose=False,
            )
    except Exception as exc:  # the exporter raises many kinds; say which model failed
        raise ModelLoadError(f"ONNX export of {loaded.name!r} failed: {type(exc).__name__}: {exc}") from exc
    export_s = time.perf_counter() - started
    log.info("exported %s in %.1fs", fp32_path, export_s)

    import onnx

    graph = onnx.load(str(fp32_path), load_external_data=False)
    opset_used = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None)
    del graph
    fusions = fuse_for_ort(loaded, fp32_path, kv, external=external) if fuse else {"applied": False, "reason": "fuse=False"}
    graphs: dict[str, Any] = {"fp32": _graph_entry(fp32_path)}
    if quantize == "int8":
        int8_path = out_dir / GRAPH_FILES["int8"]
        info = quantize_int8(fp32_path, int8_path, external=external, keep_fp32=tuple(int8_keep_fp32))
        graphs["int8"] = {**_graph_entry(int8_path), "quantization": info}
    if verify:
        for precision, entry in graphs.items():
            entry["parity"] = verify_graph(loaded, out_dir / entry["file"], kv)

    loaded.tokenizer.save_pretrained(str(out_dir))
    tok = loaded.tokenizer
    import transformers

    import flame_reward

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": loaded.name,
        "model_path": loaded.path,
        "revision": revision,
        # Verdict heads are never merged into a graph (they ride beside it, reading its
        # hidden-state output), so an export made with a head set holds the raw weights.
        "adapter": loaded.adapter if loaded.heads is None else None,
        "adapter_sha256": loaded.adapter_sha256 if loaded.heads is None else None,
        "graphs": graphs,
        "inputs": input_names,
        "outputs": output_names,
        "kv_cache": kv,
        # token_ids is an input: any verdict vocabulary works, none is baked in.
        "verdict_token_ids": None,
        "tokenizer_size": len(tok),
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "dtype": "float32",
        "attn_implementation": getattr(loaded.model.config, "_attn_implementation", None),
        "opset": opset_used,
        "exporter": "torch.onnx.export(dynamo=True)",
        "fusions": fusions,
        "export_seconds": round(export_s, 1),
        "export_date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "onnx": onnx.__version__, "onnxruntime": _ort_version(),
                     "flame_reward": getattr(flame_reward, "__version__", None)},
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir


#: Largest |log p| change a fusion pass may cause before the unfused graph is kept.
FUSION_TOLERANCE = 1e-3


def fuse_for_ort(loaded: Any, path: Path, kv: dict[str, Any] | None = None, *,
                 external: bool = False) -> dict[str, Any]:
    """Rewrite ``path`` in place with onnxscript's ONNX Runtime transformer fusions (RMSNorm
    and skip-RMSNorm -> ``SimplifiedLayerNormalization``, rotary embedding, SDPA ->
    ``MultiHeadAttention``): fewer memory-bound ops per layer (gains: docs/speed.md).

    Best effort: the graph is kept unfused (and the manifest says why) when onnxscript's
    fusion pass is missing or fails, or when the fused graph's log-probabilities differ
    from the torch model's by more than :data:`FUSION_TOLERANCE`. Only the transformer
    fusions run, not onnxscript's whole ``optimize_for_ort``, whose ``FusedMatMul``
    rewrites ONNX Runtime rejects on this graph."""
    try:
        import onnx_ir as ir
        from onnxscript.rewriter.ort_fusions._core import fuse_xformers
    except ImportError as exc:
        return {"applied": False, "reason": f"onnxscript ORT fusions unavailable: {exc}"}
    fused = path.with_name(path.stem + ".fused.onnx")
    started = time.perf_counter()
    try:
        model = ir.load(str(path))
        model, counts = fuse_xformers(model)
        ir.save(model, str(fused), external_data=(fused.name + ".data") if external else None)
        del model
        parity = verify_graph(loaded, fused, kv)["max_abs_logprob_diff"]
    except Exception as exc:  # a fusion bug must never break the export
        for f in (fused, fused.with_name(fused.name + ".data")):
            f.unlink(missing_ok=True)
        return {"applied": False, "reason": f"{type(exc).__name__}: {exc}"}
    if parity > FUSION_TOLERANCE:
        for f in (fused, fused.with_name(fused.name + ".data")):
            f.unlink(missing_ok=True)
        return {"applied": False, "reason": f"fused graph differs from torch by {parity:.2e}"}
    if external:
        _rename_external_data(fused, path)
    else:
        os.replace(fused, path)
    return {"applied": True, "method": "onnxscript.rewriter.ort_fusions fuse_xformers",
            "counts": {k: v for k, v in counts.items() if v}, "seconds": round(time.perf_counter() - started, 1)}


def _rename_external_data(src: Path, dst: Path) -> None:
    """Move graph ``src`` and its external data file to ``dst`` and ``dst.data``."""
    import onnx

    data = dst.name + ".data"
    graph = onnx.load(str(src), load_external_data=False)
    for tensor in graph.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = data
    os.replace(src.with_name(src.name + ".data"), dst.with_name(data))
    onnx.save(graph, str(dst))
    src.unlink()


#: Two short tasks rendered for the export check (pairwise, both orders).
_VERIFY_PAIRS = (
    ("What is the capital of France?", "Paris.", "I think it is Lyon, the largest city."),
    ("Write a haiku about rain.", "Soft rain on the roof / the garden drinks in silence / puddles hold the sky",
     "Rain is water."),
)


def verify_graph(loaded: Any, graph: Path, kv: dict[str, Any] | None = None) -> dict[str, Any]:
    """Largest differences between ``graph`` (ONNX Runtime, CPU) and the torch model on two
    rendered pairwise tasks in both orders (keep 1 and 2): verdict-token log-probabilities
    and the hidden state, scored whole and (with ``kv``, the manifest's ``kv_cache``) after
    their common prefix, computed in two chained pieces as the scoring core does."""
    import onnxruntime as ort

    from flame_reward.encoding import encode, label_token_ids
    from flame_reward.models.backends import OrtVerdictGraph, TorchBackend
    from flame_reward.prefix import common_prefix
    from flame_reward.tasks.registry import get_task_type

    task = get_task_type("pairwise")
    rows = []
    for prompt, a, b in _VERIFY_PAIRS:
        ex = task.validate({"prompt": prompt, "response_a": a, "response_b": b})
        for shown in (ex, task.swapped(ex)):
            rows.append(encode(loaded.tokenizer, task.render(shown), task.truncatable(), 1024).ids)
    tokens = sorted({seq[0] for seq in label_token_ids(loaded.tokenizer, ["A", "B"])})
    backend = TorchBackend(loaded)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    runner = OrtVerdictGraph(session, kv, backend.pad_token_id)
    worst = {"max_abs_logprob_diff": 0.0, "max_abs_hidden_diff": 0.0}

    def record(ref: Any, got: Any) -> None:
        worst["max_abs_logprob_diff"] = max(worst["max_abs_logprob_diff"], float((got[0] - ref[0]).abs().max()))
        worst["max_abs_hidden_diff"] = max(worst["max_abs_hidden_diff"], float((got[1] - ref[1]).abs().max()))

    shared = min(common_prefix(rows[0], r) for r in rows) - 2  # keep >= 2 own tokens per row
    for keep in (1, 2):
        ref = backend.token_logprobs(rows, keep, tokens, hidden=True)
        record(ref, runner.token_logprobs(rows, keep, tokens, hidden=True))
        if kv is not None and shared >= 2:
            cut = shared // 2
            state = runner.prefix_state(rows[0][cut:shared], runner.prefix_state(rows[0][:cut]))
            record(ref, runner.token_logprobs_after(state, [r[shared:] for r in rows], keep, tokens, hidden=True))
    return {**worst, "rows": len(rows), "tokens": tokens, "shared_prefix_tokens": shared if kv else 0}


def _graph_entry(path: Path) -> dict[str, Any]:
    entry = _file_entry(path)
    data = path.with_name(path.name + ".data")
    if data.is_file():
        entry["data"] = _file_entry(data)
    return entry


def _ort_version() -> str | None:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:  # pragma: no cover
        return None


def _quiet_exporter_logs() -> None:
    # "torchvision is not installed" warnings from the exporter's op registry are noise here.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


def _module_path(node: Any) -> str:
    """The torch module path (as ``named_modules`` spells it) a graph node came from, read
    from the scopes the exporter records per node; '' when unknown."""
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
    # The scopes are a list's repr: ['', 'lm', 'lm.model', ..., 'lm.model.layers.0.mlp.down_proj', 'linear_6'].
    paths = [x.strip(" '\"") for x in scopes.strip("[]").split(",")]
    paths = [x for x in paths if x == "lm" or x.startswith("lm.")]
    return paths[-1][3:] if paths else ""


def keeps_fp32(module: str, keep_fp32: tuple[str, ...]) -> bool:
    """Whether ``keep_fp32`` selects the linear layer at module path ``module`` (e.g.
    ``model.layers.29.mlp.down_proj``). An entry is a glob (``model.layers.2[6-9].mlp.*``,
    ``*.down_proj``) or dotted name segments matched whole anywhere in the path:
    ``down_proj`` (every layer's), ``mlp`` (every MLP), ``model.layers.29`` (all of layer 29;
    not layer 2 from ``layers.2``)."""
    dotted = f".{module}."
    for entry in keep_fp32:
        if any(c in entry for c in "*?[") and fnmatch.fnmatchcase(module, entry):
            return True
        if f".{entry.strip('.')}." in dotted:
            return True
    return False


def linear_modules(path: Path) -> dict[str, str]:
    """``{MatMul node name: module path}`` of the graph's linear layers with a weight
    initializer: the MatMuls int8 quantises unless kept fp32. The output projection is not
    among them (its weight is the tied embedding, and it stays fp32)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return {node.name: _module_path(node) for node in graph.node
            if node.op_type == "MatMul" and node.input[1] in weights}


def linear_matmuls(path: Path, keep_fp32: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """``(to quantise, kept fp32)`` MatMul node names. Quantisable: the linear layers
    (:func:`linear_modules`) that ``keep_fp32`` does not select (:func:`keeps_fp32`). Kept:
    those, the attention products (no weights) and the output projection."""
    import onnx

    linear = linear_modules(path)
    graph = onnx.load(str(path), load_external_data=False).graph
    quantise, other = [], []
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        if node.name in linear and not keeps_fp32(linear[node.name], keep_fp32):
            quantise.append(node.name)
        else:
            other.append(node.name)
    return quantise, other


def quantize_int8(src: Path, dst: Path, *, external: bool = False, keep_fp32: tuple[str, ...] = ()) -> dict[str, Any]:
    """Dynamic int8 quantisation (``onnxruntime.quantization.quantize_dynamic``: QInt8
    per-tensor weights, uint8 activations quantised at run time) of the linear layers'
    MatMuls, except those ``keep_fp32`` selects by module path (:func:`keeps_fp32`; e.g.
    ``("down_proj",)``: the MLP down projection reads SiLU(gate)*up, whose outliers
    per-tensor activation quantisation handles worst; keeping it fp32 costs speed, see
    docs/speed.md). Returns what was done (for the manifest)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    modules = linear_modules(src)
    linear, other = linear_matmuls(src, keep_fp32)
    kept = sorted({modules[n] for n in other if n in modules})
    started = time.perf_counter()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a generic pre-processing hint at WARNING
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         nodes_to_quantize=linear, per_channel=False, use_external_data_format=external)
    finally:
        root.setLevel(level)
    return {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weight_type": "QInt8",
        "activations": "uint8, dynamic per-tensor (DynamicQuantizeLinear)",
        "per_channel": False,
        "op_types": ["MatMul"],
        "kept_fp32": list(keep_fp32),
        "kept_fp32_modules": kept,
        "quantized_matmuls": len(linear),
        "fp32_matmuls": len(other),
        "seconds": round(time.perf_counter() - started, 1),
    }


def cached_export(model: str | None, *, adapter: str | None = "auto", quantize: str | None = None,
                  revision: str | None = None) -> Path:
    """The ONNX directory for a Hugging Face model (or the embedded default), exported once
    into ``$FLAME_REWARD_CACHE/onnx/`` on first use (minutes for a 135M model on a CPU)."""
    from flame_reward.models.embedded import EMBEDDED_NAME, cache_dir
    from flame_reward.models.heads import is_head_dir
    from flame_reward.models.loading import is_embedded, resolve_adapter

    quantize = check_quantize(quantize)
    if is_embedded(model):
        name = EMBEDDED_NAME
    else:
        local = Path(str(model)).expanduser()
        name = str(local.resolve()) if local.exists() else str(model)
    resolved = resolve_adapter(model, adapter)
    if resolved and is_head_dir(resolved):
        resolved, adapter = None, None  # heads ride beside the raw graph: one raw export serves both
    adapter_sha = adapter_sha256(Path(resolved).expanduser()) if resolved else None
    key = hashlib.sha256(json.dumps([name, adapter_sha, revision, FORMAT_VERSION]).encode()).hexdigest()[:16]
    target = cache_dir() / "onnx" / f"{Path(name).name}-{key}"
    if (target / MANIFEST).is_file():
        try:
            manifest = read_manifest(target)
        except ModelLoadError as exc:  # damaged or from another flame-reward: export again
            log.warning("re-exporting the cached ONNX judge in %s: %s", target, exc)
        else:
            if quantize is None or quantize in manifest.get("graphs", {}):
                return target
            add_int8(target)
            return target
    _drop_old_exports(target, adapter_sha, revision)
    log.warning("exporting %s to ONNX in %s (once; this takes minutes)", name, target)
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    export_onnx(model, out=tmp, adapter=adapter, quantize=quantize, revision=revision)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _drop_old_exports(target: Path, adapter_sha: str | None, revision: str | None) -> None:
    """Delete cached exports of the same model (same directory name before the key),
    adapter and revision written in an older format: their key differs, so they would
    otherwise stay on disk forever."""
    stem = target.name.rsplit("-", 1)[0] + "-"
    if not target.parent.is_dir():
        return
    for old in target.parent.iterdir():
        if old == target or not old.name.startswith(stem) or len(old.name) != len(target.name):
            continue
        try:
            m = json.loads((old / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if (isinstance(m, dict) and m.get("format") == FORMAT and m.get("format_version") != FORMAT_VERSION
                and m.get("adapter_sha256") == adapter_sha and m.get("revision") == revision):
            log.warning("removing %s (an ONNX export in format version %s)", old, m.get("format_version"))
            shutil.rmtree(old, ignore_errors=True)


def add_int8(path: str | os.PathLike[str], keep_fp32: tuple[str, ...] = ()) -> Path:
    """Add (or replace) ``model.int8.onnx`` in an existing export, quantising its fp32
    graph, keeping the linear layers ``keep_fp32`` selects in fp32 (:func:`keeps_fp32`).
    Seconds, not minutes: the way to try many selections on one export."""
    judge_dir = check_onnx_dir(path)
    manifest = dict(judge_dir.manifest)
    external = bool(manifest["graphs"]["fp32"].get("data"))
    int8_path = judge_dir.path / GRAPH_FILES["int8"]
    (judge_dir.path / MANIFEST).unlink()
    info = quantize_int8(judge_dir.graph, int8_path, external=external, keep_fp32=tuple(keep_fp32))
    manifest["graphs"] = {**manifest["graphs"], "int8": {**_graph_entry(int8_path), "quantization": info}}
    (judge_dir.path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return judge_dir.path


def int8_copy(src: str | os.PathLike[str], target: str | os.PathLike[str], keep_fp32: Sequence[str] = ()) -> Path:
    """A copy of the export ``src`` in ``target`` whose int8 graph keeps ``keep_fp32`` in fp32:
    every other file is hard-linked (no second copy of the fp32 graph), the int8 graph and the
    manifest are written anew, and ``src`` is left untouched (for trying many selections)."""
    src, target = Path(src), Path(target)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith(GRAPH_FILES["int8"]) and f.name != MANIFEST:
            os.link(f, target / f.name)
    shutil.copy(src / MANIFEST, target / MANIFEST)
    return add_int8(target, tuple(keep_fp32))


__all__ = ["add_int8", "cached_export", "int8_copy", "export_loaded", "export_onnx", "fuse_for_ort", "keeps_fp32", "kv_cache_spec",
           "linear_matmuls", "linear_modules", "quantize_int8", "verify_graph"]
