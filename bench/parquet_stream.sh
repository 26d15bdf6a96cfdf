#!/usr/bin/env bash
# Memory of `gym train` on a ~1 GiB Parquet dataset against the same run on a 24-row one:
# the dataset is read as a stream (row by row through the Parquet pages) and, past 64 MiB of
# examples, spooled to an unlinked temporary file, so peak RSS should not grow with the file.
# The run: the bundled tiny Qwen3, one GSPO step, prompt/answer columns mapped.
# Wall time and peak RSS from GNU time.
# Usage: bench/parquet_stream.sh [MiB]   (env: BENCH_DIR=/dev/shm/gym-pq,
#        PYTHON=/work/venvs/hub/bin/python with pyarrow, to write the big file once)
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
DIR=${BENCH_DIR:-/dev/shm/gym-pq}
PY=${PYTHON:-/work/venvs/hub/bin/python}
cargo build --release -q --bin gym
GYM=$PWD/target/release/gym
mkdir -p "$DIR"
BIG=$DIR/big.parquet
[ -f "$BIG" ] || "$PY" bench/parquet_big.py "$BIG" "$MIB"
run() { # NAME FILE
  local out
  out=$( { /usr/bin/time -f '%e %M' "$GYM" -q train --data "$2" --prompt-column question \
      --answer-column answer --reward exact --max-steps 1 --num-generations 2 \
      --per-device-train-batch-size 2 --max-completion-length 8 --force \
      -o "$DIR/run-$1" >/dev/null; } 2>&1)
  if grep -q "non-zero status" <<<"$out"; then echo "$1 failed: $out" >&2; exit 1; fi
  out=$(tail -n 1 <<<"$out")
  printf '%-6s %8s s  peak RSS %8.1f MiB  (%s, %s)\n' "$1" "${out% *}" \
    "$(echo "${out#* }" | awk '{print $1 / 1024}')" "$(du -h "$2" | cut -f1)" "$2"
}
run small testdata/hub/math.parquet
run big "$BIG"
