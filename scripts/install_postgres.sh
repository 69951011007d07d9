#!/usr/bin/env bash
# Installs the PostgreSQL server (Debian package `postgresql`) the tests start their own throwaway server from
# (tests/postgres.py). Idempotent: does nothing when a server's initdb is already there. Needs root or sudo.
# The package's own cluster is not used (the tests run initdb in a temporary folder on a free port).
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install_postgres.sh: PostgreSQL is missing and neither root nor sudo is available" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends postgresql
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
