#!/usr/bin/env bash
# Set up, then run the test suite (fast tests + the real-model tests that fit in CI).
# Slow real-model tests: bash scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec "${FLAME_REWARD_VENV:-.venv}/bin/python" -m pytest -q -p no:cacheprovider "$@"
