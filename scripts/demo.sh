#!/usr/bin/env bash
# Run the demo: nats-server + nats-callout on the demo ports, in the foreground.
# Ctrl-C or SIGTERM stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-config}
case "$MODE" in config|operator) ;; *) echo "make demo: MODE is config or operator, not $MODE" >&2; exit 2 ;; esac

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
# MODE=operator: the same demo on a nats-server in operator mode
# (docs/src/guides/operator-mode.md), its operator, accounts, sentinel and creds generated
# once into .demo/operator.
case "$MODE" in
  config) SERVER_CONF=nats-server.conf; CALLOUT_CONF=callout.toml ;;
  operator)
    if [ ! -f .demo/operator/nats-server.conf ]; then
      echo "generating the operator set-up into .demo/operator/ ..."
      "$BIN" keys --operator --dir .demo/operator
    fi
    SERVER_CONF=.demo/operator/nats-server.conf; CALLOUT_CONF=.demo/operator/callout.toml ;;
esac
"$BIN" check permissions
pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT
"$NATS_SERVER" -c "$SERVER_CONF" &
pids+=($!)
wait_for_port 4222
"$BIN" serve --config "$CALLOUT_CONF" &
pids+=($!)
cat <<MSG

  nats-callout demo is running ($MODE mode)
    chat page   http://127.0.0.1:8080/      (log in as bob/bob and alice/alice)
    HTTP API    http://127.0.0.1:8080/api/  (docs/src/reference/http-api.md)
    operations  http://127.0.0.1:9090/readyz, /metrics, /api/admin/status
    NATS        nats://127.0.0.1:4222
    websocket   ws://127.0.0.1:9222
    try it:     connect a NATS client to nats://127.0.0.1:4222 with
                  user     = all1;bob1        (the rooms you want)
                  password = \$($BIN token --user bob)
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
