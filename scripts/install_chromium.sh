#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`) for the browser tests, unless /usr/bin/chromium is there.
exec bash "$(dirname "$0")/apt_install.sh" chromium /usr/bin/chromium
