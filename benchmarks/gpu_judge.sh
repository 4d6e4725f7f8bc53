#!/usr/bin/env bash
# The GPU path of issue 18: all-layer LoRA (bf16) of the embedded judge on the FLAMe multitask
# mixture, then raw vs trained on every dev split; under 10 minutes on one H200.
#   bash benchmarks/gpu_judge.sh [--baseline cpu_judge.json] [--out runs/gpu-judge]
#   bash benchmarks/gpu_judge.sh --dry-run --out /tmp/gpu-dry   # tiny model on the CPU, seconds
# Writes report.md, report.json and lora/adapter under --out; the last line printed is the verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-${FLAME_REWARD_VENV:-.venv}/bin/python}"
exec "$PYTHON" -m flame_reward.train.gpu_recipe "$@"
