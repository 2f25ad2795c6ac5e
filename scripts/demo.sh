#!/usr/bin/env bash
# Run the demo: nats-server + nats-callout on the demo ports, in the foreground.
# Ctrl-C or SIGTERM stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

# The demo's ports (nats-server.conf, callout.toml): refuse at once, before building.
source scripts/ports.sh
require_free_ports "make demo" "4222 (NATS), 8222 (monitoring), 9222 (websocket), 8080 (chat page) and 9090 (operations)" \
  4222 8222 9222 8080 9090

cargo build --release --locked
NATS_SERVER=$(scripts/install-nats-server.sh)
BIN=target/release/nats-callout
if [ ! -f .demo/nats-keys.conf ]; then
  echo "generating demo keys into .demo/ ..."
  "$BIN" keys --dir .demo > .demo-snippet.tmp && rm -f .demo-snippet.tmp
fi
"$BIN" check permissions
pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT
"$NATS_SERVER" -c nats-server.conf &
pids+=($!)
wait_for_port 4222
"$BIN" serve --config callout.toml &
pids+=($!)
cat <<MSG

  nats-callout demo is running
    chat page   http://127.0.0.1:8080/      (log in as bob/bob and alice/alice)
    HTTP API    http://127.0.0.1:8080/api/  (see README: login, refresh, revoke)
    operations  http://127.0.0.1:9090/readyz, /metrics, /api/admin/status
    NATS        nats://127.0.0.1:4222
    websocket   ws://127.0.0.1:9222
    try it:     connect a NATS client to nats://127.0.0.1:4222 with
                  auth_token = \$($BIN token --user bob)
                  user       = all1;bob1        (the rooms you want)
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
