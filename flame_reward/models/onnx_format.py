"""The flame-reward ONNX judge directory: its files, its graph's inputs, its manifest and checks.

A directory written by ``flame-reward export-onnx`` holds

- ``model.onnx``: the judge (LoRA adapter merged) from token ids to the verdict tokens'
  log-probabilities and the hidden state the LM head reads. Inputs (:data:`INPUTS`):
  ``input_ids``, ``attention_mask``, ``position_ids`` (int64 ``[batch, seq]``, left-padded
  as :func:`flame_reward.models.backends.left_pad` does), ``keep_positions`` (int64
  ``[keep]``, the columns to read: ``seq-keep .. seq-1``) and ``token_ids`` (int64 ``[k]``,
  so any verdict vocabulary works). Outputs (:data:`OUTPUTS`): ``logprobs``, float32
  ``[batch, keep, k]``, and ``hidden``, float32 ``[batch, d]``: the LM head's input at each
  row's last position (what trained verdict heads read).
- The KV cache (manifest ``kv_cache``, present unless the model cannot share prefixes):
  inputs ``past.{layer}.key`` / ``past.{layer}.value``, float32 ``[1, kv_heads, past,
  head_dim]``, the keys and values of a shared prefix (batch 1: every row continues the
  same prefix; ``past`` may be 0), and outputs ``new.{layer}.key`` / ``new.{layer}.value``,
  ``[batch, kv_heads, seq, head_dim]``, the keys and values of this call's tokens only.
  With a prefix, ``attention_mask`` covers ``[prefix | row]`` and ``position_ids``
  continue after the prefix. A prefix's state is the concatenation, along the sequence
  axis, of the ``new`` outputs of the calls that computed it.
- ``model.int8.onnx`` when exported with ``--quantize int8``: the same graph with its
  linear layers dynamically quantised (some kept fp32 when asked; the manifest says which).
- the tokenizer files, and ``manifest.json`` (written last, so a directory without it is
  an unfinished export): model id, adapter and its sha256, the files with sizes and
  sha256, input/output names, the KV cache's shape, opset, exporter, export date and
  library versions.

Format version 2 added ``hidden`` and the KV cache; a version 1 directory is refused with
a request to re-export (cached exports are redone automatically).

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
from flame_reward.models.heads import is_head_dir

MANIFEST = "manifest.json"
FORMAT = "flame-reward-onnx-judge"
FORMAT_VERSION = 2
GRAPH_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
INPUTS = ("input_ids", "attention_mask", "position_ids", "keep_positions", "token_ids")
OUTPUT = "logprobs"
HIDDEN = "hidden"
OUTPUTS = (OUTPUT, HIDDEN)
QUANTIZE_CHOICES = ("int8",)
#: What each format version lacks, for the re-export message.
_OLD_VERSIONS = {1: "the 'hidden' output (read by verdict heads) and the KV cache inputs/outputs (prefix sharing)"}


def past_names(layers: int) -> list[str]:
    """The KV cache inputs, in feed order: ``past.0.key, past.0.value, past.1.key, ...``."""
    return [f"past.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def new_names(layers: int) -> list[str]:
    """The KV cache outputs (this call's keys and values), in the order of :func:`past_names`."""
    return [f"new.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def graph_io(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(inputs, outputs)`` a graph of this manifest must have, in order."""
    kv = manifest.get("kv_cache")
    layers = int(kv["layers"]) if kv else 0
    return list(INPUTS) + past_names(layers), list(OUTPUTS) + new_names(layers)


def check_quantize(quantize: str | None) -> str | None:
    """Normalise ``quantize`` (None/"none"/"fp32" -> None); anything but int8 is an error."""
    if quantize in (None, "", "none", "fp32", "float32"):
        return None
    if quantize not in QUANTIZE_CHOICES:
        raise InvalidInput("quantize", f"unknown quantisation {quantize!r}; available: {', '.join(QUANTIZE_CHOICES)}")
    return quantize


def verdict_feeds(ids: Any, mask: Any, positions: Any, keep: int, token_ids: Any,
                  kv: dict[str, Any] | None = None, past: Any = None) -> dict[str, Any]:
    """The graph's input dictionary for a left-padded batch (numpy int64 ``[batch, seq]``
    arrays): read the last ``keep`` columns, restricted to ``token_ids``.

    ``kv`` (the manifest's ``kv_cache``) adds the cache inputs: ``past``, the per-layer
    keys and values (batch 1, in :func:`past_names` order) of a prefix every row continues,
    or none (an empty cache). The mask then covers the prefix and positions continue after it.
    """
    import numpy as np

    width = ids.shape[1]
    plen = int(past[0].shape[2]) if past else 0
    if plen:
        mask = np.concatenate([np.ones((ids.shape[0], plen), dtype=np.int64), mask], axis=1)
        positions = positions + plen
    feeds = {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": positions,
        "keep_positions": np.arange(width - keep, width, dtype=np.int64),
        "token_ids": np.asarray(list(token_ids), dtype=np.int64),
    }
    if kv is not None:
        names = past_names(int(kv["layers"]))
        if not past:
            empty = np.zeros((1, int(kv["kv_heads"]), 0, int(kv["head_dim"])), dtype=np.float32)
            past = [empty] * len(names)
        feeds.update(zip(names, past))
    return feeds


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
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        lacks = f" (it lacks {_OLD_VERSIONS[version]})" if version in _OLD_VERSIONS else ""
        raise ModelLoadError(
            f"{mpath} has format_version {version!r}{lacks}; this flame-reward reads version {FORMAT_VERSION}: "
            f"re-export it with 'flame-reward export-onnx --model {manifest.get('model') or 'MODEL'} --out {p}' "
            "(add --quantize int8 for the int8 graph); exports cached by --backend onnx are redone automatically"
        )
    kv = manifest.get("kv_cache")
    if kv is not None and not (isinstance(kv, dict) and all(isinstance(kv.get(k), int) and kv[k] > 0
                                                             for k in ("layers", "kv_heads", "head_dim"))):
        raise ModelLoadError(f"{mpath} has a malformed kv_cache entry {kv!r}: expected layers, kv_heads and "
                             "head_dim (positive integers), or null; re-export it")
    inputs, outputs = graph_io(manifest)
    if manifest.get("inputs") != inputs or manifest.get("outputs") != outputs:
        raise ModelLoadError(f"{mpath} declares inputs {manifest.get('inputs')} and outputs {manifest.get('outputs')}; "
                             f"expected {inputs} -> {outputs}")
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
    if is_head_dir(apath):
        return  # verdict heads are applied beside the graph, never merged into it
    if not (apath / "adapter_config.json").is_file():
        raise ModelLoadError(f"adapter directory {adapter!r} has no adapter_config.json")
    sha = adapter_sha256(apath)
    if sha != merged_sha:
        raise ModelLoadError(
            f"adapter {adapter!r} (sha256 {sha[:12]}) is not the one merged into {str(p)!r} "
            f"({(merged_sha or 'none')[:12]}, from {manifest.get('adapter')!r}); re-export with this adapter"
        )


__all__ = ["FORMAT", "FORMAT_VERSION", "GRAPH_FILES", "HIDDEN", "INPUTS", "MANIFEST", "OUTPUT", "OUTPUTS",
           "QUANTIZE_CHOICES", "OnnxJudgeDir", "check_onnx_dir", "check_quantize", "graph_io", "is_onnx_dir",
           "new_names", "past_names", "read_manifest", "verdict_feeds"]
