#!/usr/bin/env bash
# Install Debian's Chromium and ChromeDriver for the browser test, unless /usr/bin/chromium
# already exists. Idempotent; needs root (or sudo) only when something is missing.
# Browser builds are never downloaded: the test drives this system Chromium.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "installing Debian chromium + chromium-driver (and fonts-liberation) ..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >&2
/usr/bin/chromium --version >&2
