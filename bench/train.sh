#!/usr/bin/env bash
# GSPO training, gym vs TRL 1.16 (+ peft), CPU, the same threads and settings:
#   each optimiser step 2 prompts x 8 generations (per_device_train_batch_size 16), 32-token
#   completions (min = max = 32), steps_per_generation 2 (the second step off-policy), LoRA r16
#   alpha 32 on all linear layers, importance_sampling_level sequence, loss_type grpo,
#   epsilon 3e-4 / 4e-4, beta 0, lr 1e-3 constant, reward = share of digits.
# Timing on both sides: the first generation cycle (2 steps) is excluded; seconds per step over
# the remaining whole cycles; completion tokens/s = completion tokens per step / seconds per step.
# Usage: bench/train.sh [tiny|0.6b|both]   (env: STEPS=8, THREADS=2, PY=/work/venv-ref/bin/python,
#   GC=false|true: gradient checkpointing on both sides, default false; TRL's own default is true)
#   tiny: testdata/tiny-qwen3, f32 base on both sides (TRL loads it in f32)
#   0.6b: a random Qwen3-0.6B-shaped model (written once by bench/train_trl.py --make-random),
#         NF4 base on both sides (bitsandbytes 4-bit with double quantisation for TRL); peak RSS
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-tiny}
STEPS=${STEPS:-8}
THREADS=${THREADS:-2}
GC=${GC:-false}
PY=${PY:-/work/venv-ref/bin/python}
WORK=${WORK:-$(mktemp -d)}
cargo build --release -q --bin gym
GYM=$PWD/target/release/gym

# gym side: runs `gym train` under /usr/bin/time and reports the same figures as train_trl.py
gym_side() { # MODEL USE_4BIT LABEL STEPS
  local out="$WORK/gym-$3"
  rm -rf "$out"
  /usr/bin/time -f '%M' -o "$WORK/rss-$3" env RAYON_NUM_THREADS="$THREADS" "$GYM" -q --threads "$THREADS" train \
    --model "$1" --data bench/train-prompts.jsonl --reward 'coverage:[0-9]' \
    --max-steps "$4" --num-generations 8 --per-device-train-batch-size 16 --steps-per-generation 2 \
    --max-completion-length 32 --min-completion-length 32 --lora-rank 16 --lora-alpha 32 \
    --importance-sampling-level sequence --loss-type grpo --epsilon 3e-4 --epsilon-high 4e-4 \
    --beta 0 --learning-rate 1e-3 --lr-scheduler-type constant --use-4bit "$2" --gradient-checkpointing "$GC" \
    --save-steps 1000 --aggregate-interval 1000 -o "$out" >/dev/null
  python3 - "$out/metrics.jsonl" "$WORK/rss-$3" "$3" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rss_kib = int(open(sys.argv[2]).read().split()[-1])
skip = 2 if len(rows) > 2 else 1
timed = rows[skip:]
sec = sum(r["step_time_s"] for r in timed) / len(timed)
# completion tokens per step: 16 completions x mean length
tok = sum(r["completion_len"] * 16 for r in rows) / len(rows)
print(json.dumps({"impl": "gym", "model": sys.argv[3], "steps": len(rows),
                  "completion_tokens_per_s": tok / sec, "sec_per_step": sec,
                  "completion_tokens_mean": tok / 16, "peak_rss_mib": rss_kib / 1024,
                  "timed_steps": len(timed), "warmup_steps_excluded": skip}))
PY
}

compare() { # GYM_JSON TRL_JSON LABEL
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
g, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| {sys.argv[3]} | gym | {g['completion_tokens_per_s']:.1f} | {g['sec_per_step']:.3f} | {g['peak_rss_mib']:.0f} |")
print(f"| {sys.argv[3]} | TRL {t['versions']['trl']} + peft {t['versions']['peft']} | {t['completion_tokens_per_s']:.1f} | {t['sec_per_step']:.3f} | {t['peak_rss_mib']:.0f} |")
print(f"| {sys.argv[3]} | **gym / TRL** | **{g['completion_tokens_per_s'] / t['completion_tokens_per_s']:.2f}x** tokens/s | {t['sec_per_step'] / g['sec_per_step']:.2f}x faster steps | RSS {g['peak_rss_mib'] / t['peak_rss_mib']:.2f}x |")
PY
}

echo "| model | implementation | completion tokens/s | s/step | peak RSS MiB |"
echo "|---|---|---|---|---|"
if [ "$WHAT" = tiny ] || [ "$WHAT" = both ]; then
  G=$(gym_side testdata/tiny-qwen3 false tiny "$STEPS")
  T=$(OMP_NUM_THREADS=$THREADS "$PY" bench/train_trl.py --steps "$STEPS" --threads "$THREADS" --gradient-checkpointing "$GC" 2>/dev/null)
  compare "$G" "$T" tiny-qwen3
fi
if [ "$WHAT" = 0.6b ] || [ "$WHAT" = both ]; then
  M="$WORK/qwen3-0.6b-random"
  [ -f "$M/config.json" ] || "$PY" bench/train_trl.py --make-random "$M" 2>/dev/null
  G=$(gym_side "$M" true 0.6b "${STEPS_06B:-4}")
  T=$(OMP_NUM_THREADS=$THREADS "$PY" bench/train_trl.py --nf4 --steps "${STEPS_06B:-4}" --threads "$THREADS" --gradient-checkpointing "$GC" 2>/dev/null)
  compare "$G" "$T" "Qwen3-0.6B shape, NF4"
fi
echo "(work dir: $WORK)" >&2
