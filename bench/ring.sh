#!/usr/bin/env bash
# gym ring vs torch.distributed gloo: 4 members, 64 MiB of f32, loopback, same machine.
#   gym:  N × `gym ring join` (hybrid handshake, AES-256-GCM, signed messages, sketch check,
#         exact fixed-point sums); time = `allreduce_seconds` of the slowest member (from all
#         connections up to the agreed result), median of $RUNS rounds.
#   gloo: bench/ring_gloo.py, N processes, `dist.all_reduce` on one f32 tensor, no encryption,
#         median of $RUNS after a warm-up.
# Both report algorithm bus bandwidth 2·(N−1)/N·bytes/time; each gym member process's CPU
# (user+system) and peak RSS come from /usr/bin/time. Then the per-layer costs on one
# core (examples/ring-layers.rs).
# Usage: bench/ring.sh [N] [MiB]   (env: RUNS=3, PYTHON=python with torch, BENCH_DIR=...,
#   CHUNK=elements: the ring's chunk_elements (default: gym ring plan's),
#   HYBRID=1: members with Ed25519 + ML-DSA-87 keys (a hybrid ring, every message signed twice),
#   QUANTIZE=BITS: a quantized ring (`gym ring plan --quantize BITS`),
#   GYM_BIN=path: time that gym binary instead of building this tree, e.g. an older commit's;
#   LAYERS=path: its ring-layers example)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4}
MIB=${2:-64}
RUNS=${RUNS:-3}
HYBRID=${HYBRID:-0}
if [ "$HYBRID" = 1 ]; then PQ=(--pq); SUFFIX=-hybrid; else PQ=(); SUFFIX=; fi
DIR=${BENCH_DIR:-/dev/shm/gym-ring-bench}$SUFFIX
PYTHON=${PYTHON:-python3}
"$PYTHON" -c "import torch" 2>/dev/null || { echo "PYTHON=$PYTHON has no torch (pip install torch)" >&2; exit 1; }
if [ -z "${GYM_BIN:-}" ]; then
  cargo build --release -q --bin gym --example bench-input --example ring-layers
fi
GYM=${GYM_BIN:-$PWD/target/release/gym}
LAYERS=${LAYERS:-$PWD/target/release/examples/ring-layers}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
mkdir -p "$DIR"
[ -f "$DIR/in.safetensors" ] || ./target/release/examples/bench-input "$DIR/in.safetensors" "$MIB" >/dev/null
: > "$DIR/members.txt"
PORT=$((21000 + RANDOM % 20000))
for i in $(seq 0 $((N - 1))); do
  [ -f "$DIR/k$i.pem" ] || "$GYM" -q keygen "${PQ[@]}" -o "$DIR/k$i.pem" >/dev/null
  [ -f "$DIR/in$i.delta" ] || "$GYM" -q delta pack --compression none --sign "$DIR/k$i.pem" \
    -o "$DIR/in$i.delta" "$DIR/in.safetensors" >/dev/null
  echo "127.0.0.1:$((PORT + i)) $("$GYM" key show --json "$DIR/k$i.pem")" >> "$DIR/members.txt"
done

times=()
cpu=()   # user+system seconds of each member process, every round
rss=()   # peak RSS (MiB) of each member process, every round
for r in $(seq "$RUNS"); do
  "$GYM" -q ring plan --force --round "$r" ${CHUNK:+--chunk-elements "$CHUNK"} \
    ${QUANTIZE:+--quantize "$QUANTIZE"} -o "$DIR/ring.toml" "$DIR/members.txt"
  pids=()
  for i in $(seq 0 $((N - 1))); do
    /usr/bin/time -f '%U %S %M' -o "$DIR/t$i.txt" \
      "$GYM" -q ring join --force --json --ring "$DIR/ring.toml" --key "$DIR/k$i.pem" \
      --input "$DIR/in$i.delta" -o "$DIR/out$i.delta" > "$DIR/r$i.json" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  for i in $(seq 0 $((N - 1))); do
    read -r u s m < <(tail -n1 "$DIR/t$i.txt")
    cpu+=("$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')")
    rss+=("$((m / 1024))")
  done
  t=$("$PYTHON" -c "import json,sys; print(max(json.load(open(f))['allreduce_seconds'] for f in sys.argv[1:]))" "$DIR"/r*.json)
  times+=("$t")
  [ "$(sha256sum "$DIR"/out*.delta | awk '{print $1}' | sort -u | wc -l)" = 1 ] || { echo "outputs differ" >&2; exit 1; }
done
med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
gym_bw=$("$PYTHON" -c "print(f'{2*($N-1)/$N*($MIB<<20)/$med/2**20:.1f}')")
read -r _ _ _ gloo_t gloo_bw < <("$PYTHON" bench/ring_gloo.py "$N" "$MIB" "$RUNS")
echo
echo "| all-reduce, $N members, $MIB MiB f32, loopback | median time | bus bandwidth |"
echo "|---|---:|---:|"
echo "| gym ring join (encrypted, signed$([ "$HYBRID" = 1 ] && echo ' Ed25519 + ML-DSA-87'), verified, exact${QUANTIZE:+, quantized to $QUANTIZE bits}) | ${med} s | ${gym_bw} MiB/s |"
echo "| torch.distributed gloo (plain f32) | ${gloo_t} s | ${gloo_bw} MiB/s |"
echo "ratio gym/gloo: $("$PYTHON" -c "print(f'{$gym_bw/$gloo_bw:.2f}')")x"
echo "gym rounds: ${times[*]} s; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "gym member processes (user+system s): ${cpu[*]}"
echo "gym member peak RSS (MiB): ${rss[*]}"
echo
echo "per-layer cost on one core (one member's share of the work):"
"$LAYERS" "$MIB" "$N"
