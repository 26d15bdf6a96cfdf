#!/usr/bin/env bash
# Download throughput from a local Hub, gym against huggingface_hub (the peer issue 15 names),
# on the same files: a model of config.json, model.safetensors.index.json and two safetensors
# shards of MIB/2 MiB random bytes each, served by examples/hub-dl-server.rs (the CLI tests'
# local Hub: LFS files redirect to a CDN path, answered with Range support).
#   gym:    gym -q download bench/model                               (fresh HF_HOME)
#   peer:   snapshot_download('bench/model', allow_patterns=['*.json', '*.safetensors'])
# Both fetch the same 4 files into the same cache layout, several files at a time (8 workers
# each). gym also checks every byte against the sha256 the Hub names; huggingface_hub checks
# sizes only. Wall time (whole command, interpreter start included) and peak RSS (GNU time),
# median of $RUNS runs, the cache removed before each run.
# Usage: bench/hub_download.sh [MiB]  (env: RUNS=3, BENCH_DIR=/dev/shm/gym-hub-bench,
#        PYTHON=/work/venvs/hub/bin/python with huggingface_hub installed)
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
RUNS=${RUNS:-3}
DIR=${BENCH_DIR:-/dev/shm/gym-hub-bench}
PY=${PYTHON:-/work/venvs/hub/bin/python}
"$PY" -c 'import huggingface_hub' || { echo "no huggingface_hub in $PY" >&2; exit 1; }
cargo build --release -q --bin gym --example hub-dl-server
GYM=$PWD/target/release/gym
mkdir -p "$DIR/repo"
half=$((MIB / 2))
for i in 1 2; do
  f="$DIR/repo/model-0000$i-of-00002.safetensors"
  [ -f "$f" ] || head -c $((half << 20)) /dev/urandom >"$f"
done
echo '{"model_type": "qwen3"}' >"$DIR/repo/config.json"
echo '{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}' \
  >"$DIR/repo/model.safetensors.index.json"
./target/release/examples/hub-dl-server "$DIR/repo" bench/model >"$DIR/url" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$DIR/url" ] && break; sleep 0.1; done
URL=$(cat "$DIR/url")
export HF_ENDPOINT=$URL HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_XET=1
unset HF_TOKEN HF_HUB_OFFLINE HF_HUB_CACHE

# measure NAME CMD: prints "NAME median_seconds max_rss_kib"
measure() {
  local name=$1; shift
  local times=() rss=0
  for _ in $(seq "$RUNS"); do
    rm -rf "$DIR/home"
    local out
    out=$( { HF_HOME="$DIR/home" /usr/bin/time -f '%e %M' bash -c "$*" >/dev/null; } 2>&1)
    if grep -q "non-zero status" <<<"$out"; then echo "$name failed: $out" >&2; exit 1; fi
    out=$(tail -n 1 <<<"$out")
    [ -n "$(ls "$DIR"/home/hub/models--bench--model/snapshots/*/model-00002-of-00002.safetensors)" ]
    times+=("${out% *}")
    local r=${out#* }
    [ "$r" -gt "$rss" ] && rss=$r
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$name $med $rss"
}

results=$(
  measure gym "$GYM -q download bench/model"
  measure peer "$PY -c \"from huggingface_hub import snapshot_download; snapshot_download('bench/model', allow_patterns=['*.json', '*.safetensors'])\""
)
echo "files: 2 x $half MiB + 2 small (served from $URL), runs: $RUNS, cores: $(nproc)," \
  "huggingface_hub $("$PY" -c 'import huggingface_hub; print(huggingface_hub.__version__)')"
echo "$results" | awk -v mib="$MIB" '
  { t[$1]=$2; m[$1]=$3 }
  END {
    printf "gym  download: %6.2f s  %7.1f MiB/s  peak RSS %6.1f MiB\n", t["gym"], mib / t["gym"], m["gym"] / 1024
    printf "peer download: %6.2f s  %7.1f MiB/s  peak RSS %6.1f MiB\n", t["peer"], mib / t["peer"], m["peer"] / 1024
    printf "throughput ratio gym / huggingface_hub: %.2fx\n", t["peer"] / t["gym"]
  }'
