"""sha256 digests of model files, recorded in manifests so a directory's parts can be matched."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of one file, read in 4 MiB blocks (graphs can exceed memory-friendly sizes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def adapter_sha256(path: Path) -> str:
    """One digest over an adapter's weight files, in name order: a PEFT LoRA's
    ``adapter_model.*``, or a verdict head set's ``heads.json`` and ``heads.safetensors``."""
    digest = hashlib.sha256()
    for f in sorted([*path.glob("adapter_model.*"), *path.glob("heads.json"), *path.glob("heads.safetensors")]):
        digest.update(f.read_bytes())
    return digest.hexdigest()
