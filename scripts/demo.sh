#!/usr/bin/env bash
# Set up, then judge 200 real HH-RLHF preference pairs with the embedded default judge.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec "${FLAME_REWARD_VENV:-.venv}/bin/flame-reward" demo --n 200 "$@"
