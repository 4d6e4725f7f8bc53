"""The flame-reward ONNX judge directory: its files, its graph's inputs, its manifest and checks.

A directory written by ``flame-reward export-onnx`` holds

- ``model.onnx``: the judge (LoRA adapter merged) from token ids to
  ``log_softmax(logits)[rows, keep_positions, token_ids]``. Inputs (:data:`INPUTS`):
  ``input_ids``, ``attention_mask``, ``position_ids`` (int64 ``[batch, seq]``, left-padded
  as :func:`flame_reward.models.backends.left_pad` does), ``keep_positions`` (int64
  ``[keep]``, the columns to read: ``seq-keep .. seq-1``) and ``token_ids`` (int64 ``[k]``,
  so any verdict vocabulary works). Output ``logprobs``: float32 ``[batch, keep, k]``.
  Batch, sequence, keep and k are dynamic axes.
- ``model.int8.onnx`` when exported with ``--quantize int8``: the same graph with its
  linear layers dynamically quantised.
- the tokenizer files, and ``manifest.json`` (written last, so a directory without it is
  an unfinished export): model id, adapter and its sha256, the files with sizes and
  sha256, input/output names, opset, exporter, export date and library versions.

This module is the reading side, shared by the ONNX backend and the exporter; it imports
nothing heavier than the errors, so checking a directory never loads torch or onnx.
Writing lives in :mod:`flame_reward.models.onnx_export`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_reward.errors import InvalidInput, ModelLoadError
from flame_reward.models.digests import adapter_sha256

MANIFEST = "manifest.json"
FORMAT = "flame-reward-onnx-judge"
FORMAT_VERSION = 1
GRAPH_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
INPUTS = ("input_ids", "attention_mask", "position_ids", "keep_positions", "token_ids")
OUTPUT = "logprobs"
QUANTIZE_CHOICES = ("int8",)


def check_quantize(quantize: str | None) -> str | None:
    """Normalise ``quantize`` (None/"none"/"fp32" -> None); anything but int8 is an error."""
    if quantize in (None, "", "none", "fp32", "float32"):
        return None
    if quantize not in QUANTIZE_CHOICES:
        raise InvalidInput("quantize", f"unknown quantisation {quantize!r}; available: {', '.join(QUANTIZE_CHOICES)}")
    return quantize


def verdict_feeds(ids: Any, mask: Any, positions: Any, keep: int, token_ids: Any) -> dict[str, Any]:
    """The graph's input dictionary for a left-padded batch (numpy int64 ``[batch, seq]``
    arrays): read the last ``keep`` columns, restricted to ``token_ids``."""
    import numpy as np

    width = ids.shape[1]
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": positions,
        "keep_positions": np.arange(width - keep, width, dtype=np.int64),
        "token_ids": np.asarray(list(token_ids), dtype=np.int64),
    }


@dataclass
class OnnxJudgeDir:
    """A checked flame-reward ONNX directory and the graph chosen from it."""

    path: Path
    manifest: dict[str, Any]
    graph: Path
    precision: str  # "fp32" or "int8"


def is_onnx_dir(path: str | os.PathLike[str] | None) -> bool:
    """True when ``path`` is a directory that looks like an ONNX export (a manifest or a graph)."""
    if path is None:
        return False
    p = Path(path).expanduser()
    return p.is_dir() and ((p / MANIFEST).is_file() or any((p / f).is_file() for f in GRAPH_FILES.values()))


def read_manifest(p: Path) -> dict[str, Any]:
    """The manifest of directory ``p``, checked for format, version, inputs and outputs."""
    mpath = p / MANIFEST
    if not mpath.is_file():
        raise ModelLoadError(
            f"ONNX model directory {str(p)!r} has no {MANIFEST} (not written by 'flame-reward export-onnx', "
            "or the export did not finish); re-export it"
        )
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{mpath} is not readable JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{mpath} is not a flame-reward ONNX manifest (format {manifest.get('format')!r}, "
                             f"expected {FORMAT!r})" if isinstance(manifest, dict) else f"{mpath} is not a manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(f"{mpath} has format_version {manifest.get('format_version')!r}; this flame-reward "
                             f"reads version {FORMAT_VERSION}: re-export the model")
    if manifest.get("inputs") != list(INPUTS) or manifest.get("outputs") != [OUTPUT]:
        raise ModelLoadError(f"{mpath} declares inputs {manifest.get('inputs')} and outputs {manifest.get('outputs')}; "
                             f"expected {list(INPUTS)} -> [{OUTPUT!r}]")
    return manifest


def check_onnx_dir(
    path: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    adapter: str | None = "auto",
) -> OnnxJudgeDir:
    """Check an ONNX directory and pick its graph; :class:`ModelLoadError` says what is wrong.

    ``adapter``: ``"auto"`` accepts whatever the export merged; an adapter directory must
    be the one merged (same sha256); ``None`` asks for the raw model.
    """
    quantize = check_quantize(quantize)
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ModelLoadError(f"ONNX model directory {str(path)!r} does not exist")
    manifest = read_manifest(p)
    precision = quantize or "fp32"
    graphs = manifest.get("graphs") or {}
    if precision not in graphs:
        hint = " (export it with --quantize int8)" if precision == "int8" else ""
        raise ModelLoadError(f"ONNX model directory {str(p)!r} has no {precision} graph in its manifest{hint}; "
                             f"it has: {', '.join(graphs) or 'none'}")
    entry = graphs[precision]
    graph = p / entry.get("file", GRAPH_FILES[precision])
    if not graph.is_file():
        raise ModelLoadError(f"ONNX model directory {str(p)!r} is missing {graph.name} (listed in {MANIFEST})")
    for item in (entry, entry.get("data")):
        if not item:
            continue
        f = p / item["file"]
        if not f.is_file():
            raise ModelLoadError(f"ONNX model directory {str(p)!r} is missing {f.name} (listed in {MANIFEST})")
        size = f.stat().st_size
        if size != item.get("bytes"):
            raise ModelLoadError(f"{f} is {size} bytes but {MANIFEST} says {item.get('bytes')}: the directory mixes "
                                 "files from different exports; re-export it")
    if not (p / "tokenizer_config.json").is_file() or not any(
        (p / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
    ):
        raise ModelLoadError(f"ONNX model directory {str(p)!r} has no tokenizer files (tokenizer_config.json and "
                             "tokenizer.json); re-export it or copy the model's tokenizer files there")
    _check_adapter(p, manifest, adapter)
    return OnnxJudgeDir(p, manifest, graph, precision)


def _check_adapter(p: Path, manifest: dict[str, Any], adapter: str | None) -> None:
    merged_sha = manifest.get("adapter_sha256")
    if adapter is None and manifest.get("adapter"):
        raise ModelLoadError(f"the raw model was asked for, but {str(p)!r} has adapter {manifest['adapter']!r} "
                             "merged into its weights; export the model without --adapter")
    if adapter in (None, "auto", "none", ""):
        return
    apath = Path(adapter).expanduser()
    if not (apath / "adapter_config.json").is_file():
        raise ModelLoadError(f"adapter directory {adapter!r} has no adapter_config.json")
    sha = adapter_sha256(apath)
    if sha != merged_sha:
        raise ModelLoadError(
            f"adapter {adapter!r} (sha256 {sha[:12]}) is not the one merged into {str(p)!r} "
            f"({(merged_sha or 'none')[:12]}, from {manifest.get('adapter')!r}); re-export with this adapter"
        )


__all__ = ["FORMAT", "FORMAT_VERSION", "GRAPH_FILES", "INPUTS", "MANIFEST", "OUTPUT", "QUANTIZE_CHOICES",
           "OnnxJudgeDir", "check_onnx_dir", "check_quantize", "is_onnx_dir", "read_manifest", "verdict_feeds"]
