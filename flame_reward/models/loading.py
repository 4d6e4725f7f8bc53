"""Load a judge model: any Hugging Face causal LM (directory or hub id) or the embedded default.

Device and dtype are chosen for the hardware: CUDA with bf16 where the GPU supports it,
else fp32 (bf16 matmuls on CPUs without bf16 units are far slower than fp32, see
docs/speed.md, so bf16 is never picked for a CPU). Both are overridable. Hub ids respect
``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_reward.errors import ModelLoadError
from flame_reward.models.digests import adapter_sha256
from flame_reward.models.embedded import EMBEDDED_ALIASES, EMBEDDED_NAME, embedded_model_dir
from flame_reward.models.heads import is_head_dir, load_heads

log = logging.getLogger(__name__)

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


@dataclass
class LoadedModel:
    """A model ready for scoring, with where it came from (for logs, manifests, cards)."""

    model: Any
    tokenizer: Any
    name: str
    path: str
    device: str
    dtype: str
    adapter: str | None = None
    adapter_sha256: str | None = None
    #: Trained verdict heads (:mod:`flame_reward.models.heads`) when the adapter is a head set.
    heads: Any = None


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | None, device: str) -> str:
    """Pick the dtype name: bf16 on a bf16-capable GPU, fp32 elsewhere, unless told."""
    import torch

    if dtype in (None, "auto"):
        if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bfloat16"
        return "float32"
    if dtype not in _DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} is not one of {sorted(set(_DTYPES))}")
    resolved = _DTYPES[dtype]
    if resolved != "float32" and device == "cpu":
        warnings.warn(
            f"{resolved} on CPU is far slower than float32 on most CPUs (measured ~300x for bf16 here)",
            stacklevel=3,
        )
    return resolved


def is_embedded(model: str | None) -> bool:
    """True when ``model`` names the embedded default (or is left out)."""
    return model is None or model in EMBEDDED_ALIASES


#: Judges that ship inside the package, applied automatically to their base model: the
#: embedded default's verdict heads (a head set; a PEFT LoRA directory works the same way).
PACKAGED_ADAPTERS = {EMBEDDED_NAME: "smollm2-135m-flame-rm"}


def packaged_adapter_dir(model: str | None) -> Path | None:
    """The adapter shipped for ``model`` (only the embedded default has one), if present."""
    if not is_embedded(model):
        return None
    path = Path(__file__).resolve().parent.parent / "adapters" / PACKAGED_ADAPTERS[EMBEDDED_NAME]
    return path if (path / "adapter_config.json").is_file() or is_head_dir(path) else None


def resolve_adapter(model: str | None, adapter: str | None) -> str | None:
    """``"auto"`` means the packaged adapter of the embedded default when one ships, else
    none; ``None``/``"none"`` means the raw model; anything else is an adapter directory."""
    if adapter in (None, "none", ""):
        return None
    if adapter == "auto":
        found = packaged_adapter_dir(model)
        return str(found) if found else None
    return adapter


def load_head_set(directory: str, model_name: str, model_path: str | None = None,
                  hidden_size: int | None = None) -> Any:
    """A verdict head set for the model ``model_name`` (its directory ``model_path``): refused
    when it was trained on another base model, or reads another hidden size."""
    heads = load_heads(directory, hidden_size=hidden_size)
    base = heads.base_model
    fits = base in (model_name, Path(model_path).name if model_path else None) or (
        is_embedded(model_name) and is_embedded(base))
    if base and not fits:
        raise ModelLoadError(f"head set {directory!r} was trained on {base!r}, not on {model_name!r}")
    return heads


def load_model(
    model: str | None = None,
    *,
    adapter: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    revision: str | None = None,
    merge_adapter: bool = True,
) -> LoadedModel:
    """Load a causal LM and its tokenizer for judging.

    ``model`` is a local directory, a Hugging Face id, or ``None``/``"embedded"`` for the
    embedded default. ``adapter`` is a PEFT LoRA directory applied on top (merged into the
    weights by default: scoring then costs the same as the base model) or a verdict head
    set (``heads.json``; the weights stay the raw model's and the heads ride in
    ``LoadedModel.heads``); ``"auto"`` picks what ships for the embedded default (see
    :func:`resolve_adapter`), ``None`` the raw model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but no CUDA GPU is visible")
    dtype_name = resolve_dtype(dtype, device)
    if is_embedded(model):
        path, name = str(embedded_model_dir()), EMBEDDED_NAME
    else:
        assert model is not None
        path, name = model, model
        local = Path(model).expanduser()
        looks_local = model.startswith((".", "/", "~")) or local.exists()
        if looks_local and not (local / "config.json").is_file():
            raise ModelLoadError(
                f"model directory {model!r} has no config.json (is it a Hugging Face model directory?)"
            )
        if looks_local:
            path = str(local)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    if offline:
        kwargs["local_files_only"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype_name), **kwargs)
    except OSError as exc:
        hint = " (HF_HUB_OFFLINE is set: only locally cached models load)" if offline else ""
        raise ModelLoadError(f"cannot load model {name!r}{hint}: {exc}") from exc
    except ValueError as exc:
        raise ModelLoadError(f"{name!r} is not a causal language model transformers can load: {exc}") from exc
    adapter_hash = None
    heads = None
    adapter = resolve_adapter(model, adapter)
    if adapter and is_head_dir(adapter):
        heads = load_head_set(adapter, name, path, hidden_size=getattr(lm.get_output_embeddings(), "in_features", None))
        adapter_hash = adapter_sha256(Path(adapter).expanduser())
    elif adapter:
        apath = Path(adapter).expanduser()
        if not (apath / "adapter_config.json").is_file():
            raise ModelLoadError(f"adapter directory {adapter!r} has no adapter_config.json (a PEFT LoRA) "
                                 f"or heads.json (verdict heads)")
        from peft import PeftModel

        try:
            lm = PeftModel.from_pretrained(lm, str(apath))
        except Exception as exc:
            raise ModelLoadError(f"adapter {adapter!r} does not fit model {name!r}: {exc}") from exc
        if merge_adapter:
            lm = lm.merge_and_unload()
        adapter_hash = adapter_sha256(apath)
    if tokenizer.pad_token_id is None:
        # Padding is always masked out, so any existing token will do; eos is conventional.
        tokenizer.pad_token = tokenizer.eos_token
    lm.to(device)
    lm.eval()
    return LoadedModel(lm, tokenizer, name, path, device, dtype_name, adapter, adapter_hash, heads)
