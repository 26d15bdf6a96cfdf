#!/usr/bin/env bash
# Installs and starts a real IPFS node (js-ipfs 0.66.1, Kubo-compatible RPC API) on loopback for
# gym's tests and for tools/reference/ipfs-cids.sh.
#
#   tools/ci/ipfs-node.sh start   # install if needed, init, start; prints `export GYM_TEST_IPFS_API=…`
#   tools/ci/ipfs-node.sh stop    # stops the daemon this script started
#
# Environment: GYM_IPFS_PORT (API port, default 45001), GYM_IPFS_DIR (state, default
# target/ipfs-node). Nothing leaves loopback: the test profile has no bootstrap peers and no MDNS.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
port="${GYM_IPFS_PORT:-45001}"
state="${GYM_IPFS_DIR:-$root/target/ipfs-node}"
pkg="$here/jsipfs"
jsipfs="$pkg/node_modules/.bin/jsipfs"
export IPFS_PATH="$state/repo"
api="http://127.0.0.1:$port"

stop() {
  if [[ -f "$state/daemon.pid" ]]; then
    pid="$(cat "$state/daemon.pid")"
    kill "$pid" 2>/dev/null || true
    # js-ipfs shuts down gracefully; give it a moment so a restart finds the repo unlocked.
    for _ in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    rm -f "$state/daemon.pid"
  fi
}

start() {
  if [[ ! -x "$jsipfs" ]]; then
    echo "installing js-ipfs into $pkg/node_modules (about a minute)" >&2
    # package-lock.json pins the whole tree; `npm ci` installs exactly it.
    (cd "$pkg" && npm ci --no-audit --no-fund >&2)
  fi
  mkdir -p "$state"
  if [[ ! -f "$IPFS_PATH/config" ]]; then
    "$jsipfs" init --profile test >&2
  fi
  "$jsipfs" config Addresses.API "/ip4/127.0.0.1/tcp/$port" >&2
  "$jsipfs" config Addresses.RPC "/ip4/127.0.0.1/tcp/0" >&2
  "$jsipfs" config Addresses.Gateway "/ip4/127.0.0.1/tcp/0" >&2
  "$jsipfs" config --json Addresses.Swarm '["/ip4/127.0.0.1/tcp/0"]' >&2
  stop
  rm -f "$IPFS_PATH/api" "$IPFS_PATH/repo.lock"
  nohup "$jsipfs" daemon >"$state/daemon.log" 2>&1 &
  echo $! >"$state/daemon.pid"
  for _ in $(seq 1 120); do
    if node -e 'fetch(process.argv[1], {method: "POST"}).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$api/api/v0/id"; then
      echo "export GYM_TEST_IPFS_API=$api"
      return 0
    fi
    if ! kill -0 "$(cat "$state/daemon.pid")" 2>/dev/null; then
      echo "js-ipfs daemon exited; log:" >&2
      cat "$state/daemon.log" >&2
      return 1
    fi
    sleep 1
  done
  echo "js-ipfs daemon did not answer on $api within 120 s; log:" >&2
  cat "$state/daemon.log" >&2
  return 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
