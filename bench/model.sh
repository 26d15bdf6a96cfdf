#!/usr/bin/env bash
# LoRA training step, gym vs PyTorch: forward+backward tokens/s and peak RSS during the steps.
#   gym:     NF4 base (double-quantized), LoRA r16 on every linear layer, chunked log-prob loss
#   PyTorch: transformers + peft, f32 base, same LoRA, log_softmax + gather loss
# Shapes: the bundled tiny Qwen3, and Qwen3-0.6B's shapes with random weights; sequence 256,
# batch 1, the same number of threads for both.
# Usage: bench/model.sh [SHAPES]   (env: ITERS=3, THREADS=<all cores>, PY=/work/venv-ref/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPES=${1:-"tiny qwen3-0.6b"}
ITERS=${ITERS:-3}
THREADS=${THREADS:-$(nproc)}
PY=${PY:-/work/venv-ref/bin/python}
cargo build --release -q --example bench-model
for s in $SHAPES; do
  RAYON_NUM_THREADS=$THREADS ./target/release/examples/bench-model "$s" 256 16 "$ITERS"
  OMP_NUM_THREADS=$THREADS "$PY" bench/model_torch.py "$s" 256 16 "$ITERS" "$THREADS" 2>/dev/null
done
