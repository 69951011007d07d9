/**
 * Over a real socket: a Streamable HTTP server on loopback making one McpServer per session (the SDK's
 * documented pattern), tracked through one queue; two HTTP clients are two sessions, `identify` sees headers.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

import { trackMCP, type Tracker } from "../src/index.js";
import { demoServer, FakeBackend } from "./helpers.js";

test("each Streamable HTTP session is one tracking session, identified from its headers", async () => {
  const backend = new FakeBackend();
  const endpoint = await backend.start();
  const transports = new Map<string, StreamableHTTPServerTransport>();
  let tracker: Tracker | undefined;
  const trackers: Tracker[] = [];
  const http = createServer(async (req: IncomingMessage, res) => {
    const sid = req.headers["mcp-session-id"];
    let transport = typeof sid === "string" ? transports.get(sid) : undefined;
    if (transport === undefined) {
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void transports.set(id, created),
      });
      transport = created;
      const server = demoServer();
      if (tracker === undefined) {
        tracker = trackMCP(server, "org_http", {
          endpoint,
          identify: (request) => ({ userId: String(request?.headers?.["x-user"] ?? "anonymous") }),
          logger: { debug: () => undefined, warn: (m: string) => assert.fail(m) },
        });
      } else {
        trackers.push(tracker.track(server));
      }
      await server.connect(transport);
    }
    await transport.handleRequest(req, res);
  });
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  const url = new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`);

  const clients: Client[] = [];
  for (const user of ["ada", "bob"]) {
    const client = new Client({ name: `http-${user}`, version: "1.0" });
    await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers: { "x-user": user } } }));
    await client.callTool({ name: "get_weather", arguments: { city: user } });
    await client.callTool({ name: "get_weather", arguments: { city: user } });
    clients.push(client);
  }
  assert.ok(tracker);
  await tracker.flush();

  const sessions = backend.sessions();
  assert.deepEqual(
    sessions.map((s) => [s.client_config, s.transport, (s.user_data as { userId: string }).userId]).sort(),
    [
      ["http-ada 1.0", "streamable-http", "ada"],
      ["http-bob 1.0", "streamable-http", "bob"],
    ],
  );
  const owner = new Map(sessions.map((s) => [s.session_id, (s.user_data as { userId: string }).userId]));
  const events = backend.events();
  assert.equal(events.length, 4);
  for (const event of events)
    assert.equal(owner.get(event.session_id as string), JSON.parse(event.args as string).city);

  for (const client of clients) await client.close();
  for (const sibling of trackers) await sibling.close();
  await tracker.close();
  for (const transport of transports.values()) await transport.close();
  http.closeAllConnections();
  http.close();
  await backend.stop();
});
