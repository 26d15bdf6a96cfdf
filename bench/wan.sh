#!/usr/bin/env bash
# gym ring vs torch.distributed gloo over shaped links: N members (4 by default), each in its own
# network namespace, joined by veth pairs to a bridge that lives in a namespace of its own; every
# address is from the benchmarking range 198.18.0.0/15 and nothing touches the root namespace.
# Each member's link is shaped in both directions with tc tbf (its egress on its eth0, its
# ingress on the bridge port), plus a netem one-way delay on its egress where the kernel has
# sch_netem (detected; the output says when it is missing and the profile is bandwidth only).
#
# Cases (CASES, "PROFILE:INPUT" words): profiles 1gbit (+10 ms) and 100mbit (+20 ms); inputs
#   lora:  a real LoRA delta written by `gym train` on the bundled task (one per member, seed =
#          member), scaled up by tensor count to MIB MiB of f32 (bench/wan_inputs.py)
#   gauss: random Gaussian f32 (σ 0.02, one seed per member), the worst case for compression.
# Both sides run in the same namespaces over the same links, on the same tensors:
#   gym:  N × `gym ring join` (encrypted, signed, verified, exact fixed-point sums); time =
#         `allreduce_seconds` of the slowest member (all connections up → agreed result),
#         median of RUNS rounds, each with a fresh `gym ring plan --round R`; the outputs of
#         every member must be byte-identical.
#   gloo: bench/ring_gloo.py member: `dist.all_reduce` of the same tensors as ONE flat f32
#         tensor, slowest member, median of RUNS after a warm-up.
#   ratio = gloo time / gym time. A `--quantize 8` column is run when the gym binary's
#   `ring join --help` (or `ring plan --help`) lists --quantize, else it prints n/a.
#   wire B/el = bytes the members' eth0 sent (IP packets: headers, AEAD tags, handshakes and
#   control messages included) per element each member moves in a ring all-reduce,
#   2·(N−1)/N · elements per member, i.e. total / (2·(N−1)·elements); gloo's f32 is ≈ 4.
#   Median over the RUNS rounds (gloo: its RUNS + 1 all-reduces, warm-up included, averaged).
#
# Usage: sudo bench/wan.sh   (root: ip netns, tc)
# Env: N=4, MIB=64, RUNS=3, CASES="1gbit:lora 100mbit:lora 1gbit:gauss",
#   GYM_BIN=path (default: target/release/gym, built here when absent),
#   JOIN_FLAGS / PLAN_FLAGS: extra flags for every `gym ring join` / `gym ring plan`,
#   QUANT_BITS=8 (the quantized column), PYTHON=python with torch and numpy,
#   BENCH_DIR=/tmp/gym-wan-bench (inputs and keys are kept there between runs),
#   KEEP_NETNS=1: leave the namespaces up at the end (for inspection; cleaned by the next run).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-4}
MIB=${MIB:-64}
RUNS=${RUNS:-3}
CASES=${CASES:-"1gbit:lora 100mbit:lora 1gbit:gauss"}
QUANT_BITS=${QUANT_BITS:-8}
PYTHON=${PYTHON:-python3}
DIR=${BENCH_DIR:-/tmp/gym-wan-bench}
read -r -a JOIN_X <<< "${JOIN_FLAGS:-}"
read -r -a PLAN_X <<< "${PLAN_FLAGS:-}"
PFX=gymwan
GYM_PORT=29400
GLOO_PORT=29500

[ "$(id -u)" = 0 ] || { echo "wan.sh needs root (ip netns, tc)" >&2; exit 1; }
"$PYTHON" -c "import torch, numpy" 2>/dev/null \
  || { echo "PYTHON=$PYTHON lacks torch or numpy (pip install torch numpy)" >&2; exit 1; }
if [ -z "${GYM_BIN:-}" ]; then
  [ -x target/release/gym ] || cargo build --release -q --bin gym
fi
GYM=$(realpath "${GYM_BIN:-target/release/gym}")

# ---- namespaces, links, shaping; removed on every exit path -------------------------------
NSES=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for ns in "${NSES[@]}"; do
    # Processes this script started inside its namespaces (members still running).
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  if [ "${KEEP_NETNS:-0}" != 1 ]; then
    for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    [ "${#NSES[@]}" = 0 ] || echo "cleanup: removed ${#NSES[@]} namespaces (their links and qdiscs with them)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ns_member() { echo "$PFX-m$1"; }
addr() { echo "198.18.0.$(($1 + 1))"; }

# Leftovers of an interrupted earlier run (KEEP_NETNS=1 or kill -9) go first.
for ns in $(ip netns list | awk '{print $1}' | grep "^$PFX-" || true); do ip netns del "$ns"; done

make_net() {
  local br=$PFX-br
  ip netns add "$br"; NSES+=("$br")
  ip -n "$br" link add br0 type bridge
  ip -n "$br" link set br0 up
  for i in $(seq 0 $((N - 1))); do
    local m
    m=$(ns_member "$i")
    ip netns add "$m"; NSES+=("$m")
    ip -n "$br" link add "b$i" type veth peer name eth0 netns "$m"
    ip -n "$br" link set "b$i" master br0 up
    ip -n "$m" link set lo up
    ip -n "$m" addr add "$(addr "$i")/24" dev eth0
    ip -n "$m" link set eth0 up
  done
}

HAVE_NETEM=0
detect_netem() {
  if ip netns exec "$(ns_member 0)" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
    ip netns exec "$(ns_member 0)" tc qdisc del dev lo root
    HAVE_NETEM=1
  fi
}

# shape RATE DELAY_MS: tbf at RATE on both directions of every member's link; netem delay on
# the member's egress only (one-way delay DELAY_MS between any two members) where available.
shape() {
  local rate=$1 delay=$2 burst
  case $rate in
    *gbit) burst=256kb ;;
    *) burst=64kb ;;
  esac
  for i in $(seq 0 $((N - 1))); do
    local m
    m=$(ns_member "$i")
    ip netns exec "$m" tc qdisc del dev eth0 root 2>/dev/null || true
    ip netns exec "$PFX-br" tc qdisc del dev "b$i" root 2>/dev/null || true
    if [ "$HAVE_NETEM" = 1 ]; then
      ip netns exec "$m" tc qdisc add dev eth0 root handle 1: netem delay "${delay}ms" limit 100000
      ip netns exec "$m" tc qdisc add dev eth0 parent 1: handle 2: tbf rate "$rate" burst "$burst" latency 100ms
    else
      ip netns exec "$m" tc qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 100ms
    fi
    ip netns exec "$PFX-br" tc qdisc add dev "b$i" root tbf rate "$rate" burst "$burst" latency 100ms
  done
}

delay_of() { case $1 in 1gbit) echo 10 ;; 100mbit) echo 20 ;; *) echo "${DELAY_MS:-0}" ;; esac; }

# ---- inputs --------------------------------------------------------------------------------
prepare_inputs() {
  mkdir -p "$DIR"
  for i in $(seq 0 $((N - 1))); do
    [ -f "$DIR/k$i.pem" ] || "$GYM" -q keygen -o "$DIR/k$i.pem" >/dev/null
    if [[ " $CASES " == *:lora* ]] && [ ! -f "$DIR/lora$i.delta" ]; then
      rm -rf "$DIR/train$i"
      "$GYM" -q train --max-steps 2 --aggregate-interval 2 --seed $((i + 1)) \
        --key "$DIR/k$i.pem" -o "$DIR/train$i" >/dev/null
      "$GYM" -q delta unpack --format safetensors -o "$DIR/lora$i.src.safetensors" \
        "$DIR/train$i/deltas/delta-000001.delta"
      "$PYTHON" bench/wan_inputs.py lora "$DIR/lora$i.src.safetensors" "$DIR/lora$i.safetensors" "$MIB"
      "$GYM" -q delta pack --compression none --sign "$DIR/k$i.pem" -o "$DIR/lora$i.delta" \
        "$DIR/lora$i.safetensors" >/dev/null
    fi
    if [[ " $CASES " == *:gauss* ]] && [ ! -f "$DIR/gauss$i.delta" ]; then
      "$PYTHON" bench/wan_inputs.py gauss $((i + 1)) "$DIR/gauss$i.safetensors" "$MIB"
      "$GYM" -q delta pack --compression none --sign "$DIR/k$i.pem" -o "$DIR/gauss$i.delta" \
        "$DIR/gauss$i.safetensors" >/dev/null
    fi
  done
  : > "$DIR/members.txt"
  for i in $(seq 0 $((N - 1))); do
    echo "$(addr "$i"):$GYM_PORT $("$GYM" key show --json "$DIR/k$i.pem")" >> "$DIR/members.txt"
  done
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# tx_bytes: bytes every member's eth0 has sent so far, summed.
tx_bytes() {
  local sum=0 b
  for i in $(seq 0 $((N - 1))); do
    b=$(ip netns exec "$(ns_member "$i")" awk '$1 == "eth0:" {print $10}' /proc/net/dev)
    sum=$((sum + b))
  done
  echo "$sum"
}

# wire_per_element BYTES ALLREDUCES: bytes per element moved (see the header).
wire_per_element() {
  "$PYTHON" -c "import sys; b, k, n, mib = map(float, sys.argv[1:]); \
print(f'{b / k / (2 * (n - 1) * mib * 262144):.3f}')" "$1" "$2" "$N" "$MIB"
}

# gym_round INPUT ROUND EXTRA_PLAN... -- EXTRA_JOIN...: one all-reduce; prints the slowest
# member's allreduce_seconds.
gym_round() {
  local input=$1 round=$2; shift 2
  local plan=() join=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do plan+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  join=("$@")
  "$GYM" -q ring plan --force --round "$round" "${PLAN_X[@]}" "${plan[@]}" \
    -o "$DIR/ring.toml" "$DIR/members.txt"
  local pids=() tx0
  tx0=$(tx_bytes)
  for i in $(seq 0 $((N - 1))); do
    ip netns exec "$(ns_member "$i")" "$GYM" -q ring join --force --json --ring "$DIR/ring.toml" \
      --key "$DIR/k$i.pem" --input "$DIR/$input$i.delta" -o "$DIR/out$i.delta" \
      "${JOIN_X[@]}" "${join[@]}" > "$DIR/r$i.json" &
    pids+=($!)
  done
  local bad=0
  for p in "${pids[@]}"; do wait "$p" || bad=1; done
  [ "$bad" = 0 ] || { echo "a gym member failed (round $round, $input)" >&2; return 1; }
  [ "$(sha256sum "$DIR"/out*.delta | awk '{print $1}' | sort -u | wc -l)" = 1 ] \
    || { echo "members' outputs differ" >&2; return 1; }
  wire_per_element $(($(tx_bytes) - tx0)) 1 >> "$DIR/wire.txt"
  "$PYTHON" -c "import json,sys; print(f\"{max(json.load(open(f))['allreduce_seconds'] for f in sys.argv[1:]):.4f}\")" \
    "$DIR"/r*.json
}

ROUND=0
gym_case() {
  local input=$1; shift
  local ts=()
  : > "$DIR/wire.txt"
  for _ in $(seq "$RUNS"); do
    ROUND=$((ROUND + 1))
    ts+=("$(gym_round "$input" "$ROUND" "$@")")
  done
  echo "gym $input ${*:-lossless}: ${ts[*]} s, wire B/el $(tr '\n' ' ' < "$DIR/wire.txt")" >&2
  median < "$DIR/wire.txt" > "$DIR/wire.median"
  printf '%s\n' "${ts[@]}" | median
}

gloo_case() {
  local input=$1 pids=() out=$DIR/gloo.out tx0
  tx0=$(tx_bytes)
  for i in $(seq 0 $((N - 1))); do
    ip netns exec "$(ns_member "$i")" env GLOO_SOCKET_IFNAME=eth0 OMP_NUM_THREADS=1 \
      "$PYTHON" bench/ring_gloo.py member "$i" "$N" "$(addr 0):$GLOO_PORT" \
      "$DIR/$input$i.safetensors" "$RUNS" > "$DIR/gloo$i.out" 2> "$DIR/gloo$i.err" &
    pids+=($!)
  done
  local bad=0
  for p in "${pids[@]}"; do wait "$p" || bad=1; done
  [ "$bad" = 0 ] || { echo "a gloo member failed ($input): see $DIR/gloo*.err" >&2; return 1; }
  cp "$DIR/gloo0.out" "$out"
  wire_per_element $(($(tx_bytes) - tx0)) $((RUNS + 1)) > "$DIR/wire.median"
  echo "gloo $input: $(tr '\n' ' ' < "$out")s" >&2
  median < "$out"
}

# ---- the run ---------------------------------------------------------------------------------
QUANT_PLAN=() QUANT_JOIN=() HAVE_QUANT=0
if "$GYM" ring plan --help 2>/dev/null | grep -q -- '--quantize'; then
  QUANT_PLAN=(--quantize "$QUANT_BITS"); HAVE_QUANT=1
fi
if "$GYM" ring join --help 2>/dev/null | grep -q -- '--quantize'; then
  QUANT_JOIN=(--quantize "$QUANT_BITS"); HAVE_QUANT=1
fi

prepare_inputs
make_net
detect_netem
echo "gym: $GYM ($("$GYM" --version)); kernel $(uname -r); $(nproc) CPUs"
if [ "$HAVE_NETEM" = 1 ]; then
  echo "netem: available, one-way delay added on each member's egress"
else
  echo "netem: NOT available in this kernel (sch_netem missing): profiles are bandwidth only, no added delay"
fi
[ "$HAVE_QUANT" = 1 ] || echo "--quantize: not supported by this gym binary (columns n/a)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

rows=()
for c in $CASES; do
  profile=${c%%:*} input=${c#*:}
  delay=$(delay_of "$profile")
  shape "$profile" "$delay"
  gloo_t=$(gloo_case "$input")
  gloo_w=$(cat "$DIR/wire.median")
  gym_t=$(gym_case "$input")
  gym_w=$(cat "$DIR/wire.median")
  ratio=$("$PYTHON" -c "print(f'{$gloo_t/$gym_t:.2f}')")
  if [ "$HAVE_QUANT" = 1 ]; then
    q_t=$(gym_case "$input" "${QUANT_PLAN[@]}" -- "${QUANT_JOIN[@]}")
    q_w=$(cat "$DIR/wire.median")
    q_ratio=$("$PYTHON" -c "print(f'{$gloo_t/$q_t:.2f}')")
    q_cells="$q_t s | ${q_ratio}× | $q_w"
  else
    q_cells="n/a | n/a | n/a"
  fi
  link="$profile"
  [ "$HAVE_NETEM" = 1 ] && link="$profile +${delay} ms"
  rows+=("| $N members, $link, $input, $MIB MiB | $gloo_t s | $gloo_w | $gym_t s | ${ratio}× | $gym_w | $q_cells |")
done

echo
echo "| case | gloo f32 | wire B/el | gym lossless | ratio | wire B/el | gym --quantize $QUANT_BITS | ratio | wire B/el |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
