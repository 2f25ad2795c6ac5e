#!/usr/bin/env bash
# Run the cluster demo: three nats-server nodes with JetStream (R3 buckets) and two
# nats-callout instances sharing all their state there, in the foreground.
# Ctrl-C or SIGTERM stops everything this script started; one process stopping (kill a
# node to see the others carry on) leaves the rest running.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ports.sh
source scripts/supervise.sh
require_free_ports "make demo-cluster" \
  "4222-4224 (NATS), 6222-6224 (routes), 8222-8224 (monitoring), 9222 (websocket), 8080/8081 (chat page) and 9090/9091 (operations)" \
  4222 4223 4224 6222 6223 6224 8222 8223 8224 9222 8080 8081 9090 9091

cargo build --release --locked
NATS_SERVER=$(scripts/install-nats-server.sh)
BIN=target/release/nats-callout
if [ ! -f .demo/nats-keys.conf ]; then
  echo "generating demo keys into .demo/ ..."
  "$BIN" keys --dir .demo > .demo-snippet.tmp && rm -f .demo-snippet.tmp
fi
"$BIN" check permissions
mkdir -p .demo/cluster
for n in 1 2 3; do
  start "nats-server n$n" "$NATS_SERVER" -c "deploy/cluster/n$n.conf" -l ".demo/cluster/n$n.log"
done
for port in 4222 4223 4224; do wait_for_port "$port"; done
CONFIG=deploy/cluster/callout.toml
start "nats-callout :8080" "$BIN" serve --config "$CONFIG"
start "nats-callout :8081" env NATS_CALLOUT_HTTP__LISTEN=127.0.0.1:8081 \
  NATS_CALLOUT_HTTP__ADMIN_LISTEN=127.0.0.1:9091 "$BIN" serve --config "$CONFIG"
cat <<MSG

  nats-callout cluster demo is running: three nats-server nodes, two instances, one truth
    chat page    http://127.0.0.1:8080/  and  http://127.0.0.1:8081/  (bob/bob, alice/alice)
    operations   http://127.0.0.1:9090/readyz  and  http://127.0.0.1:9091/readyz
    NATS         nats://127.0.0.1:4222, :4223, :4224   websocket ws://127.0.0.1:9222
    node logs    .demo/cluster/n1.log ...
    try it:      log in on :8080, refresh on :8081 (same session); revoke on one, refused on both:
                   curl -s -X POST http://127.0.0.1:8080/api/auth/login \\
                     -H 'content-type: application/json' -d '{"username":"bob","password":"bob"}'
                   curl -s -X POST http://127.0.0.1:8081/api/auth/refresh \\
                     -H 'content-type: application/json' -d '{"refreshToken":"rt1_..."}'
                 an instance's state: $BIN status --config $CONFIG   (readiness, enforcer, counts)
                 publish permissions for every host: $BIN permissions push --config $CONFIG
    one down:    kill ${pids[2]}   (nats-server n3: the other nodes and both instances carry on)
  Ctrl-C stops everything.

MSG
supervise
