#!/usr/bin/env bash
# Checks the formatting of the TypeScript tracking SDK (packages/mcp-tracking-ts; prettier), builds it and runs
# its tests, one of them against a real gateway: `mcp-gateway serve` on a free loopback port with a fresh SQLite
# file, an org key and a read key made with the CLI. Exits non-zero if the build or any test fails.
#
#   scripts/ts_sdk.sh
#   GATEWAY_BIN=/path/to/mcp-gateway scripts/ts_sdk.sh     # another install of the gateway
#
# Node 22 comes from scripts/node_tools.sh (the one the conformance suite uses); the package's own
# dependencies (@modelcontextprotocol/sdk, typescript, ...) are installed with `npm ci` from its lockfile.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGE="$ROOT/packages/mcp-tracking-ts"
GATEWAY_BIN="${GATEWAY_BIN:-$ROOT/.venv/bin/mcp-gateway}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
# shellcheck source=scripts/node_tools.sh
source "$ROOT/scripts/node_tools.sh"

log() { printf '==> %s\n' "$*" >&2; }

install_package_deps() {
  local stamp="$PACKAGE/node_modules/.installed" want
  want="$(cksum <"$PACKAGE/package-lock.json")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  log "installing the TypeScript SDK's dependencies (npm ci)"
  (cd "$PACKAGE" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s' "$want" >"$stamp"
}

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_gateway() {
  local port db="$WORK/gateway.db"
  port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  ORG_KEY="$("$GATEWAY_BIN" keys create --db "$db" --gateway demo --kind org --name ts-sdk-test)"
  READ_KEY="$("$GATEWAY_BIN" keys create --db "$db" --gateway demo --kind read --name ts-sdk-test)"
  "$GATEWAY_BIN" serve --db "$db" --port "$port" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  GATEWAY_URL="http://127.0.0.1:$port"
  # Wait (at most 30 s) for /health, failing fast if the gateway exits.
  "$PYTHON" "$ROOT/scripts/wait_healthy.py" "$GATEWAY_URL" "$SERVER_PID" \
    || { log "error: the gateway did not start:"; cat "$WORK/server.log" >&2; exit 1; }
}

install_node_tools
install_package_deps
start_gateway
log "testing packages/mcp-tracking-ts against the gateway at $GATEWAY_URL"
status=0
(
  cd "$PACKAGE"
  export PATH="$NODE_BIN:$PATH"   # npm's scripts run the pinned Node 22
  export MCP_GATEWAY_URL="$GATEWAY_URL" MCP_GATEWAY_ORG_KEY="$ORG_KEY" MCP_GATEWAY_READ_KEY="$READ_KEY"
  export REQUIRE_GATEWAY=1
  npm run lint --silent
  npm test --silent
) || status=$?
if [[ "$status" -ne 0 ]]; then
  log "TypeScript SDK tests FAILED; the gateway's log:"
  tail -n 50 "$WORK/server.log" >&2
  exit 1
fi
log "TypeScript SDK tests passed"
