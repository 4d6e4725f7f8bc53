"""Write a judge as an ONNX directory: export, ORT fusions, int8 quantisation, parity check.

What the directory holds, and how it is read back and checked, is
:mod:`flame_reward.models.onnx_format`. The graph comes from torch's dynamo exporter
(``torch.onnx.export(..., dynamo=True)``) because it keeps batch and sequence symbolic;
why not the TorchScript exporter, and what fusions and int8 cost or gain, is in
``docs/speed.md``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
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
    OUTPUT,
    check_onnx_dir,
    check_quantize,
    verdict_feeds,
)

log = logging.getLogger(__name__)

#: Above this many bytes of weights the graph keeps its tensors in an external data file.
_EXTERNAL_DATA_BYTES = 1_800_000_000


def _verdict_module(model: Any) -> Any:
    import torch

    class VerdictLogprobs(torch.nn.Module):
        """What the graph computes: the chosen tokens' log-probabilities at chosen columns."""

        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids, attention_mask, position_ids, keep_positions, token_ids):  # type: ignore[no-untyped-def]
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          logits_to_keep=keep_positions, use_cache=False)
            logp = torch.log_softmax(out.logits.float(), dim=-1)
            return logp.index_select(-1, token_ids)

    return VerdictLogprobs(model).eval()


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
) -> Path:
    """Export ``model`` (+ ``adapter``, merged) to the ONNX directory ``out``; returns it.

    ``quantize="int8"`` also writes ``model.int8.onnx`` (dynamic quantisation of every
    linear layer, except those whose module path names one of ``int8_keep_fp32``, e.g.
    ``("down_proj",)``). The model is loaded on CPU in float32 (what the graph computes
    in). ``fuse`` applies ONNX Runtime fusions (RMSNorm, rotary embedding, attention) when
    they keep the graph's output unchanged. ``verify`` runs each graph against the torch
    model on two rendered tasks and records the largest log-probability difference in the
    manifest (``parity``).
    """
    from flame_reward.models.loading import load_model

    quantize = check_quantize(quantize)
    loaded = load_model(model, adapter=adapter, device="cpu", dtype="float32", revision=revision)
    return export_loaded(loaded, out, quantize=quantize, revision=revision, opset=opset, verify=verify, fuse=fuse,
                         int8_keep_fp32=int8_keep_fp32)


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

    wrapper = _verdict_module(loaded.model)
    # Example inputs: sizes >= 2 and distinct, so torch.export keeps every axis symbolic
    # (it specialises axes of size 0 and 1).
    batch, seq = 2, 9
    ids = torch.full((batch, seq), 5, dtype=torch.long)
    mask = torch.ones((batch, seq), dtype=torch.long)
    mask[0, :3] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    keep = torch.arange(seq - 2, seq)
    tokens = torch.tensor([1, 2, 3], dtype=torch.long)
    dim = torch.export.Dim
    b, s, k, t = dim("batch"), dim("sequence"), dim("keep"), dim("tokens")
    dynamic = {"input_ids": {0: b, 1: s}, "attention_mask": {0: b, 1: s}, "position_ids": {0: b, 1: s},
               "keep_positions": {0: k}, "token_ids": {0: t}}
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
                wrapper, (ids, mask, positions, keep, tokens), str(fp32_path), dynamo=True,
                input_names=list(INPUTS), output_names=[OUTPUT], dynamic_shapes=dynamic,
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
    fusions = fuse_for_ort(loaded, fp32_path, external=external) if fuse else {"applied": False, "reason": "fuse=False"}
    graphs: dict[str, Any] = {"fp32": _graph_entry(fp32_path)}
    if quantize == "int8":
        int8_path = out_dir / GRAPH_FILES["int8"]
        info = quantize_int8(fp32_path, int8_path, external=external, keep_fp32=tuple(int8_keep_fp32))
        graphs["int8"] = {**_graph_entry(int8_path), "quantization": info}
    if verify:
        for precision, entry in graphs.items():
            entry["parity"] = verify_graph(loaded, out_dir / entry["file"])

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
        "adapter": loaded.adapter,
        "adapter_sha256": loaded.adapter_sha256,
        "graphs": graphs,
        "inputs": list(INPUTS),
        "outputs": [OUTPUT],
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


def fuse_for_ort(loaded: Any, path: Path, *, external: bool = False) -> dict[str, Any]:
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
        parity = verify_graph(loaded, fused)["max_abs_logprob_diff"]
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


def verify_graph(loaded: Any, graph: Path) -> dict[str, Any]:
    """Largest |log p| difference between ``graph`` (ONNX Runtime, CPU) and the torch model
    on the verdict tokens of two rendered pairwise tasks in both orders (keep 1 and 2)."""
    import numpy as np
    import onnxruntime as ort

    from flame_reward.encoding import encode, label_token_ids
    from flame_reward.models.backends import TorchBackend, left_pad
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
    worst = 0.0
    for keep in (1, 2):
        ref = backend.token_logprobs(rows, keep, tokens).numpy()
        padded = (t.numpy() for t in left_pad(rows, backend.pad_token_id))
        (got,) = session.run(None, verdict_feeds(*padded, keep, tokens))
        worst = max(worst, float(np.abs(got - ref).max()))
    return {"max_abs_logprob_diff": worst, "rows": len(rows), "tokens": tokens}


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


def linear_matmuls(path: Path, keep_fp32: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """``(to quantise, kept fp32)`` MatMul node names. Quantisable: MatMuls with a weight
    initializer (the linear layers) whose module path names none of ``keep_fp32``. Kept:
    those, the attention products (no weights) and the output projection (its weight is
    the tied embedding, and it runs on one position per row)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    linear, other = [], []
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
        keep = any(name in scopes for name in keep_fp32)
        (linear if node.input[1] in weights and not keep else other).append(node.name)
    return linear, other


def quantize_int8(src: Path, dst: Path, *, external: bool = False, keep_fp32: tuple[str, ...] = ()) -> dict[str, Any]:
    """Dynamic int8 quantisation (``onnxruntime.quantization.quantize_dynamic``: QInt8
    per-tensor weights, uint8 activations quantised at run time) of the linear layers'
    MatMuls, except those whose module path (recorded by the exporter per node) names one
    of ``keep_fp32`` (e.g. ``("down_proj",)``: the MLP down projection reads SiLU(gate)*up,
    whose outliers per-tensor activation quantisation handles worst; keeping it fp32 costs
    speed, see docs/speed.md). Returns what was done (for the manifest)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    linear, other = linear_matmuls(src, keep_fp32)
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
        "quantized_matmuls": len(linear),
        "fp32_matmuls": len(other),
        "seconds": round(time.perf_counter() - started, 1),
    }


def cached_export(model: str | None, *, adapter: str | None = "auto", quantize: str | None = None,
                  revision: str | None = None) -> Path:
    """The ONNX directory for a Hugging Face model (or the embedded default), exported once
    into ``$FLAME_REWARD_CACHE/onnx/`` on first use (minutes for a 135M model on a CPU)."""
    from flame_reward.models.embedded import EMBEDDED_NAME, cache_dir
    from flame_reward.models.loading import is_embedded, resolve_adapter

    quantize = check_quantize(quantize)
    if is_embedded(model):
        name = EMBEDDED_NAME
    else:
        local = Path(str(model)).expanduser()
        name = str(local.resolve()) if local.exists() else str(model)
    resolved = resolve_adapter(model, adapter)
    adapter_sha = adapter_sha256(Path(resolved).expanduser()) if resolved else None
    key = hashlib.sha256(json.dumps([name, adapter_sha, revision, FORMAT_VERSION]).encode()).hexdigest()[:16]
    target = cache_dir() / "onnx" / f"{Path(name).name}-{key}"
    if (target / MANIFEST).is_file():
        manifest = json.loads((target / MANIFEST).read_text())
        if quantize is None or quantize in manifest.get("graphs", {}):
            return target
        add_int8(target)
        return target
    log.warning("exporting %s to ONNX in %s (once; this takes minutes)", name, target)
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    export_onnx(model, out=tmp, adapter=adapter, quantize=quantize, revision=revision)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def add_int8(path: str | os.PathLike[str]) -> Path:
    """Add ``model.int8.onnx`` to an existing export (quantising its fp32 graph)."""
    judge_dir = check_onnx_dir(path)
    manifest = dict(judge_dir.manifest)
    external = bool(manifest["graphs"]["fp32"].get("data"))
    int8_path = judge_dir.path / GRAPH_FILES["int8"]
    (judge_dir.path / MANIFEST).unlink()
    info = quantize_int8(judge_dir.graph, int8_path, external=external)
    manifest["graphs"] = {**manifest["graphs"], "int8": {**_graph_entry(int8_path), "quantization": info}}
    (judge_dir.path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return judge_dir.path


__all__ = ["add_int8", "cached_export", "export_loaded", "export_onnx", "fuse_for_ort", "linear_matmuls", "quantize_int8",
           "verify_graph"]
