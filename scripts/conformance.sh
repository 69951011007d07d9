#!/usr/bin/env bash
# Runs the official MCP conformance suite's server scenarios against our /mcp endpoint.
#
#   scripts/conformance.sh            # all server scenarios (the suite's "all": active + pending)
#   SCENARIO=tools-list scripts/conformance.sh
#
# Needs only Python (with the project installed, `.venv` by default), npm and the npm registry:
# Node 22 (the `node` npm package, whose platform binary comes from the registry) and
# @modelcontextprotocol/conformance are installed, pinned by scripts/conformance/package-lock.json,
# into .tools/conformance, once. The fixture (tests/conformance/fixture_server.py: our app plus the
# suite's test_* primitives on gateway `conformance`) is served on a free loopback port for the run.
# Results: test-artifacts/conformance/ (checks.json per scenario, server.log). Exits 1 if any fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RESULTS="$ROOT/test-artifacts/conformance"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
SUITE="${SUITE:-all}"
SCENARIO="${SCENARIO:-}"
RUN_TIMEOUT="${RUN_TIMEOUT:-600}"    # seconds for the whole suite
# shellcheck source=scripts/node_tools.sh
source "$ROOT/scripts/node_tools.sh"
CONFORMANCE="$NODE_TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js"

log() { printf '==> %s\n' "$*" >&2; }

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

SERVER_PID=""
stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

start_server() {
  local port="$1"
  "$PYTHON" "$ROOT/tests/conformance/fixture_server.py" --port "$port" >"$RESULTS/server.log" 2>&1 &
  SERVER_PID=$!
  # Wait (at most 30 s) for /health to say ok, failing fast if the fixture exits.
  "$PYTHON" "$ROOT/scripts/wait_healthy.py" "http://127.0.0.1:$port" "$SERVER_PID" \
    || { log "error: fixture did not start; server.log:"; cat "$RESULTS/server.log" >&2; exit 1; }
}

summarize() {
  "$PYTHON" - "$RESULTS" <<'EOF'
import json, pathlib, re, sys
results = pathlib.Path(sys.argv[1])
rows = []
for path in sorted(results.glob("server-*/checks.json")):
    scenario = re.sub(r"^server-|-\d{4}-\d{2}-\d{2}T[\d-]+Z$", "", path.parent.name)
    checks = json.loads(path.read_text())
    count = lambda status: sum(1 for check in checks if check["status"] == status)
    rows.append((scenario, count("SUCCESS"), count("FAILURE"), count("WARNING"), checks))
print(f"\n{'scenario':<32} {'passed':>6} {'failed':>6} {'warned':>6}")
for scenario, ok, failed, warned, checks in rows:
    print(f"{scenario:<32} {ok:>6} {failed:>6} {warned:>6}")
    for check in checks:
        if check["status"] in ("FAILURE", "WARNING"):
            print(f"    {check['status']}: {check['name']}: {check.get('errorMessage') or check['description']}")
failed = sum(1 for row in rows if row[2])
print(f"\nchecks: {sum(r[1] for r in rows)} passed, {sum(r[2] for r in rows)} failed, {sum(r[3] for r in rows)} warnings")
print(f"conformance: {len(rows) - failed} passed, {failed} failed")
EOF
}

install_node_tools
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT/mcp?gid=conformance"
log "serving tests/conformance/fixture_server.py at $URL"
start_server "$PORT"

args=(server --url "$URL" --output-dir "$RESULTS")
if [[ -n "$SCENARIO" ]]; then args+=(--scenario "$SCENARIO"); else args+=(--suite "$SUITE"); fi
status=0
timeout --kill-after=10 "$RUN_TIMEOUT" "$NODE" "$CONFORMANCE" "${args[@]}" >"$RESULTS/suite.log" 2>&1 || status=$?
stop_server
summarize
if [[ "$status" -ne 0 ]]; then
  log "conformance suite FAILED (exit $status); details in ${RESULTS#"$ROOT"/}/suite.log and server.log"
  exit 1
fi
log "conformance suite passed"
