#!/usr/bin/env bash
# `cargo check --features cuda` without a GPU: nvcc and the CUDA headers from PyPI wheels.
# Usage: tools/check-cuda.sh [extra cargo args]   (env: CUDA_VENV, default /work/venv-cuda;
#   created with: python3 -m venv $CUDA_VENV && $CUDA_VENV/bin/pip install nvidia-cuda-nvcc
#   nvidia-cuda-crt nvidia-cuda-runtime nvidia-cuda-cccl   (13.x))
# Builds into target/cuda-check so the CPU build's artifacts are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA_VENV=${CUDA_VENV:-/work/venv-cuda}
CU=$(ls -d "$CUDA_VENV"/lib/python3*/site-packages/nvidia/cu13 | head -1)
[ -x "$CU/bin/nvcc" ] || { echo "no nvcc under $CUDA_VENV (see the usage line)" >&2; exit 2; }
export PATH="$CU/bin:$PATH" CUDA_HOME="$CU" CUDA_PATH="$CU"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040}
exec cargo check --features cuda --all-targets --target-dir target/cuda-check "$@"
