/**
 * `trackMCP(server, orgId, options)`: records a server's MCP traffic as Agnost sessions and events.
 *
 * It wraps the request handlers of the SDK's `Protocol` (the low-level `Server`, or an `McpServer`'s
 * `.server`) in place, those registered already and those registered later (`McpServer` registers its
 * `tools/*` handlers when the first tool is added). Tools, their schemas and the server's behaviour are left
 * alone: each wrapper calls the original handler with the same arguments and returns (or throws) exactly what
 * it did.
 *
 * A session is one client connection: submitted as soon as its `initialize` succeeds (or with the first
 * tracked request of a connection that never initialized here), keyed by the transport's session id
 * (Streamable HTTP) or else the transport object itself (stdio, SSE, in-memory). Tracked requests:
 * `tools/call`, `resources/read`, `prompts/get` (operation `call`, named by the tool or prompt name or the
 * resource URI) and `tools/list`, `resources/list`, `resources/templates/list`, `prompts/list` (operation
 * `list`, named by the method, their result recorded as the names listed). A thrown error is
 * `success: false` with its name as `error_type` (an `McpError`'s result is `{"error": {code, message}}`); a
 * tool result with `isError: true` is `success: false`, `error_type: "ToolError"`.
 *
 * Nothing here throws into the server: the tracking's own failures are logged (stderr, rate-limited) and
 * counted in `tracker.stats.dropped.capture_error`.
 */

import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";

import { RateLimitedLogger, stderrLogger } from "./log.js";
import { settingsOf, DEFAULT_TOOLS_TTL, type IdentifyRequest, type Settings, type TrackOptions } from "./options.js";
import {
  argsOf,
  boundedUserData,
  cut,
  ERROR_TYPE_IS_ERROR,
  errorName,
  fit,
  hidePrivate,
  MAX_EVENT_PAYLOAD_CHARS,
  nameOf,
  outputOf,
} from "./event.js";
import { Redactor } from "./redact.js";
import { HttpSink, type SinkStats } from "./sink.js";
import type { CaptureEvent, CaptureSession, Operation, PrimitiveType } from "./wire.js";

/** Longest `identify` or the server's tool listing may take when a session starts. */
export const SESSION_LOOKUP_TIMEOUT_MS = 1_000;

export const TRACKED_METHODS: Readonly<Record<string, readonly [PrimitiveType, Operation]>> = {
  "tools/call": ["tool", "call"],
  "resources/read": ["resource", "call"],
  "prompts/get": ["prompt", "call"],
  "tools/list": ["tool", "list"],
  "resources/list": ["resource", "list"],
  "resources/templates/list": ["resource", "list"],
  "prompts/list": ["prompt", "list"],
};

const WRAPPED = Symbol.for("mcp-gateway.tracking.wrapped");
const TRACKED = Symbol.for("mcp-gateway.tracking.tracker");

type JsonRpcRequest = { method: string; params?: Record<string, unknown> };
type Extra = {
  sessionId?: string;
  requestInfo?: IdentifyRequest;
  [key: string]: unknown;
};
type Handler = ((request: JsonRpcRequest, extra: Extra) => Promise<unknown>) & { [WRAPPED]?: Handler };

/** What `trackMCP` needs of a server: the SDK `Protocol`'s handler map (`Server`), or `.server` (`McpServer`). */
interface ProtocolLike {
  _requestHandlers: Map<string, Handler>;
  transport?: unknown;
  [TRACKED]?: Tracker;
}

/** Anything `trackMCP` accepts: an `McpServer` or a low-level `Server` of `@modelcontextprotocol/sdk` 1.x. */
export type TrackableServer = object;

function protocolOf(server: TrackableServer): ProtocolLike {
  const inner = (server as { server?: unknown }).server;
  for (const candidate of [server, inner]) {
    const handlers = (candidate as { _requestHandlers?: unknown } | undefined)?._requestHandlers;
    if (handlers instanceof Map) return candidate as ProtocolLike;
  }
  throw new TypeError("trackMCP wraps an McpServer or a low-level Server of @modelcontextprotocol/sdk 1.x");
}

function transportName(transport: unknown, extra: Extra): string {
  const name = (transport as { constructor?: { name?: string } } | undefined)?.constructor?.name ?? "";
  if (name.startsWith("Stdio")) return "stdio";
  if (name.startsWith("StreamableHTTP") || name.startsWith("WebStandardStreamableHTTP")) return "streamable-http";
  if (name.startsWith("SSE")) return "sse";
  if (name.startsWith("InMemory")) return "in-memory";
  if (extra.requestInfo !== undefined) return extra.sessionId ? "streamable-http" : "http";
  return cut(name.replace(/Transport$/, "").toLowerCase(), 32);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The handle `trackMCP` returns: counters, `flush()` and `close()`. */
export class Tracker {
  readonly sink: HttpSink;
  private readonly log: RateLimitedLogger;
  private readonly redactor: Redactor;
  private readonly sessions = new Map<string, Promise<string | null>>();
  private readonly byTransport = new WeakMap<object, string>();
  private readonly clients = new WeakMap<object, string>();
  private toolNames: string[] | null = null;
  private toolNamesAt = 0;
  private detached = false;
  private readonly ownsSink: boolean;

  constructor(
    private readonly protocol: ProtocolLike,
    readonly settings: Settings,
    sink?: HttpSink,
  ) {
    this.log = new RateLimitedLogger(settings.logger ?? stderrLogger(settings.debug));
    this.redactor = new Redactor(settings.sensitiveKeys);
    this.ownsSink = sink === undefined;
    this.sink = sink ?? new HttpSink(settings, this.log);
  }

  /** Track another server (one made per HTTP session, say) with these options, through this tracker's queue. */
  track(server: TrackableServer): Tracker {
    return trackWith(server, this.settings, this.sink);
  }

  /** Items delivered, requests retried, items dropped by reason. */
  get stats(): SinkStats {
    return this.sink.stats;
  }

  /** Deliver everything captured so far; false if `timeoutMs` ran out first. */
  flush(timeoutMs?: number): Promise<boolean> {
    return this.sink.flush(timeoutMs);
  }

  /**
   * Stop recording (the original handlers are put back) and deliver what is left, waiting at most `timeoutMs`;
   * a tracker made by `track()` only flushes the queue it shares.
   */
  async close(timeoutMs?: number): Promise<void> {
    this.detach();
    if (this.ownsSink) await this.sink.close(timeoutMs);
    else await this.sink.flush(timeoutMs);
  }

  /** Put the original handlers back; nothing more is recorded. */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    const handlers = this.protocol._requestHandlers;
    for (const [method, handler] of handlers) {
      const original = handler[WRAPPED];
      if (original !== undefined) Map.prototype.set.call(handlers, method, original);
    }
    delete (handlers as { set?: unknown }).set;
    delete this.protocol[TRACKED];
  }

  /** @internal Wrap the handlers there are and those to come. */
  install(): void {
    const handlers = this.protocol._requestHandlers;
    for (const [method, handler] of handlers) Map.prototype.set.call(handlers, method, this.wrap(method, handler));
    const tracker = this;
    Object.defineProperty(handlers, "set", {
      configurable: true,
      writable: true,
      value(method: string, handler: Handler): Map<string, Handler> {
        return Map.prototype.set.call(handlers, method, tracker.wrap(method, handler)) as Map<string, Handler>;
      },
    });
    this.protocol[TRACKED] = this;
  }

  private wrap(method: string, handler: Handler): Handler {
    if (handler[WRAPPED] !== undefined) return handler;
    const spec = TRACKED_METHODS[method];
    let wrapped: Handler;
    if (method === "initialize") {
      wrapped = async (request, extra) => {
        const result = await handler(request, extra);
        await this.connected(request, extra);
        return result;
      };
    } else if (spec !== undefined) {
      wrapped = async (request, extra) => {
        if (this.detached) return handler(request, extra);
        const started = Date.now();
        const t0 = performance.now();
        let result: unknown;
        try {
          result = await handler(request, extra);
        } catch (error: unknown) {
          await this.record(spec, request, extra, started, performance.now() - t0, undefined, error);
          throw error;
        }
        await this.record(spec, request, extra, started, performance.now() - t0, result, undefined);
        return result;
      };
    } else {
      return handler;
    }
    wrapped[WRAPPED] = handler;
    return wrapped;
  }

  // -- sessions -------------------------------------------------------------------------------------------

  private async connected(request: JsonRpcRequest, extra: Extra): Promise<void> {
    if (this.detached) return;
    try {
      const info = request.params?.clientInfo as { name?: unknown; version?: unknown } | undefined;
      const client = [info?.name, info?.version].filter((p) => typeof p === "string" && p).join(" ");
      const transport = this.protocol.transport;
      if (client && transport !== null && typeof transport === "object") this.clients.set(transport, client);
      await this.sessionFor(extra);
    } catch (error: unknown) {
      this.captureError("initialize", error);
    }
  }

  private keyOf(extra: Extra): string {
    if (extra.sessionId) return `sid:${extra.sessionId}`;
    const transport = this.protocol.transport;
    if (transport !== null && typeof transport === "object") {
      let key = this.byTransport.get(transport);
      if (key === undefined) {
        key = `conn:${randomUUID()}`;
        this.byTransport.set(transport, key);
      }
      return key;
    }
    return "server";
  }

  /** The request's session id, the session submitted first if it is new; null if it could not be queued. */
  private sessionFor(extra: Extra): Promise<string | null> {
    const key = this.keyOf(extra);
    let pending = this.sessions.get(key);
    if (pending !== undefined) {
      this.sessions.delete(key); // least recently used first: re-insert at the end
      this.sessions.set(key, pending);
      return pending;
    }
    pending = this.openSession(extra).then((id) => {
      if (id === null) this.sessions.delete(key); // the next request tries again
      return id;
    });
    this.sessions.set(key, pending);
    while (this.sessions.size > this.settings.maxSessions) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    return pending;
  }

  private async openSession(extra: Extra): Promise<string | null> {
    const [userData, tools] = await Promise.all([this.userData(extra), this.tools(extra)]);
    const transport = this.protocol.transport;
    const client = (transport !== null && typeof transport === "object" && this.clients.get(transport)) || "unknown";
    const kind = transportName(transport, extra);
    const session: CaptureSession = {
      session_id: randomUUID(),
      client_config: cut(client, 256),
      connection_type: cut(kind, 64),
      ip: "",
      tools: tools.slice(0, 1000).map((name) => cut(name, 256)),
      user_data: userData,
      timestamp: Date.now(),
      transport: cut(kind, 32) || null,
    };
    if (!this.sink.submit({ kind: "session", body: session })) return null;
    return session.session_id;
  }

  private async userData(extra: Extra): Promise<Record<string, unknown> | null> {
    const identify = this.settings.identify;
    if (identify === undefined) return null;
    let data: unknown;
    try {
      data = await withTimeout(
        Promise.resolve(identify(extra.requestInfo, process.env, extra)),
        SESSION_LOOKUP_TIMEOUT_MS,
      );
    } catch (error: unknown) {
      this.log.warn("identify", `tracking: identify() threw; the session has no user data: ${String(error)}`);
      return null;
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) return null;
    return boundedUserData(this.redactor.redact(data) as Record<string, unknown>);
  }

  /** The server's tool names: from the last first-page `tools/list`, else its own `tools/list` handler. */
  private async tools(extra: Extra): Promise<string[]> {
    if (this.toolNames !== null && Date.now() - this.toolNamesAt < DEFAULT_TOOLS_TTL) return this.toolNames;
    const handler = this.protocol._requestHandlers.get("tools/list");
    const original = handler?.[WRAPPED] ?? handler;
    if (original === undefined) return [];
    try {
      const result = await withTimeout(
        original({ method: "tools/list", params: {} }, extra),
        SESSION_LOOKUP_TIMEOUT_MS,
      );
      if (result !== undefined) this.observeTools(result);
    } catch (error: unknown) {
      this.log.warn("tools", `tracking could not list the server's tools: ${String(error)}`);
    }
    return this.toolNames ?? [];
  }

  private observeTools(result: unknown): void {
    const tools = (result as { tools?: unknown } | null)?.tools;
    if (!Array.isArray(tools)) return;
    this.toolNames = tools
      .map((tool) => (tool as { name?: unknown } | null)?.name)
      .filter((name): name is string => typeof name === "string");
    this.toolNamesAt = Date.now();
  }

  // -- events ---------------------------------------------------------------------------------------------

  private async record(
    spec: readonly [PrimitiveType, Operation],
    request: JsonRpcRequest,
    extra: Extra,
    started: number,
    latency: number,
    result: unknown,
    error: unknown,
  ): Promise<void> {
    try {
      if (request.method === "tools/list" && error === undefined && !request.params?.cursor) this.observeTools(result);
      const sessionId = await this.sessionFor(extra);
      if (sessionId === null) {
        this.sink.stats.dropped.session_not_queued = (this.sink.stats.dropped.session_not_queued ?? 0) + 1;
        return;
      }
      this.sink.submit({ kind: "event", body: this.event(spec, request, sessionId, started, latency, result, error) });
    } catch (captureError: unknown) {
      this.captureError(request.method, captureError);
    }
  }

  private captureError(method: string, error: unknown): void {
    this.sink.stats.dropped.capture_error = (this.sink.stats.dropped.capture_error ?? 0) + 1;
    this.log.warn("capture_error", `tracking could not record ${method}: ${String(error)}`);
  }

  private event(
    [primitiveType, operation]: readonly [PrimitiveType, Operation],
    request: JsonRpcRequest,
    sessionId: string,
    started: number,
    latency: number,
    result: unknown,
    error: unknown,
  ): CaptureEvent {
    const params = request.params ?? {};
    const isError = error === undefined && (result as { isError?: unknown } | null)?.isError === true;
    let argumentsOf = argsOf(request.method, params);
    let output = outputOf(request.method, result, error);
    const privateNames =
      request.method === "tools/call" ? this.settings.privateArguments[String(params.name)] : undefined;
    if (privateNames !== undefined && argumentsOf !== null && typeof argumentsOf === "object") {
      [argumentsOf, output] = hidePrivate(argumentsOf as Record<string, unknown>, output, privateNames);
    }
    let args = this.settings.disableInput ? undefined : this.redactor.toJsonText(argumentsOf);
    let resultText = this.settings.disableOutput || output === undefined ? undefined : this.redactor.toJsonText(output);
    [args, resultText] = fit(args, resultText, MAX_EVENT_PAYLOAD_CHARS);
    const errorType = error !== undefined ? errorName(error) : isError ? ERROR_TYPE_IS_ERROR : null;
    const event: CaptureEvent = {
      session_id: sessionId,
      primitive_type: primitiveType,
      primitive_name: cut(this.redactor.redactString(nameOf(request.method, operation, params)), 512),
      latency: Math.max(0, latency),
      success: error === undefined && !isError,
      event_id: randomUUID(),
      timestamp: started,
      error_type: errorType === null ? null : cut(errorType, 128),
      operation,
    };
    if (args !== undefined) event.args = args;
    if (resultText !== undefined) event.result = resultText;
    return event;
  }
}

/**
 * Track `server` (an `McpServer` or a low-level `Server`) for `orgId`: every session and tool, resource and
 * prompt request goes to `options.endpoint` in the background. Throws only for bad arguments (a `TypeError`
 * or `RangeError` naming the option) or a server that is already tracked; never afterwards.
 *
 * A server made per HTTP session is tracked through the first tracker's queue with `tracker.track(server)`.
 */
export function trackMCP(server: TrackableServer, orgId: string, options: TrackOptions = {}): Tracker {
  if (server === null || typeof server !== "object") throw new TypeError("trackMCP: server must be an MCP server");
  const settings = settingsOf(orgId, options);
  return trackWith(server, settings, undefined);
}

/** @internal */
export function trackWith(server: TrackableServer, settings: Settings, sink: HttpSink | undefined): Tracker {
  const protocol = protocolOf(server);
  if (protocol[TRACKED] !== undefined) {
    throw new Error("this server is already tracked; close() its tracker before tracking it again");
  }
  const tracker = new Tracker(protocol, settings, sink);
  tracker.install();
  return tracker;
}
