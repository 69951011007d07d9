#!/usr/bin/env bash
# Installs the PostgreSQL server (Debian package `postgresql`) unless a server's initdb is there. The tests start
# their own throwaway server from its binaries (tests/postgres.py); the package's own cluster is not used.
exec bash "$(dirname "$0")/apt_install.sh" postgresql '/usr/lib/postgresql/*/bin/initdb'
