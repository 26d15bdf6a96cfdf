#!/usr/bin/env bash
# LoRA training step, gym vs PyTorch: forward+backward tokens/s and peak RSS during the steps.
#   gym:     NF4 base (double-quantized, quantized tensor by tensor while loading), LoRA r16 on
#            every linear layer, chunked log-prob loss
#   PyTorch: transformers + peft, f32 base, same LoRA, log_softmax + gather loss
# Shapes: the bundled tiny Qwen3, and a Qwen3-0.6B-shaped model with random weights (bf16
# safetensors written once by bench/train_trl.py --make-random; both sides load the same file);
# sequence 256, batch 1, the same number of threads for both.
# Usage: bench/model.sh [SHAPES]   (SHAPES: "tiny qwen3-0.6b" by default;
#   env: ITERS=3, THREADS=<all cores>, PY=/work/venv-ref/bin/python, MODEL_06B=<folder>)
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPES=${1:-"tiny qwen3-0.6b"}
ITERS=${ITERS:-3}
THREADS=${THREADS:-$(nproc)}
PY=${PY:-/work/venv-ref/bin/python}
MODEL_06B=${MODEL_06B:-${TMPDIR:-/tmp}/gym-bench-qwen3-0.6b-random}
cargo build --release -q --example bench-model
for s in $SHAPES; do
  m=$s
  if [ "$s" = qwen3-0.6b ]; then
    [ -f "$MODEL_06B/config.json" ] || "$PY" bench/train_trl.py --make-random "$MODEL_06B" 2>/dev/null
    m=$MODEL_06B
  fi
  RAYON_NUM_THREADS=$THREADS ./target/release/examples/bench-model "$m" 256 16 "$ITERS"
  OMP_NUM_THREADS=$THREADS "$PY" bench/model_torch.py "$m" 256 16 "$ITERS" "$THREADS" 2>/dev/null
done
