#!/usr/bin/env bash
# Run the demo: nats-server + nats-callout on the demo ports, in the foreground.
# Ctrl-C or SIGTERM stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

# The demo's ports (nats-server.conf, callout.toml): refuse at once, before building
# anything, when one is taken.
taken=()
for port in 4222 8222 9222 8080 9090; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    taken+=("$port")
  fi
done
if [ ${#taken[@]} -gt 0 ]; then
  echo "make demo: port(s) ${taken[*]} on 127.0.0.1 are already in use (another demo or" >&2
  echo "nats-server running?). The demo needs 4222 (NATS), 8222 (monitoring), 9222 (websocket)," >&2
  echo "8080 (chat page) and 9090 (operations). Stop what uses them and try again." >&2
  exit 1
fi

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
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break
  sleep 0.1
done
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
