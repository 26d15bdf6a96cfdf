#!/usr/bin/env bash
# The attack table of docs/validation.md, through the real binaries: per run, `gym orchestrate`
# with a [validation] rule, 2 `gym validate --orchestrator` and 4 `gym work` on loopback, the
# bundled tiny model and toy task; worker 3 attacks (hidden `gym work --attack KIND` test
# seam) or, for the "honest" row, does not. Per row: what the validators refused (from the
# orchestrator's signed log), the final adapter's eval reward on the toy task (`gym eval`)
# against the honest run's, and the attacker's share of the epoch's reward estimate.
#
#   bench/attacks.sh [KIND…]        KIND: honest flip20 noise zero replay inflate poison
#   GYM=target/release/gym ROUNDS=3 STEPS=4 C=1.0 bench/attacks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GYM=${GYM:-target/release/gym}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-4}
C=${C:-1.0}
OUT=${OUT:-/tmp/gym-attacks}
KINDS=("$@")
[ ${#KINDS[@]} -gt 0 ] || KINDS=(honest flip20 noise zero replay inflate poison)
mkdir -p "$OUT"
export GYM_THREADS=1 NO_COLOR=1

one() {
  local kind=$1 dir="$OUT/$1" port
  rm -rf "$dir"; mkdir -p "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  for k in orch w0 w1 w2 w3 v0 v1; do "$GYM" -q keygen -o "$dir/$k.pem" >/dev/null; done
  {
    printf 'name = "attack"\nepochs = 1\nrounds_per_epoch = %s\nmin_workers = 4\nmax_workers = 4\nring_size = 4\n\n' "$ROUNDS"
    printf '[timeouts]\ntrain = 600\nring = 300\n\n[validation]\nquorum = 2\ntimeout = 300\nmax_tokens = 4096\nmodel_params = 1000000\ntolerance = 0.05\n\n'
    printf '[train]\naggregate_interval = %s\nmax_delta_norm = %s\n\n[publish]\nto = "published"\n' "$STEPS" "$C"
    for k in w0 w1 w2 w3; do printf '\n[[worker]]\nid = "%s"\nstake = 10000\n' "$("$GYM" key show "$dir/$k.pem" | head -1 | awk '{print $NF}')"; done
    for k in v0 v1; do printf '\n[[worker]]\nid = "%s"\nrole = "validator"\nstake = 25000\n' "$("$GYM" key show "$dir/$k.pem" | head -1 | awk '{print $NF}')"; done
  } > "$dir/job.toml"
  local url="http://127.0.0.1:$port" pids=()
  "$GYM" orchestrate --linger 30 --listen "127.0.0.1:$port" --job "$dir/job.toml" --key "$dir/orch.pem" 2>"$dir/orch.log" >/dev/null &
  local orch=$!
  until curl -sf "$url/v1/job" >/dev/null; do sleep 0.2; done
  for v in v0 v1; do
    "$GYM" validate --orchestrator "$url" --key "$dir/$v.pem" --data testdata/toy/heldout.jsonl -o "$dir/$v" 2>"$dir/$v.log" >/dev/null &
    pids+=($!)
  done
  for w in w0 w1 w2 w3; do
    local extra=()
    [ "$w" = w3 ] && [ "$kind" != honest ] && extra=(--attack "$kind")
    "$GYM" work --orchestrator "$url" --key "$dir/$w.pem" -o "$dir/$w" "${extra[@]}" 2>"$dir/$w.log" >/dev/null &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || echo "$kind: a process failed (logs in $dir)" >&2; done
  "$GYM" job log --json "$url" > "$dir/log.json"
  "$GYM" job status --json "$url" > "$dir/status.json"
  wait "$orch" || true
  "$GYM" eval --adapter "$dir/w0/adapter" --json > "$dir/eval.json"
  python3 - "$kind" "$dir" "$OUT" <<'PY'
import json, sys
kind, d, out = sys.argv[1:]
log = json.load(open(f"{d}/log.json")); st = json.load(open(f"{d}/status.json"))
ev = json.load(open(f"{d}/eval.json"))
attacker = [w["id"] for w in st["workers"]][3]
refused = []
for e in log:
    x = e["decision"]
    if x["kind"] == "admission":
        for r in x["refused"]:
            who = "attacker" if r["worker"] == attacker else "honest " + r["worker"][:10]
            refused.append(f'r{x["round"]}: {who}: {r["reason"][:90]}')
est = st["epoch_folders"][0]["estimate"].get("estimate", {}) if st["epoch_folders"] else {}
total = sum(int(n["reward_base_units"]) for n in est.get("nodes", []) if n["node"] != st["orchestrator"])
mine = next((n for n in est.get("nodes", []) if n["node"] == attacker), None)
share = (int(mine["reward_base_units"]) / total) if (mine and total) else 0.0
row = {"kind": kind, "eval_reward": ev["reward_mean"], "refused": refused,
       "accepted_rounds": st["accepted_rounds"], "abandoned_rounds": st["abandoned_rounds"],
       "attacker_eligible": mine and mine["eligible"], "attacker_share": share}
json.dump(row, open(f"{out}/{kind}.row.json", "w"))
print(json.dumps(row))
PY
}

for k in "${KINDS[@]}"; do one "$k"; done
python3 - "$OUT" "${KINDS[@]}" <<'PY'
import json, sys
out, kinds = sys.argv[1], sys.argv[2:]
rows = {k: json.load(open(f"{out}/{k}.row.json")) for k in kinds}
base = rows.get("honest", {}).get("eval_reward")
print("| attack | refused (by both validators) | final eval reward | vs honest | attacker eligible | attacker reward share |")
print("|---|---|---|---|---|---|")
for k, r in rows.items():
    rel = f'{(r["eval_reward"] / base - 1) * 100:+.1f} %' if base else "–"
    ref = "<br>".join(r["refused"]) or "none"
    print(f'| {k} | {ref} | {r["eval_reward"]:.3f} | {rel} | {r["attacker_eligible"]} | {r["attacker_share"]*100:.1f} % |')
PY
