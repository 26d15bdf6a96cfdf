#!/usr/bin/env bash
# Runs a ring of N members on loopback, the shape of a cluster script:
#   keygen per member -> `gym ring plan` from "ADDRESS KEY-JSON" lines -> N × `gym ring join &`
#   -> wait -> check that every member wrote byte-identical output.
# Usage: examples/ring-local.sh [N] [ELEMENTS]   (env: GYM=path/to/gym, DIR=work dir, PORT=base)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4}
ELEMENTS=${2:-100000}
PORT=${PORT:-$((20000 + RANDOM % 20000))}
DIR=${DIR:-$(mktemp -d)}
if [ -z "${GYM:-}" ]; then
  cargo build -q --release --bin gym
  GYM=$PWD/target/release/gym
fi
mkdir -p "$DIR"
echo "working in $DIR" >&2

# A small LoRA-like safetensors input per member (python3 standard library only).
make_input() { # OUT SEED
  python3 - "$1" "$2" "$ELEMENTS" <<'PY'
import json, random, struct, sys
out, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
data = struct.pack("<%df" % n, *(rnd.gauss(0, 0.02) for _ in range(n)))
hdr = json.dumps({"lora_A.weight": {"dtype": "F32", "shape": [n], "data_offsets": [0, len(data)]}}).encode()
hdr += b" " * (-len(hdr) % 8)
open(out, "wb").write(struct.pack("<Q", len(hdr)) + hdr + data)
PY
}

: > "$DIR/members.txt"
for i in $(seq 0 $((N - 1))); do
  "$GYM" -q keygen --force -o "$DIR/k$i.pem" >/dev/null
  make_input "$DIR/in$i.safetensors" "$i"
  "$GYM" -q delta pack --force --sign "$DIR/k$i.pem" -o "$DIR/in$i.delta" "$DIR/in$i.safetensors" >/dev/null
  echo "127.0.0.1:$((PORT + i)) $("$GYM" key show --json "$DIR/k$i.pem")" >> "$DIR/members.txt"
done
"$GYM" ring plan --force -o "$DIR/ring.toml" "$DIR/members.txt"

pids=()
for i in $(seq 0 $((N - 1))); do
  "$GYM" ring join --force --ring "$DIR/ring.toml" --key "$DIR/k$i.pem" \
    --input "$DIR/in$i.delta" --output "$DIR/out$i.delta" --weight $((i + 1)) \
    --json > "$DIR/report$i.json" 2> "$DIR/log$i.txt" &
  pids+=($!)
done
fail=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "member $i failed:" >&2; tail -n 5 "$DIR/log$i.txt" >&2; fail=1
  fi
done
[ "$fail" = 0 ] || exit 1

sums=$(for i in $(seq 0 $((N - 1))); do sha256sum < "$DIR/out$i.delta"; done | sort -u)
if [ "$(echo "$sums" | wc -l)" != 1 ]; then
  echo "outputs differ:" >&2; sha256sum "$DIR"/out*.delta >&2; exit 1
fi
echo "all $N outputs are identical: ${sums%% *}"
# Audit the result as a rewards orchestrator would: receipts, transcript, every member's
# published sketch against its input, and the exact mean.
inputs=()
for i in $(seq 0 $((N - 1))); do inputs+=(--input "$DIR/in$i.delta"); done
"$GYM" ring audit --ring "$DIR/ring.toml" "${inputs[@]}" "$DIR/out0.delta"
"$GYM" delta inspect "$DIR/out0.delta" | head -n 20
