#!/usr/bin/env bash
# Three workers train the bundled demo (tiny Qwen3, digits task) and average their LoRA factors
# in a ring every 10 steps — the shape of a decentralized run. Each member samples its own data
# stream from the same LoRA initialisation; after every sync all members hold the same adapter.
# Prints each member's reward trend and checks that the averaged deltas and final adapters are
# byte-identical. Usage: examples/train-ring-local.sh   (env: GYM=path/to/gym, DIR=work dir)
set -euo pipefail
cd "$(dirname "$0")/.."
N=3
PORT=${PORT:-$((20000 + RANDOM % 20000))}
DIR=${DIR:-$(mktemp -d)}
if [ -z "${GYM:-}" ]; then
  cargo build -q --release --bin gym
  GYM=$PWD/target/release/gym
fi
echo "working in $DIR" >&2
: > "$DIR/members.txt"
for i in $(seq 0 $((N - 1))); do
  "$GYM" -q keygen --force -o "$DIR/k$i.pem" >/dev/null
  echo "127.0.0.1:$((PORT + i)) $("$GYM" key show --json "$DIR/k$i.pem")" >> "$DIR/members.txt"
done
"$GYM" -q ring plan --force -o "$DIR/ring.toml" "$DIR/members.txt"
pids=()
for i in $(seq 0 $((N - 1))); do
  rm -rf "$DIR/w$i"
  "$GYM" -q --threads 1 train --ring "$DIR/ring.toml" --key "$DIR/k$i.pem" --aggregate-interval 10 \
    --json -o "$DIR/w$i" > "$DIR/w$i.json" 2> "$DIR/w$i.log" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for i in $(seq 0 $((N - 1))); do
  python3 - "$DIR/w$i.json" "$i" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"member {sys.argv[2]}: mean reward {s['reward_first_quarter']:.3f} (first quarter) -> "
      f"{s['reward_last_quarter']:.3f} (last quarter), {len(s['aggregated'])} syncs")
PY
done
for f in deltas/avg-000001.delta deltas/avg-000002.delta deltas/avg-000003.delta deltas/avg-000004.delta adapter/adapter_model.safetensors; do
  sums=$(for i in $(seq 0 $((N - 1))); do sha256sum < "$DIR/w$i/$f"; done | sort -u | wc -l)
  if [ "$sums" -ne 1 ]; then
    echo "MISMATCH: $f differs between members" >&2
    exit 1
  fi
  echo "identical across members: $f"
done
