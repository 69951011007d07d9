/** trackMCP against a fake backend: what a session and its events carry, for McpServer and the low-level Server. */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";

import { trackMCP } from "../src/index.js";
import { connect, demoServer, FakeBackend } from "./helpers.js";

const backend = new FakeBackend();
let endpoint = "";

before(async () => {
  endpoint = await backend.start();
});
after(async () => {
  await backend.stop();
});

function quiet(): { debug(m: string): void; warn(m: string): void; lines: string[] } {
  const lines: string[] = [];
  return { debug: () => undefined, warn: (m: string) => void lines.push(m), lines };
}

test("a session is sent when the client initializes, before any call, with the client and the tools", async () => {
  backend.received.length = 0;
  const server = demoServer();
  const tracker = trackMCP(server, "org_test", { endpoint, logger: quiet() });
  const client = await connect(server, "claude-desktop");
  assert.equal(await tracker.flush(), true);
  const sessions = backend.sessions();
  assert.equal(sessions.length, 1);
  const [session] = sessions;
  assert.match(String(session!.session_id), /^[0-9a-f-]{36}$/);
  assert.equal(session!.client_config, "claude-desktop 9.9.9");
  assert.equal(session!.connection_type, "in-memory");
  assert.deepEqual(session!.tools, ["get_weather", "fails"]);
  assert.equal(backend.events().length, 0);
  assert.ok(backend.received.every((r) => r.orgId === "org_test"));
  await client.close();
  await tracker.close();
});

test("tool, resource and prompt calls and lists become events of that session, in the seed's shape", async () => {
  backend.received.length = 0;
  const server = demoServer();
  const tracker = trackMCP(server, "org_test", { endpoint, logger: quiet() });
  const client = await connect(server);
  const answer = await client.callTool({ name: "get_weather", arguments: { city: "Paris" } });
  assert.deepEqual(answer.content, [{ type: "text", text: '{"city":"Paris","temperature":18,"contact":null}' }]);
  await client.callTool({ name: "fails", arguments: {} });
  await client.readResource({ uri: "file:///readme.txt" });
  await client.getPrompt({ name: "review", arguments: { code: "x = 1" } });
  await client.listTools();
  await tracker.flush();
  const [session] = backend.sessions();
  const events = backend.events();
  assert.deepEqual(
    events.map((e) => [e.primitive_type, e.primitive_name, e.operation, e.success, e.error_type]),
    [
      ["tool", "get_weather", "call", true, null],
      ["tool", "fails", "call", false, "ToolError"],
      ["resource", "file:///readme.txt", "call", true, null],
      ["prompt", "review", "call", true, null],
      ["tool", "tools/list", "list", true, null],
    ],
  );
  for (const event of events) {
    assert.equal(event.session_id, session!.session_id);
    assert.equal(typeof event.latency, "number");
    assert.ok((event.latency as number) >= 0);
    assert.match(String(event.event_id), /^[0-9a-f-]{36}$/);
    assert.equal(typeof event.timestamp, "number");
  }
  assert.equal(events[0]!.args, '{"city":"Paris"}');
  assert.equal(
    events[0]!.result,
    JSON.stringify({ content: [{ text: '{"city":"Paris","temperature":18,"contact":null}', type: "text" }] }),
  );
  assert.equal(events[4]!.result, '{"tools":["get_weather","fails"]}');
  await client.close();
  await tracker.close();
});

test("sensitive keys and emails are hashed; disableInput and disableOutput leave args and result out", async () => {
  backend.received.length = 0;
  const server = demoServer();
  const tracker = trackMCP(server, "org_test", { endpoint, logger: quiet() });
  const client = await connect(server);
  await client.callTool({ name: "get_weather", arguments: { city: "Paris", email: "Ada@Example.com" } });
  await tracker.flush();
  const [event] = backend.events();
  assert.doesNotMatch(String(event!.args), /example\.com/i);
  assert.doesNotMatch(String(event!.result), /example\.com/i);
  assert.match(String(event!.args), /"email":"sha256:[0-9a-f]{64}"/);
  await client.close();
  await tracker.close();

  backend.received.length = 0;
  const private_ = demoServer();
  const hidden = trackMCP(private_, "org_test", { endpoint, disableInput: true, disableOutput: true, logger: quiet() });
  const other = await connect(private_);
  await other.callTool({ name: "get_weather", arguments: { city: "Paris" } });
  await hidden.flush();
  const [bare] = backend.events();
  assert.equal("args" in bare!, false);
  assert.equal("result" in bare!, false);
  assert.equal(bare!.primitive_name, "get_weather");
  await other.close();
  await hidden.close();
});

test("identify's user data lands on the session, redacted; privateArguments are hashed in args and result", async () => {
  backend.received.length = 0;
  const server = demoServer();
  const tracker = trackMCP(server, "org_test", {
    endpoint,
    identify: (_request, env) => ({ userId: "u-1", email: "a@b.co", home: env.HOME === undefined ? "none" : "set" }),
    privateArguments: { get_weather: ["city"] },
    logger: quiet(),
  });
  const client = await connect(server);
  await client.callTool({ name: "get_weather", arguments: { city: "Reykjavik" } });
  await tracker.flush();
  const [session] = backend.sessions();
  const userData = session!.user_data as Record<string, unknown>;
  assert.equal(userData.userId, "u-1");
  assert.match(String(userData.email), /^sha256:/);
  const [event] = backend.events();
  assert.doesNotMatch(String(event!.args) + String(event!.result), /Reykjavik/);
  await client.close();
  await tracker.close();
});

test("a low-level Server is tracked too, handlers registered before and after trackMCP, thrown errors recorded", async () => {
  backend.received.length = 0;
  const server = new Server({ name: "low", version: "1.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [{ name: "boom", inputSchema: { type: "object" as const } }],
  }));
  const tracker = trackMCP(server, "org_test", { endpoint, logger: quiet() });
  server.setRequestHandler(CallToolRequestSchema, async () => {
    throw new RangeError("out of range");
  });
  const client = await connect(server);
  await assert.rejects(client.callTool({ name: "boom", arguments: {} }));
  await tracker.flush();
  const [session] = backend.sessions();
  assert.deepEqual(session!.tools, ["boom"]);
  const [event] = backend.events();
  assert.equal(event!.success, false);
  assert.equal(event!.error_type, "RangeError");
  await client.close();
  await tracker.close();
});

test("two connections are two sessions; close() puts the original handlers back", async () => {
  backend.received.length = 0;
  const first = demoServer();
  const tracker = trackMCP(first, "org_test", { endpoint, logger: quiet() });
  const second = demoServer();
  const sibling = tracker.track(second);
  const a = await connect(first, "a");
  const b = await connect(second, "b");
  await a.callTool({ name: "get_weather", arguments: { city: "A" } });
  await b.callTool({ name: "get_weather", arguments: { city: "B" } });
  await tracker.flush();
  const sessions = backend.sessions();
  assert.deepEqual(sessions.map((s) => s.client_config).sort(), ["a 9.9.9", "b 9.9.9"]);
  const byClient = new Map(sessions.map((s) => [s.session_id, s.client_config]));
  assert.deepEqual(
    backend
      .events()
      .map((e) => [byClient.get(e.session_id as string), JSON.parse(e.args as string).city])
      .sort(),
    [
      ["a 9.9.9", "A"],
      ["b 9.9.9", "B"],
    ],
  );
  await sibling.close();
  await tracker.close();
  const before = backend.received.length;
  await a.callTool({ name: "get_weather", arguments: { city: "A" } });
  assert.equal(backend.received.length, before);
  const again = trackMCP(first, "org_test", { endpoint, logger: quiet() });
  assert.throws(() => again.track(first), /already tracked/);
  await again.close();
  await a.close();
  await b.close();
});

test("bad options are a TypeError or RangeError naming the option, at trackMCP", () => {
  const server = demoServer();
  assert.throws(() => trackMCP(server, "", {}), TypeError);
  assert.throws(() => trackMCP(server, "org", { batchSize: 0 }), /batchSize/);
  assert.throws(() => trackMCP(server, "org", { endpoint: "ftp://x" }), /endpoint/);
  assert.throws(() => trackMCP(server, "org", { maxRetries: 1.5 }), /maxRetries/);
  assert.throws(() => trackMCP(server, "org", { disableInput: "yes" } as never), /disableInput/);
  assert.throws(() => trackMCP(server, "org", { batchsize: 3 } as never), /unknown option\(s\): batchsize/);
  assert.throws(() => trackMCP({}, "org"), /McpServer or a low-level Server/);
});
