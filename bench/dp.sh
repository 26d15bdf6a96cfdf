#!/usr/bin/env bash
# Differential privacy on the bundled task: `gym train` (tiny Qwen3, toy task, 200 steps) with
# the update clipped to C = 2 and Gaussian noise z·C on every LoRA coordinate at each of its 4
# releases (aggregate_interval 50), for several noise multipliers z; then `gym eval` of the
# last RELEASED (noised) delta on the toy task's prompts. The noise comes from the operating
# system's CSPRNG (never reproducible), so each z runs REPS times. Prints one table: z, (ε, δ)
# from gym's accountant, and per run the reward over training's last quarter / the released
# delta's eval reward (base model: first row).
#
#   bench/dp.sh                 GYM=target/release/gym ZS="0 0.1 0.3 1 3" REPS=3 bench/dp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GYM=${GYM:-target/release/gym}
ZS=${ZS:-0 0.1 0.3 1 3}
REPS=${REPS:-3}
OUT=${OUT:-$(mktemp -d /tmp/gym-dp.XXXXXX)}
export GYM_THREADS=${GYM_THREADS:-1} NO_COLOR=1
reward() { python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["reward_mean"])'; }
echo "| z | (ε, δ) after 4 releases | per run: reward over training's last quarter / eval reward of the released delta | mean eval reward |"
echo "|---:|---|---|---:|"
echo "| (base model) | – | – | $("$GYM" eval --json 2>/dev/null | reward) |"
for z in $ZS; do
  cfg="$OUT/z$z.toml"
  printf 'max_steps = 200\naggregate_interval = 50\nsave_steps = 50\n' > "$cfg"
  if [ "$z" = 0 ]; then
    printf 'max_delta_norm = 2.0\n' >> "$cfg"
  else
    printf 'dp_clip = 2.0\ndp_noise_multiplier = %s\n' "$z" >> "$cfg"
  fi
  runs=() evals=() eps=""
  for r in $(seq "$REPS"); do
    log=$("$GYM" train --config "$cfg" -o "$OUT/z$z-$r" --force 2>&1)
    eps=$(grep -o 'ε = [0-9.]* at δ = [0-9.e-]*' <<<"$log" | tail -1 || true)
    last=$(grep -o 'over the first quarter → [0-9.]*' <<<"$log" | awk '{print $NF}')
    delta=$(ls "$OUT/z$z-$r"/deltas/delta-*.delta | sort | tail -1)
    ev=$("$GYM" eval --json --delta "$delta" 2>/dev/null | reward)
    runs+=("$last / $ev") evals+=("$ev")
  done
  mean=$(python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; print("%.3f" % (sum(v)/len(v)))' "${evals[@]}")
  echo "| $z | ${eps:-no noise (clip only)} | $(IFS=';'; echo "${runs[*]}" | sed 's/;/, /g') | $mean |"
done
