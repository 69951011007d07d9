/**
 * What tracking adds to a tool call: N calls through an in-memory client, untracked, then tracked against a
 * local backend answering 200, then tracked against a port nobody listens on. Prints µs per call (median of
 * rounds, after a warm-up run) and what the tracker delivered. `npm run bench`.
 */

import { createServer } from "node:net";
import { performance } from "node:perf_hooks";

import { trackMCP } from "../src/index.js";
import { connect, demoServer, FakeBackend } from "../test/helpers.js";

const CALLS = Number(process.env.CALLS ?? 2_000);
const ROUNDS = 5;

async function perCall(
  track: (server: ReturnType<typeof demoServer>) => (() => Promise<void>) | null,
): Promise<number> {
  const server = demoServer();
  const close = track(server);
  const client = await connect(server);
  const times: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = performance.now();
    for (let i = 0; i < CALLS; i++) await client.callTool({ name: "get_weather", arguments: { city: `c${i}` } });
    times.push(((performance.now() - t0) * 1000) / CALLS);
  }
  await client.close();
  await close?.();
  return times.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const backend = new FakeBackend();
const endpoint = await backend.start();
const quiet = { debug: () => undefined, warn: () => undefined };
await perCall(() => null); // warm-up: the JIT, the SDK's schemas
const bare = await perCall(() => null);
let delivered = "";
const tracked = await perCall((server) => {
  const tracker = trackMCP(server, "org", { endpoint, batchSize: 100, logger: quiet });
  return async () => {
    await tracker.flush(30_000);
    delivered = `sent ${tracker.stats.sent}, dropped ${JSON.stringify(tracker.stats.dropped)}`;
    await tracker.close();
  };
});
const downEndpoint = `http://127.0.0.1:${await closedPort()}`;
const down = await perCall((server) => {
  const tracker = trackMCP(server, "org", { endpoint: downEndpoint, maxRetries: 0, logger: quiet });
  return () => tracker.close(1_000);
});
await backend.stop();
console.log(`tool calls: ${CALLS} x ${ROUNDS} rounds, in-memory transport, Node ${process.versions.node}`);
console.log(`untracked            ${bare.toFixed(1)} µs/call`);
console.log(`tracked, backend 200 ${tracked.toFixed(1)} µs/call (+${(tracked - bare).toFixed(1)}); ${delivered}`);
console.log(`tracked, backend down ${down.toFixed(1)} µs/call (+${(down - bare).toFixed(1)})`);
