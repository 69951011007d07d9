/** A backend that is down, slow, failing or old: the server keeps answering and nothing throws into it. */

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";

import { trackMCP } from "../src/index.js";
import { parseRetryAfter } from "../src/sink.js";
import { connect, demoServer, FakeBackend } from "./helpers.js";

function recorder(): { debug(m: string): void; warn(m: string): void; warnings: string[] } {
  const warnings: string[] = [];
  return { debug: () => undefined, warn: (m: string) => void warnings.push(m), warnings };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test("a backend answering 500 is retried maxRetries times, then the items are dropped; calls still answer", async () => {
  const backend = new FakeBackend();
  const endpoint = await backend.start();
  backend.respond = () => ({ status: 500 });
  const logger = recorder();
  const server = demoServer();
  const tracker = trackMCP(server, "org", { endpoint, maxRetries: 2, retryDelay: 1, logger });
  const client = await connect(server);
  const answer = await client.callTool({ name: "get_weather", arguments: { city: "Oslo" } });
  assert.equal(answer.isError, undefined);
  await tracker.flush();
  assert.equal(backend.received.length, 3); // the first try and two retries, session and event in one batch
  assert.equal(tracker.stats.retried, 2);
  assert.deepEqual(tracker.stats.dropped, { retries_exhausted: 2 });
  assert.equal(tracker.stats.sent, 0);
  assert.equal(logger.warnings.length, 1);
  await client.close();
  await tracker.close();
  await backend.stop();
});

test("a backend that recovers gets the items on a retry", async () => {
  const backend = new FakeBackend();
  const endpoint = await backend.start();
  backend.respond = (_path, count) => (count === 1 ? { status: 503 } : { status: 200 });
  const server = demoServer();
  const tracker = trackMCP(server, "org", { endpoint, retryDelay: 1, logger: recorder() });
  const client = await connect(server);
  await client.callTool({ name: "get_weather", arguments: { city: "Oslo" } });
  await tracker.flush();
  assert.equal(tracker.stats.sent, 2);
  assert.equal(tracker.stats.retried, 1);
  assert.deepEqual(tracker.stats.dropped, {});
  await client.close();
  await tracker.close();
  await backend.stop();
});

test("a backend that is down: calls answer, items are dropped after the retries, nothing throws", async () => {
  const endpoint = `http://127.0.0.1:${await closedPort()}`;
  const server = demoServer();
  const tracker = trackMCP(server, "org", { endpoint, maxRetries: 1, retryDelay: 1, logger: recorder() });
  const client = await connect(server);
  for (const city of ["a", "b", "c"]) {
    const answer = await client.callTool({ name: "get_weather", arguments: { city } });
    assert.equal((answer.content as Array<{ text: string }>)[0]!.text.includes(`"city":"${city}"`), true);
  }
  assert.equal(await tracker.flush(), true);
  assert.equal(tracker.stats.sent, 0);
  assert.equal(tracker.stats.dropped.retries_exhausted, 4);
  await client.close();
  await tracker.close();
});

test("a backend that never answers: each request gives up at the timeout, calls answer meanwhile", async () => {
  const backend = new FakeBackend();
  const endpoint = await backend.start();
  backend.respond = () => "hang";
  const server = demoServer();
  const tracker = trackMCP(server, "org", { endpoint, timeout: 50, maxRetries: 1, retryDelay: 1, logger: recorder() });
  const client = await connect(server);
  await client.callTool({ name: "get_weather", arguments: { city: "x" } });
  await client.callTool({ name: "get_weather", arguments: { city: "y" } });
  await tracker.flush();
  assert.equal(tracker.stats.retried, 1);
  assert.equal(tracker.stats.dropped.retries_exhausted, 3);
  await client.close();
  await tracker.close();
  await backend.stop();
});

test("a backend without /capture-batch (404) gets the seed's single routes, sessions before events", async () => {
  const backend = new FakeBackend();
  const endpoint = await backend.start();
  backend.respond = (path) => (path === "/api/v1/capture-batch" ? { status: 404 } : { status: 200 });
  const server = demoServer();
  const tracker = trackMCP(server, "org", { endpoint, logger: recorder() });
  const client = await connect(server);
  await client.callTool({ name: "get_weather", arguments: { city: "x" } });
  await tracker.flush();
  assert.deepEqual(
    backend.received.map((r) => r.path),
    ["/api/v1/capture-batch", "/api/v1/capture-session", "/api/v1/capture-event"],
  );
  assert.equal(backend.events()[0]!.session_id, backend.sessions()[0]!.session_id);
  assert.equal(tracker.sink.usesBatchEndpoint, false);
  assert.equal(tracker.stats.sent, 2);
  await client.close();
  await tracker.close();
  await backend.stop();
});

test("429 waits for Retry-After; a 400 drops the items as http_400 without retrying", async () => {
  const backend = new FakeBackend();
  const endpoint = await backend.start();
  backend.respond = (_path, count) =>
    count === 1 ? { status: 429, headers: { "retry-after": "0" } } : { status: 400 };
  const server = demoServer();
  const tracker = trackMCP(server, "org", { endpoint, retryDelay: 20_000, logger: recorder() });
  const client = await connect(server);
  await client.callTool({ name: "get_weather", arguments: { city: "x" } });
  assert.equal(await tracker.flush(5_000), true); // a 20 s backoff would have run past the flush's timeout
  assert.equal(backend.received.length, 2);
  assert.deepEqual(tracker.stats.dropped, { http_400: 2 });
  await client.close();
  await tracker.close();
  await backend.stop();
  assert.equal(parseRetryAfter("7"), 7_000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 1970 00:00:10 GMT", 4_000), 6_000);
  assert.equal(parseRetryAfter("soon"), null);
});

test("batchSize sends a batch once that many items wait; enableRequestQueuing false sends each at once", async () => {
  const backend = new FakeBackend();
  const endpoint = await backend.start();
  const server = demoServer();
  const tracker = trackMCP(server, "org", { endpoint, batchSize: 3, flushInterval: 3_600_000, logger: recorder() });
  const client = await connect(server); // 1 item: the session
  await client.callTool({ name: "get_weather", arguments: { city: "x" } }); // 2
  assert.equal(backend.received.length, 0);
  await client.callTool({ name: "get_weather", arguments: { city: "y" } }); // 3: a batch
  await backend.waitFor(() => backend.received.length === 1, "one batch");
  const [batch] = backend.received;
  assert.equal((batch!.body.sessions as unknown[]).length, 1);
  assert.equal((batch!.body.events as unknown[]).length, 2);
  await client.close();
  await tracker.close();

  backend.received.length = 0;
  const single = demoServer();
  const eager = trackMCP(single, "org", {
    endpoint,
    enableRequestQueuing: false,
    flushInterval: 3_600_000,
    logger: recorder(),
  });
  const other = await connect(single);
  await backend.waitFor(() => backend.received.length === 1, "the session on its own");
  await other.callTool({ name: "get_weather", arguments: { city: "z" } });
  await backend.waitFor(() => backend.received.length === 2, "the event on its own");
  assert.deepEqual(
    backend.received.map((r) => [(r.body.sessions as unknown[]).length, (r.body.events as unknown[]).length]),
    [
      [1, 0],
      [0, 1],
    ],
  );
  await other.close();
  await eager.close();
  await backend.stop();
});

test("a full queue drops new items as queue_full and the calls still answer", async () => {
  const endpoint = `http://127.0.0.1:${await closedPort()}`;
  const server = demoServer();
  const tracker = trackMCP(server, "org", {
    endpoint,
    maxQueue: 2,
    batchSize: 100,
    flushInterval: 3_600_000,
    maxRetries: 0,
    logger: recorder(),
  });
  const client = await connect(server);
  for (const city of ["a", "b", "c"]) await client.callTool({ name: "get_weather", arguments: { city } });
  assert.equal(tracker.stats.dropped.queue_full, 2);
  await client.close();
  await tracker.close();
});

test("a throwing identify and a throwing logger do not reach the server", async () => {
  const backend = new FakeBackend();
  const endpoint = await backend.start();
  backend.respond = () => ({ status: 500 });
  const server = demoServer();
  const tracker = trackMCP(server, "org", {
    endpoint,
    maxRetries: 0,
    identify: () => {
      throw new Error("identify broke");
    },
    logger: {
      debug: () => undefined,
      warn: () => {
        throw new Error("logger broke");
      },
    },
  });
  const client = await connect(server);
  await client.callTool({ name: "get_weather", arguments: { city: "x" } });
  await tracker.flush();
  assert.equal(backend.sessions().length, 0); // answered 500
  assert.equal(backend.received[0]!.body.sessions instanceof Array, true);
  assert.equal((backend.received[0]!.body.sessions as Array<{ user_data: unknown }>)[0]!.user_data, null);
  await client.close();
  await tracker.close();
  await backend.stop();
});
