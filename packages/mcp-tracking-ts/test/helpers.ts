/** Test helpers: a fake Agnost backend on loopback, a small tracked McpServer and a client linked in memory. */

import { once } from "node:events";
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";

export interface Received {
  path: string;
  orgId: string | undefined;
  body: Record<string, unknown>;
}

/** How the fake backend answers a request: a status (and headers), or `"hang"` to never answer. */
export type Answer = { status: number; headers?: Record<string, string>; body?: unknown } | "hang";

/** A fake Agnost-compatible backend: records every request and answers with `respond` (200 by default). */
export class FakeBackend {
  readonly received: Received[] = [];
  respond: (path: string, count: number) => Answer = () => ({ status: 200 });
  private readonly server: HttpServer;
  private readonly hanging: ServerResponse[] = [];
  private waiters: Array<() => void> = [];

  constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<string> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.server.unref(); // a test that fails before stop() must not hold its process open
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, "close");
  }

  sessions(): Record<string, unknown>[] {
    return this.items("sessions", "/api/v1/capture-session");
  }

  events(): Record<string, unknown>[] {
    return this.items("events", "/api/v1/capture-event");
  }

  /** Resolves once `predicate` holds over what was received (checked on every request); rejects after 10 s. */
  async waitFor(predicate: () => boolean, what: string): Promise<void> {
    if (predicate()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10_000);
      const check = (): void => {
        if (predicate()) {
          clearTimeout(timer);
          resolve();
        } else {
          this.waiters.push(check);
        }
      };
      this.waiters.push(check);
    });
  }

  private items(field: "sessions" | "events", single: string): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const request of this.received) {
      if (this.accepted(request) === false) continue;
      if (request.path === "/api/v1/capture-batch") out.push(...(request.body[field] as Record<string, unknown>[]));
      else if (request.path === single) out.push(request.body);
    }
    return out;
  }

  private readonly statuses = new Map<Received, number>();

  private accepted(request: Received): boolean {
    const status = this.statuses.get(request) ?? 200;
    return status >= 200 && status < 300;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const request: Received = {
      path: req.url ?? "",
      orgId: req.headers["x-org-id"] as string | undefined,
      body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>,
    };
    this.received.push(request);
    const answer = this.respond(request.path, this.received.length);
    if (answer === "hang") {
      this.statuses.set(request, 0);
      this.hanging.push(res);
    } else {
      this.statuses.set(request, answer.status);
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
      res.end(JSON.stringify(answer.body ?? { success: answer.status < 300 }));
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }
}

/** An McpServer with a tool that echoes, one that fails, one that throws, a resource and a prompt. */
export function demoServer(): McpServer {
  const server = new McpServer({ name: "demo", version: "1.0.0" });
  server.registerTool(
    "get_weather",
    { description: "Weather for a city", inputSchema: { city: z.string(), email: z.string().optional() } },
    async ({ city, email }) => ({
      content: [{ type: "text", text: JSON.stringify({ city, temperature: 18, contact: email ?? null }) }],
    }),
  );
  server.registerTool("fails", { description: "Always an isError result" }, async () => ({
    isError: true,
    content: [{ type: "text", text: "no luck" }],
  }));
  server.registerResource("readme", "file:///readme.txt", { mimeType: "text/plain" }, async (uri) => ({
    contents: [{ uri: uri.href, text: "hello" }],
  }));
  server.registerPrompt("review", { argsSchema: { code: z.string() } }, ({ code }) => ({
    messages: [{ role: "user", content: { type: "text", text: `Review ${code}` } }],
  }));
  return server;
}

/** A client connected to `server` in memory (stands for one connection). */
export async function connect(
  server: McpServer | { connect: McpServer["connect"] },
  name = "test-client",
): Promise<Client> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name, version: "9.9.9" });
  await client.connect(clientSide);
  return client;
}
