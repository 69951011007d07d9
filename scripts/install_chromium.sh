#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`) for tests/test_tracker_browser.py.
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root or sudo.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install_chromium.sh: /usr/bin/chromium is missing and neither root nor sudo is available" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
test -x /usr/bin/chromium
