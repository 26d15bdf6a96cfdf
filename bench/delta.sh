#!/usr/bin/env bash
# DELTA pack/verify against the Unix pipeline peers the foundation issue names:
#   verify:  gym delta verify X.delta        vs  lz4 -d -c X.lz4 | openssl dgst -sha3-256
#   pack:    gym delta pack X -o X.delta     vs  lz4 -1 -c X | openssl dgst -sha3-256
# on a ~1 GiB LoRA-like safetensors file (f32 normal noise, rank-16 A/B pairs).
# Wall time and peak RSS (GNU time) for each, median of $RUNS runs, page cache warm.
# Usage: bench/delta.sh [MiB]   (env: RUNS=3, BENCH_DIR=/dev/shm/gym-bench, THREADS=<all>)
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
RUNS=${RUNS:-3}
DIR=${BENCH_DIR:-/dev/shm/gym-bench}
for t in lz4 openssl /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install lz4 openssl time)" >&2; exit 1; }
done
cargo build --release -q --bin gym --example bench-input
GYM=$PWD/target/release/gym
mkdir -p "$DIR"
IN=$DIR/in.safetensors
[ -f "$IN" ] || ./target/release/examples/bench-input "$IN" "$MIB"
lz4 -1 -q -f "$IN" "$DIR/in.lz4"
"$GYM" -q delta pack --force "$IN" -o "$DIR/in.delta" >/dev/null
cat "$IN" "$DIR/in.lz4" "$DIR/in.delta" >/dev/null # warm the page cache

# measure NAME CMD: prints "NAME median_seconds max_rss_kib"
measure() {
  local name=$1; shift
  local times=() rss=0
  for _ in $(seq "$RUNS"); do
    local out
    out=$( { /usr/bin/time -f '%e %M' bash -c "$*" >/dev/null; } 2>&1 | tail -n 1)
    times+=("${out% *}")
    local r=${out#* }
    [ "$r" -gt "$rss" ] && rss=$r
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$name $med $rss"
}

T=${THREADS:+--threads $THREADS}
results=$(
  measure gym_verify "$GYM $T -q delta verify $DIR/in.delta"
  measure peer_verify "lz4 -d -c $DIR/in.lz4 | openssl dgst -sha3-256"
  measure gym_pack "$GYM $T -q delta pack --force $IN -o $DIR/out.delta"
  measure peer_pack "lz4 -1 -c $IN | openssl dgst -sha3-256"
)
echo "input: $(du -h "$IN" | cut -f1) ($IN), runs: $RUNS, cores: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "$results" | awk '
  { t[$1]=$2; m[$1]=$3 }
  END {
    printf "%-12s %10s %12s\n", "command", "seconds", "peak RSS MiB"
    for (k in t) printf "%-12s %10.2f %12.1f\n", k, t[k], m[k]/1024
    printf "verify speed-up (peer/gym): %.2fx\n", t["peer_verify"]/t["gym_verify"]
    printf "pack speed-up (peer/gym):   %.2fx\n", t["peer_pack"]/t["gym_pack"]
  }'
