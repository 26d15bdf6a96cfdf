#!/usr/bin/env bash
# Training with ring averaging, lossless vs quantized: 3 × `gym train --ring` on loopback on the
# bundled task (tiny Qwen3, digits; defaults: 40 steps, aggregate_interval 10, seed 42, each
# member its own data stream), once with a lossless ring and once with `quantize = BITS`. Prints
# each member's mean reward over the first and last quarter of its steps, the rounds averaged,
# and whether the members' final adapters are byte-identical (they must be, in both rings).
#
# With SEEDS="1 2 3 …" each ring runs once per training seed (`gym train --seed`), and the
# last lines compare the last-quarter rewards over all seeds: one run is noisy (RL on a tiny
# model), the mean over seeds is the comparison.
#
# Usage: bench/ring_train.sh [BITS=8]
# Env: GYM_BIN (default target/release/gym), DIR (default /tmp/gym-ring-train), STEPS (40),
#   INTERVAL (10), SEEDS (42, the bundled default), PYTHON (python3, standard library only).
set -euo pipefail
cd "$(dirname "$0")/.."
BITS=${1:-8}
GYM=$(realpath "${GYM_BIN:-target/release/gym}")
DIR=${DIR:-/tmp/gym-ring-train}
STEPS=${STEPS:-40}
INTERVAL=${INTERVAL:-10}
PYTHON=${PYTHON:-python3}
SEEDS=${SEEDS:-42}
N=3
rm -rf "$DIR"
mkdir -p "$DIR"
for i in $(seq 0 $((N - 1))); do
  "$GYM" -q keygen -o "$DIR/k$i.pem" >/dev/null
done

run_ring() {
  local name=$1 port=$2 seed=$3; shift 3
  local members=$DIR/$name.members
  : > "$members"
  for i in $(seq 0 $((N - 1))); do
    echo "127.0.0.1:$((port + i)) $("$GYM" key show --json "$DIR/k$i.pem")" >> "$members"
  done
  "$GYM" -q ring plan --force "$@" -o "$DIR/$name.toml" "$members"
  local pids=() t0 t1
  t0=$(date +%s.%N)
  for i in $(seq 0 $((N - 1))); do
    rm -rf "${DIR:?}/$name$i"
    "$GYM" -q train --json --max-steps "$STEPS" --aggregate-interval "$INTERVAL" --seed "$seed" \
      --ring "$DIR/$name.toml" --key "$DIR/k$i.pem" -o "$DIR/$name$i" > "$DIR/$name$i.json" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(date +%s.%N)
  "$PYTHON" - "$DIR" "$name" "$N" "$t0" "$t1" "$seed" <<'EOF'
import hashlib, json, sys
d, name, n, t0, t1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
seed = sys.argv[6]
firsts, lasts, adapters = [], [], set()
for i in range(n):
    r = json.load(open(f"{d}/{name}{i}.json"))
    firsts.append(r["reward_first_quarter"]); lasts.append(r["reward_last_quarter"])
    adapters.add(hashlib.sha256(open(f"{d}/{name}{i}/adapter/adapter_model.safetensors", "rb").read()).hexdigest())
    print(f"seed {seed} {name} member {i}: reward first quarter {r['reward_first_quarter']:.3f}, "
          f"last quarter {r['reward_last_quarter']:.3f}, rounds {len(r['aggregated'])}")
print(f"seed {seed} {name}: mean over members: first quarter {sum(firsts)/n:.3f}, last quarter {sum(lasts)/n:.3f}; "
      f"adapters identical: {len(adapters) == 1}; wall {t1 - t0:.1f} s")
with open(f"{d}/summary.txt", "a") as f:
    f.write(f"{name} {seed} {sum(firsts)/n} {sum(lasts)/n} {len(adapters) == 1}\n")
EOF
}

echo "gym: $GYM ($("$GYM" --version)); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for seed in $SEEDS; do
  run_ring lossless 27100 "$seed"
  run_ring "q$BITS" 27200 "$seed" --quantize "$BITS"
done
"$PYTHON" - "$DIR/summary.txt" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for name in dict.fromkeys(r[0] for r in rows):
    last = [float(r[3]) for r in rows if r[0] == name]
    first = [float(r[2]) for r in rows if r[0] == name]
    same = all(r[4] == "True" for r in rows if r[0] == name)
    sd = statistics.stdev(last) if len(last) > 1 else 0.0
    print(f"{name}: {len(last)} seeds, reward first quarter {statistics.mean(first):.3f}, "
          f"last quarter {statistics.mean(last):.3f} (sd over seeds {sd:.3f}); "
          f"members' adapters identical in every run: {same}")
EOF
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
