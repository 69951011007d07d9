/** A tracked stdio server whose backend is down writes nothing but JSON-RPC to stdout; its log goes to stderr. */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const FIXTURE = fileURLToPath(new URL("./fixtures/stdio_server.js", import.meta.url));

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test("stdout holds only JSON-RPC while tracking fails and logs on stderr", async () => {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, TRACKING_ENDPOINT: `http://127.0.0.1:${await closedPort()}` },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const waiters: Array<() => void> = [];
  const poke = (): void => waiters.splice(0).forEach((w) => w());
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => ((stdout += chunk), poke()));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => ((stderr += chunk), poke()));
  const until = async (predicate: () => boolean, what: string): Promise<void> => {
    const timer = setTimeout(() => child.kill(), 15_000);
    while (!predicate()) {
      if (child.exitCode !== null) assert.fail(`the server exited waiting for ${what}; stderr: ${stderr}`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
    clearTimeout(timer);
  };
  const send = (message: object): void => void child.stdin.write(JSON.stringify(message) + "\n");
  try {
    send({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "cli", version: "1" } },
    });
    await until(() => stdout.includes('"id":1'), "the initialize answer");
    send({ jsonrpc: "2.0", method: "notifications/initialized" });
    send({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "get_weather", arguments: { city: "Oslo" } } });
    send({ jsonrpc: "2.0", id: 3, method: "tools/list", params: {} });
    await until(() => stdout.includes('"id":3'), "the tools/list answer");
    await until(() => stderr.includes("retries_exhausted"), "the drop warning on stderr");
  } finally {
    child.stdin.end();
    child.kill();
    await once(child, "exit");
  }
  const lines = stdout.split("\n").filter((line) => line.trim() !== "");
  assert.equal(lines.length, 3);
  for (const line of lines) assert.equal((JSON.parse(line) as { jsonrpc: string }).jsonrpc, "2.0");
  assert.match(stderr, /\[agnost\] POST \/api\/v1\/capture-batch failed \(TypeError\); retry 1/);
});
