#!/usr/bin/env bash
# LoRA training step, gym vs PyTorch: forward+backward tokens/s and peak RSS during the steps.
#   gym:     NF4 base (double-quantized, quantized tensor by tensor while loading), LoRA r16 on
#            every linear layer, chunked log-prob loss
#   PyTorch: transformers + peft, f32 base, same LoRA, log_softmax + gather loss
# Shapes: the bundled tiny Qwen3, and a Qwen3-0.6B-shaped model with random weights (bf16
# safetensors written once by bench/train_trl.py --make-random; both sides load the same file);
# sequence 256, batch 1, the same number of threads for both.
# Usage: bench/model.sh [SHAPES]   (SHAPES: "tiny qwen3-0.6b" by default; also qwen3-next-mid
#   (a random mid-size Qwen3-Next written once by bench/make_qwen3_next.py), qwen2-mid, llama-mid,
#   mistral-mid, mixtral-mid (bench/make_arch_mid.py, written once) and any folder name
#   under testdata/, e.g. tiny-qwen3-next;
#   env: ITERS=3, THREADS=<all cores>, PY=/work/venv-ref/bin/python, MODEL_06B=<folder>,
#   MODEL_NEXT=<folder>, BENCH_TARGETS=<comma-separated LoRA targets for both sides>,
#   BLAS="builtin auto" to run gym once per --blas choice, side by side; default: auto)
set -euo pipefail
cd "$(dirname "$0")/.."
SHAPES=${1:-"tiny qwen3-0.6b"}
ITERS=${ITERS:-3}
THREADS=${THREADS:-$(nproc)}
PY=${PY:-/work/venv-ref/bin/python}
MODEL_06B=${MODEL_06B:-${TMPDIR:-/tmp}/gym-bench-qwen3-0.6b-random}
MODEL_NEXT=${MODEL_NEXT:-${TMPDIR:-/tmp}/gym-bench-qwen3-next-mid-random}
cargo build --release -q --example bench-model
for s in $SHAPES; do
  m=$s
  if [ "$s" = qwen3-0.6b ]; then
    [ -f "$MODEL_06B/config.json" ] || "$PY" bench/train_trl.py --make-random "$MODEL_06B" 2>/dev/null
    m=$MODEL_06B
  elif [ "$s" = qwen3-next-mid ]; then
    [ -f "$MODEL_NEXT/config.json" ] || "$PY" bench/make_qwen3_next.py "$MODEL_NEXT" 2>/dev/null
    m=$MODEL_NEXT
  elif [[ "$s" =~ ^(qwen2|llama|mistral|mixtral)-mid$ ]]; then
    m=${TMPDIR:-/tmp}/gym-bench-$s-random
    [ -f "$m/config.json" ] || "$PY" bench/make_arch_mid.py "${s%-mid}" "$m" 2>/dev/null
  elif [ -d "testdata/$s" ]; then
    m=$PWD/testdata/$s
  fi
  for b in ${BLAS:-auto}; do
    GYM_BLAS=$b OPENBLAS_NUM_THREADS=1 RAYON_NUM_THREADS=$THREADS ./target/release/examples/bench-model "$m" 256 16 "$ITERS"
  done
  OMP_NUM_THREADS=$THREADS "$PY" bench/model_torch.py "$m" 256 16 "$ITERS" "$THREADS" 2>/dev/null
done
