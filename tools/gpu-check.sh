#!/usr/bin/env bash
# tools/gpu-check.sh — settles gym's CUDA path in one short run (budget: 8 minutes on a machine
# with an NVIDIA GPU and nothing prepared but a Rust toolchain, the driver, and network access
# to crates.io and PyPI). Prints one table of phases (ok / FAIL / skipped, seconds) and, on a
# GPU, one benchmark table; exits 1 when a phase failed, else 0.
#
# With a GPU (nvidia-smi lists one):
#   1. a CUDA toolkit (nvcc, headers, cuBLAS, cuRAND) from PyPI wheels matching the driver's
#      CUDA version, in a venv (unless nvcc is already on PATH); meanwhile, in the background,
#      a second venv with torch, transformers, peft, TRL and bitsandbytes;
#   2. `cargo build --release --features cuda` (gym and the library's test binary; candle's
#      kernels and gym's own (kernels/*.cu, by build.rs) compiled for this card's compute
#      capability only);
#   3. the parity tests on the GPU (GYM_TEST_DEVICE=cuda:0; docs/cuda.md lists them): gym's
#      kernels one by one against the CPU ops — NF4 dequantization (f32 and bf16, same bits),
#      RMS norm, norm-rope, rope, SwiGLU, softmax, the attention, linear (f32/NF4, LoRA) and
#      chunked log-prob ops, forward and backward (|Δ| ≤ 1e-5·max(1,|ref|)) — and the embedded
#      PTX; logits of the tiny Qwen3 with and without its adapter against
#      the committed transformers + peft references (f32, |Δ| ≤ 2e-4), LoRA gradients over an
#      NF4 base against the CPU path (|Δ| ≤ 1e-3·max|g|), and core::model's CPU tests in the
#      cuda build (the CPU path unchanged);
#   4. `gym train --device cuda` on the bundled task: the reward must rise (last quarter ≥
#      first quarter + 0.25, as the CPU test requires) and the metrics must name the GPU;
#   5. the GSPO step benchmark, gym vs TRL + peft + bitsandbytes on this GPU: a random
#      Qwen3-0.6B-shaped model, NF4 base (double quant), LoRA r16 on all linear layers,
#      2 prompts × 8 completions of 32 tokens per step (bench/train.sh's settings), STEPS
#      steps (default 4, the first generation cycle excluded); completion tokens/s and peak
#      GPU memory (nvidia-smi, sampled every 0.2 s, above the idle level), printed as a table.
# Without a GPU (or GYM_GPU_CHECK_CPU=1) it says so and runs what needs none: the build (dev
# profile, as CI's), the same parity tests on the CPU, the device errors through the binary (exit code 22
# for --device cuda in a build without CUDA), `gym train --device cpu` on the bundled task
# (reward must rise), and `cargo check --features cuda` (every kernel compiled, no GPU) when nvcc
# is found (tools/check-cuda.sh, CUDA_VENV).
#
# Env: WORK (scratch folder, default a new /tmp/gym-gpu-check.*), STEPS (benchmark steps, 4),
#   CUDA_VENV / TRL_VENV (reuse prepared venvs), CARGO_TARGET_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${WORK:-$(mktemp -d /tmp/gym-gpu-check.XXXXXX)}
mkdir -p "$WORK"
STEPS=${STEPS:-4}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# the GPU mode builds with --release; the CPU mode with the dev profile (dependencies at
# opt-level 3), the build CI already has
if [ "${GYM_GPU_CHECK_CPU:-0}" != 1 ] && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  HAVE_GPU=1 PROFILE=release GYM=$CARGO_TARGET_DIR/release/gym
else
  HAVE_GPU=0 PROFILE=dev GYM=$CARGO_TARGET_DIR/debug/gym
fi
ROWS=()
FAILED=0
START=$(date +%s)

# phase NAME LIMIT_S CMD...: runs CMD with its output in $WORK/<n>.log, records the outcome.
phase() {
  local name=$1 limit=$2 t0 st log
  shift 2
  log="$WORK/$(( ${#ROWS[@]} + 1 )).log"
  t0=$(date +%s)
  echo "== $name (log $log)" >&2
  # through bash -c, so that CMD may be one of the functions below (exported at the end)
  if timeout "$limit" bash -c '"$@"' phase "$@" >"$log" 2>&1; then st=ok; else st=FAIL; FAILED=1; tail -25 "$log" >&2; fi
  ROWS+=("| $name | $st | $(( $(date +%s) - t0 )) |")
}
skip() { ROWS+=("| $1 | skipped: $2 | 0 |"); echo "== $1: skipped ($2)" >&2; }

# reward_rose DIR: the bundled task's criterion on OUTPUT/metrics.jsonl; prints the device.
reward_rose() {
  python3 - "$1/metrics.jsonl" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = [x["reward_mean"] for x in rows]
q = max(len(r) // 4, 1)
first, last = sum(r[:q]) / q, sum(r[-q:]) / q
dev = rows[-1].get("device", "")
print(f"reward {first:.3f} -> {last:.3f} over {len(r)} steps on {dev}")
assert last - first >= 0.25, "reward did not rise"
assert dev.startswith(sys.argv[2]), f"metrics name {dev!r}, expected {sys.argv[2]}*"
PY
}

train_bundled() { # DEVICE
  local out="$WORK/train-$1"
  rm -rf "$out"
  "$GYM" -q train --device "$1" --json -o "$out" >"$out.json" && reward_rose "$out" "${1%%:*}"
}

expect_exit() { # CODE CMD...: CMD must exit with CODE
  local want=$1 got
  shift
  "$@"; got=$?
  echo "exit code $got (want $want)"
  [ "$got" = "$want" ]
}

cpu_mode() {
  echo "no NVIDIA GPU here (nvidia-smi lists none): CPU-only mode" >&2
  phase "build (dev profile, CPU)" 1500 cargo build --profile "$PROFILE" --bin gym
  phase "parity tests (CPU)" 900 cargo test --profile "$PROFILE" --lib -- core::device core::model
  phase "--device cuda refused (exit 22)" 60 expect_exit 22 "$GYM" generate --device cuda --prompt Hi
  phase "gym train --device cpu, bundled task (reward rises)" 600 train_bundled cpu
  if command -v nvcc >/dev/null 2>&1 || ls -d "${CUDA_VENV:-/nonexistent}"/lib/python3*/site-packages/nvidia/cu13 >/dev/null 2>&1; then
    phase "cargo check --features cuda (nvcc, no GPU)" 1500 tools/check-cuda.sh
  else
    skip "cargo check --features cuda" "no nvcc (set CUDA_VENV, see tools/check-cuda.sh)"
  fi
}

# cuda_toolkit MAJOR MINOR: nvcc + headers + cuBLAS/cuRAND from PyPI for the driver's CUDA
# version, merged into one CUDA root ($WORK/cuda) by symbolic links. nvcc is pinned to the
# driver's minor version when PyPI has it: the driver must JIT the PTX (candle's and gym's
# kernels), and it refuses PTX from a newer toolkit than its own.
cuda_toolkit() {
  local major=$1 minor=$2 venv=${CUDA_VENV:-$WORK/cuda-venv} nvcc pkgs
  if [ "$major" -ge 13 ]; then
    nvcc="nvidia-cuda-nvcc nvidia-cuda-crt"
    pkgs="nvidia-cuda-runtime nvidia-cuda-cccl nvidia-cublas nvidia-curand nvidia-cuda-nvrtc"
  else
    nvcc="nvidia-cuda-nvcc-cu12"
    pkgs="nvidia-cuda-runtime-cu12 nvidia-cuda-cccl-cu12 nvidia-cublas-cu12 nvidia-curand-cu12 nvidia-cuda-nvrtc-cu12"
  fi
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" || return 1
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q $(for p in $nvcc; do echo "$p==$major.$minor.*"; done) $pkgs ||
    "$venv/bin/pip" install -q $nvcc $pkgs || return 1
  mkdir -p "$WORK/cuda"
  for d in "$venv"/lib/python3*/site-packages/nvidia/*/; do
    cp -rs "$d". "$WORK/cuda/" 2>/dev/null || true
  done
  [ -d "$WORK/cuda/lib" ] && ln -sfn lib "$WORK/cuda/lib64"
  link_names "$WORK/cuda/lib"
  [ -x "$WORK/cuda/bin/nvcc" ]
}

# link_names DIR: the unversioned names the linker asks for (-lcudart, -lcublas, -lcublasLt,
# -lcurand, -lnvrtc: cudarc and candle link them dynamically), which the wheels do not ship
# (libcublas.so.13 only), as symbolic links in DIR; and libcuda.so for the driver's
# libcuda.so.1 when the system has no unversioned name (containers often mount only the .1).
link_names() {
  local dir=$1 f base drv
  for f in "$dir"/lib*.so.*; do
    [ -e "$f" ] || continue
    base="$dir/$(basename "${f%%.so.*}").so"
    [ -e "$base" ] || ln -s "$(basename "$f")" "$base"
  done
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so '; then
    drv=$(ldconfig -p 2>/dev/null | sed -n 's/.*libcuda\.so\.1 .*=> //p' | head -1)
    [ -n "$drv" ] && ln -sfn "$drv" "$dir/libcuda.so"
  fi
  return 0
}

# cudarc_version MAJOR MINOR: CUDARC_CUDA_VERSION for a toolkit (cudarc spells 12.8 "12080"
# and knows releases up to 13.4; a newer 13.x uses 13.4's bindings).
cudarc_version() {
  if [ "$1" -eq 13 ] && [ "$2" -gt 4 ]; then echo 13040; else echo "${1}0${2}0"; fi
}

trl_venv() {
  local venv=$1
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" || return 1
  "$venv/bin/pip" install -q torch transformers peft "trl>=1.16,<2" bitsandbytes datasets accelerate
}

# gpu_peak OUT CMD...: runs CMD with its stdout in OUT, prints its peak GPU memory use in MiB
# (above the idle level).
gpu_peak() {
  local out=$1 idle peak=0 pid m
  shift
  idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0)
  "$@" >"$out" & pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    m=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0)
    [ "$m" -gt "$peak" ] && peak=$m
    sleep 0.2
  done
  wait "$pid" || return 1
  echo $(( peak - idle ))
}

gym_bench() { # MODEL OUT
  "$GYM" -q train --device cuda --model "$1" --data bench/train-prompts.jsonl --reward 'coverage:[0-9]' \
    --max-steps "$STEPS" --num-generations 8 --per-device-train-batch-size 16 --steps-per-generation 2 \
    --max-completion-length 32 --min-completion-length 32 --lora-rank 16 --lora-alpha 32 \
    --importance-sampling-level sequence --loss-type grpo --epsilon 3e-4 --epsilon-high 4e-4 \
    --beta 0 --learning-rate 1e-3 --lr-scheduler-type constant --use-4bit true \
    --gradient-checkpointing false --save-steps 1000 --aggregate-interval 1000 -o "$2"
}

benchmark() {
  local py=$1 m="$WORK/qwen3-0.6b-random" gmem tmem
  [ -f "$m/config.json" ] || "$py" bench/train_trl.py --make-random "$m" || return 1
  rm -rf "$WORK/bench-gym"
  gmem=$(gpu_peak /dev/null gym_bench "$m" "$WORK/bench-gym") || return 1
  tmem=$(gpu_peak "$WORK/trl.json" "$py" bench/train_trl.py --nf4 --device cuda --steps "$STEPS" \
    --gradient-checkpointing false) || return 1
  python3 - "$WORK/bench-gym/metrics.jsonl" "$WORK/trl.json" "$gmem" "$tmem" <<'PY' | tee "$WORK/bench.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
t = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
gmem, tmem = float(sys.argv[3]), float(sys.argv[4])
skip = 2 if len(rows) > 2 else 1
sec = sum(r["step_time_s"] for r in rows[skip:]) / len(rows[skip:])
tok = sum(r["completion_len"] * 16 for r in rows) / len(rows) / sec
print(f"GPU: {rows[-1]['device']}")
print("| implementation | completion tokens/s | s/step | peak GPU MiB (nvidia-smi) |")
print("|---|---|---|---|")
print(f"| gym (f32 compute, NF4 base) | {tok:.1f} | {sec:.3f} | {gmem:.0f} |")
v = t["versions"]
print(f"| TRL {v['trl']} + peft {v['peft']} + bnb {t.get('bitsandbytes')} (bf16 compute) | "
      f"{t['completion_tokens_per_s']:.1f} | {t['sec_per_step']:.3f} | {tmem:.0f} |")
print(f"| **gym / TRL** | **{tok / t['completion_tokens_per_s']:.2f}x** | | **{gmem / tmem:.2f}x** |")
PY
}

build_cuda() {
  cargo build --release --features cuda --bin gym &&
    cargo test --release --features cuda --lib --no-run
}

gpu_mode() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader >&2
  local cap major minor trl_venv_dir=${TRL_VENV:-$WORK/trl-venv} trl_pid
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader -i 0 | tr -d '. ')
  major=$(nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9]*\)\..*/\1/p' | head -1)
  minor=$(nvidia-smi | sed -n 's/.*CUDA Version: *[0-9]*\.\([0-9]*\).*/\1/p' | head -1)
  export CUDA_COMPUTE_CAP=$cap
  # TRL's venv (torch alone is ~1 GB) downloads while the toolkit comes and gym builds
  ( trl_venv "$trl_venv_dir" >"$WORK/trl-venv.log" 2>&1; echo $? >"$WORK/trl-venv.rc" ) &
  trl_pid=$!
  if ! command -v nvcc >/dev/null 2>&1; then
    phase "CUDA ${major}.x toolkit from PyPI" 240 cuda_toolkit "${major:-12}" "${minor:-0}"
    export PATH="$WORK/cuda/bin:$PATH" CUDA_ROOT="$WORK/cuda" CUDA_PATH="$WORK/cuda" CUDA_HOME="$WORK/cuda"
    export LD_LIBRARY_PATH="$WORK/cuda/lib:${LD_LIBRARY_PATH:-}"
  fi
  phase "cargo fetch (crates.io or the local cache)" 180 cargo fetch
  local rel
  rel=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  # shellcheck disable=SC2086
  export CUDARC_CUDA_VERSION=$(cudarc_version $rel)
  phase "build --features cuda (sm_$cap)" 420 build_cuda
  phase "parity tests on cuda:0" 120 env GYM_TEST_DEVICE=cuda:0 \
    cargo test --release --features cuda --lib -- core::device core::model
  phase "gym train --device cuda, bundled task (reward rises)" 180 train_bundled cuda:0
  phase "--device cuda:99 refused (exit 22)" 60 expect_exit 22 "$GYM" generate --device cuda:99 --prompt Hi
  wait "$trl_pid"
  if [ "$(cat "$WORK/trl-venv.rc")" = 0 ]; then
    phase "GSPO step: gym vs TRL+peft+bnb ($STEPS steps)" 300 benchmark "$trl_venv_dir/bin/python"
  else
    ROWS+=("| TRL venv | FAIL | - |"); FAILED=1; tail -20 "$WORK/trl-venv.log" >&2
  fi
}

export ROOT WORK STEPS GYM PROFILE
export -f reward_rose train_bundled expect_exit cuda_toolkit link_names cudarc_version trl_venv gpu_peak gym_bench benchmark build_cuda
command -v cargo >/dev/null 2>&1 || { echo "gpu-check: cargo is not on PATH (install Rust first)" >&2; exit 1; }
if [ "$HAVE_GPU" = 1 ]; then
  gpu_mode
else
  cpu_mode
fi
echo
echo "| phase | result | seconds |"
echo "|---|---|---|"
printf '%s\n' "${ROWS[@]}"
[ -f "$WORK/bench.md" ] && { echo; cat "$WORK/bench.md"; }
echo "total $(( $(date +%s) - START )) s; logs in $WORK"
exit "$FAILED"
