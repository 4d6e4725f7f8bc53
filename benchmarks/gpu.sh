#!/usr/bin/env bash
# GPU readiness in one run (issue 19, item 5): torch CUDA fp32 and bf16 and ONNX Runtime's
# CUDA EP, each with and without prefix sharing, on the 200 HH dev pairs of
# benchmarks/backends.py; parity against torch CPU fp32; judgments/s. Writes
# benchmarks/results/gpu.md and gpu.json (or under --out). Budget: under 8 minutes on one
# H200 (the ONNX export, CPU-bound, is most of it); the run is stopped at 470 s.
#
#   bash benchmarks/gpu.sh                 # on a machine with one NVIDIA GPU
#   bash benchmarks/gpu.sh --dry-run       # on a CPU: tiny random model, 4 pairs (checks the script)
#   bash benchmarks/gpu.sh --pairs 50 --out /tmp/gpu    # other options go to benchmarks/gpu.py
#
# Needs: flame-reward installed with the gpu extra (pip install -e '.[gpu]': onnxruntime-gpu
# replaces onnxruntime), a CUDA build of torch, and the shared data folder
# (FLAME_REWARD_DATA or shared/data). PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
dry=0
for arg in "$@"; do
    if [[ $arg == --dry-run ]]; then dry=1; fi
done
export PYTHONUNBUFFERED=1
if [[ $dry == 0 ]]; then
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
        echo "gpu.sh: no NVIDIA GPU here (nvidia-smi finds none); use --dry-run to check the script on a CPU" >&2
        exit 2
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2
    # Say up front what is missing rather than after the export: the ORT rows need onnxruntime-gpu.
    "$PY" - <<'PYEOF' >&2
import torch, onnxruntime
print(f"torch {torch.__version__} CUDA {torch.version.cuda}, GPU visible: {torch.cuda.is_available()}; "
      f"onnxruntime {onnxruntime.__version__} providers {onnxruntime.get_available_providers()}")
if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
    print("WARNING: onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu, i.e. the gpu extra): "
          "the ORT CUDA EP rows will be reported as skipped")
PYEOF
fi
exec timeout --signal=INT "${GPU_BENCH_TIMEOUT:-470}" "$PY" benchmarks/gpu.py "$@"
