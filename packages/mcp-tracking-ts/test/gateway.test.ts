/**
 * Against a real mcp-gateway (scripts/ts_sdk.sh starts one and passes MCP_GATEWAY_URL, an org key and a read
 * key): a tracked server's session and events land, read back through the gateway's analytics API.
 * Skipped without a gateway, unless REQUIRE_GATEWAY=1 (the script sets it), which makes that a failure.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { trackMCP } from "../src/index.js";
import { connect, demoServer } from "./helpers.js";

const url = process.env.MCP_GATEWAY_URL;
const orgKey = process.env.MCP_GATEWAY_ORG_KEY;
const readKey = process.env.MCP_GATEWAY_READ_KEY;
const missing = !url || !orgKey || !readKey;
if (missing && process.env.REQUIRE_GATEWAY === "1") {
  throw new Error("REQUIRE_GATEWAY=1 but MCP_GATEWAY_URL, MCP_GATEWAY_ORG_KEY or MCP_GATEWAY_READ_KEY is not set");
}

async function read(path: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${readKey}` } });
  assert.equal(response.status, 200, `${path}: ${await response.clone().text()}`);
  return (await response.json()) as Record<string, unknown>;
}

test(
  "a tracked server's session and calls land in the gateway",
  { skip: missing && "no gateway (run scripts/ts_sdk.sh)" },
  async () => {
    const server = demoServer();
    const tracker = trackMCP(server, orgKey!, {
      endpoint: url!,
      identify: () => ({ userId: "ts-user", email: "ts@example.com" }),
      logger: { debug: () => undefined, warn: (m: string) => assert.fail(`tracking warned: ${m}`) },
    });
    const clientName = `ts-sdk-${randomUUID().slice(0, 8)}`;
    const client = await connect(server, clientName);
    await client.callTool({ name: "get_weather", arguments: { city: "Lisbon", email: "ts@example.com" } });
    await client.callTool({ name: "fails", arguments: {} });
    await client.readResource({ uri: "file:///readme.txt" });
    await client.getPrompt({ name: "review", arguments: { code: "x" } });
    assert.equal(await tracker.flush(10_000), true);
    assert.deepEqual(tracker.stats.dropped, {});
    assert.equal(tracker.stats.sent, 5);
    assert.equal(tracker.sink.usesBatchEndpoint, true);

    const listed = await read(`/analytics/mcp/sessions?client=${clientName}&period=24h`);
    const sessions = listed.sessions as Array<{ session_id: string; calls: number; errors: number }>;
    assert.equal(sessions.length, 1);
    assert.equal(sessions[0]!.calls, 4);
    assert.equal(sessions[0]!.errors, 1);
    const detail = await read(`/analytics/mcp/sessions/${sessions[0]!.session_id}`);
    const session = detail.session as Record<string, unknown>;
    assert.equal(session.client, clientName);
    assert.equal(session.client_version, "9.9.9");
    assert.deepEqual(session.tools, ["get_weather", "fails"]);
    assert.equal((session.user_data as Record<string, unknown>).userId, "ts-user");
    const calls = detail.calls as Array<Record<string, unknown>>;
    assert.deepEqual(
      calls.map((c) => [c.primitive_type, c.name, c.success]),
      [
        ["tool", "get_weather", true],
        ["tool", "fails", false],
        ["resource", "file:///readme.txt", true],
        ["prompt", "review", true],
      ],
    );
    assert.doesNotMatch(JSON.stringify(detail), /ts@example\.com/);
    await client.close();
    await tracker.close();
  },
);
