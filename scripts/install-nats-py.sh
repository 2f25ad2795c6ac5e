#!/usr/bin/env bash
# Install nats-py 2.16.0 (PyPI), the official Python client, into .tools/venv unless it is
# there: the integration tests connect with it as a Python service would. Prints the path
# of the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.16.0
PY=.tools/venv/bin/python
installed() {
  "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('nats-py') != '$VERSION')" 2>/dev/null
}
if [ -x "$PY" ] && installed; then
  echo "$PY"; exit 0
fi
echo "installing nats-py $VERSION into .tools/ ..." >&2
mkdir -p .tools
[ -x "$PY" ] || python3 -m venv .tools/venv >&2
"$PY" -m pip install --quiet --disable-pip-version-check "nats-py==$VERSION" >&2
installed
echo "$PY"
