#!/usr/bin/env bash
# `cargo check --features cuda --all-targets` without a GPU: nvcc, ptxas and the CUDA headers from
# PyPI wheels. This compiles candle's CUDA kernels and gym's own (kernels/*.cu, by build.rs: nvcc
# to PTX, then ptxas to machine code for CUDA_COMPUTE_CAP), and type-checks every target of the
# cuda build. CI runs it as `CARGO_CMD=clippy tools/check-cuda.sh -- -D warnings`.
# Usage: tools/check-cuda.sh [extra cargo args]
# Env: CUDA_VENV (default /tmp/gym-ci-cuda; created with the wheels below when it has no nvcc),
#   CARGO_CMD (check or clippy; default check), CUDA_COMPUTE_CAP (default 90),
#   CUDA_CHECK_TARGET (target dir, default target/cuda-check, so the CPU build's artifacts are
#   left alone).
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA_VENV=${CUDA_VENV:-/tmp/gym-ci-cuda}
find_cu() { ls -d "$CUDA_VENV"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -1; }
CU=$(find_cu || true)
if [ -z "$CU" ] || [ ! -x "$CU/bin/nvcc" ]; then
  echo "check-cuda: installing nvcc 13.x from PyPI into $CUDA_VENV" >&2
  [ -x "$CUDA_VENV/bin/pip" ] || python3 -m venv "$CUDA_VENV"
  "$CUDA_VENV/bin/pip" install -q "nvidia-cuda-nvcc>=13,<14" "nvidia-cuda-crt>=13,<14" \
    "nvidia-cuda-runtime>=13,<14" "nvidia-cuda-cccl>=13,<14"
  CU=$(find_cu)
fi
[ -x "$CU/bin/nvcc" ] || { echo "check-cuda: no nvcc under $CUDA_VENV" >&2; exit 2; }
export PATH="$CU/bin:$PATH" CUDA_HOME="$CU" CUDA_PATH="$CU"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040}
exec cargo "${CARGO_CMD:-check}" --features cuda --all-targets \
  --target-dir "${CUDA_CHECK_TARGET:-target/cuda-check}" "$@"
