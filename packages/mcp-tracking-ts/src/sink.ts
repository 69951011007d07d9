/**
 * `HttpSink`: a bounded in-memory queue of captured sessions and events, delivered in the background to an
 * Agnost-compatible backend.
 *
 * `submit` only appends (false when the queue is full) and never awaits, throws or does I/O. A delivery
 * starts when `batchSize` items are queued or `flushInterval` ms after the first one; one delivery runs at a
 * time and takes the queue in order, so a session always leaves before its events.
 *
 * Batches go to `POST {endpoint}/api/v1/capture-batch` (sessions first, then events, at most
 * `MAX_BATCH_SESSIONS` items a request). A backend that answers that route 404 or 405 (a plain Agnost
 * backend) is sent the seed's single routes, `/capture-session` and `/capture-event`, from then on. Every
 * request carries `X-Org-Id`.
 *
 * Per request: 2xx is delivered; a network error, a timeout, 408 or 5xx is retried after
 * `retryDelay * 2**n` ms (±50 % jitter, at most `MAX_BACKOFF_MS`); 429 (and 503) honour `Retry-After` (at
 * most `MAX_RETRY_AFTER_MS`); an event answered 404 on the single route (its session not known yet) is
 * retried likewise. After `maxRetries` retries the items are dropped (`retries_exhausted`, or
 * `session_unknown`); any other 4xx drops them at once (`http_<status>`). Drops are counted by reason and
 * logged on stderr at most once a minute per reason. Timers are unref'd: the sink never keeps a process alive.
 */

import { RateLimitedLogger } from "./log.js";
import {
  BATCH_PATH,
  EVENT_PATH,
  MAX_BATCH_SESSIONS,
  SESSION_PATH,
  type CaptureBatch,
  type CaptureItem,
} from "./wire.js";

/** Longest wait between two retries of one request. */
export const MAX_BACKOFF_MS = 30_000;
/** Longest `Retry-After` honoured; a longer one is cut to this. */
export const MAX_RETRY_AFTER_MS = 60_000;

export interface SinkSettings {
  endpoint: string;
  orgId: string;
  batchSize: number;
  flushInterval: number;
  maxQueue: number;
  maxRetries: number;
  retryDelay: number;
  timeout: number;
  useBatchEndpoint: boolean;
}

/** Delivery counters: items sent, requests retried, items dropped by reason. */
export interface SinkStats {
  sent: number;
  retried: number;
  dropped: Record<string, number>;
}

type Outcome =
  | { kind: "ok"; body: unknown }
  | { kind: "retry"; reason: string; retryAfterMs: number | null }
  | { kind: "fallback" }
  | { kind: "reject"; status: number };

/** Milliseconds a `Retry-After` header asks for (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (!value) return null;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const when = Date.parse(text);
  return Number.isNaN(when) ? null : Math.max(0, when - now);
}

const SESSION_NOT_KNOWN = "session not known yet";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

const openSinks = new Set<HttpSink>();
let watchingExit = false;

/** One `beforeExit` listener for every open sink: a script that simply ends delivers what is still queued. */
function watchExit(sink: HttpSink): void {
  openSinks.add(sink);
  if (watchingExit) return;
  watchingExit = true;
  process.on("beforeExit", () => {
    for (const open of openSinks) open.deliverLeftovers();
  });
}

export class HttpSink {
  readonly stats: SinkStats = { sent: 0, retried: 0, dropped: {} };
  private readonly queue: CaptureItem[] = [];
  private readonly base: string;
  private batchMode: boolean;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private closed = false;

  constructor(
    readonly settings: SinkSettings,
    private readonly log: RateLimitedLogger,
  ) {
    this.base = settings.endpoint.replace(/\/+$/, "");
    this.batchMode = settings.useBatchEndpoint;
    watchExit(this);
  }

  /** @internal At `beforeExit`: start delivering what is still queued (the delivery keeps the loop alive). */
  deliverLeftovers(): void {
    if (this.queue.length > 0 && this.running === null) this.kick();
  }

  /** False once the backend said it has no batch route. */
  get usesBatchEndpoint(): boolean {
    return this.batchMode;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Queue one item; false (and counted) when the sink is closed or the queue is full. Never throws. */
  submit(item: CaptureItem): boolean {
    if (this.closed) {
      this.drop("closed", 1);
      return false;
    }
    if (this.queue.length >= this.settings.maxQueue) {
      this.drop("queue_full", 1);
      return false;
    }
    this.queue.push(item);
    if (this.queue.length >= this.settings.batchSize) {
      this.kick();
    } else if (this.timer === null && this.running === null) {
      this.timer = setTimeout(() => this.kick(), this.settings.flushInterval);
      this.timer.unref();
    }
    return true;
  }

  /** Deliver everything queued so far; false if `timeoutMs` ran out first. */
  async flush(timeoutMs: number = 5_000): Promise<boolean> {
    const done = (async (): Promise<boolean> => {
      while (this.queue.length > 0 || this.running !== null) {
        if (this.running === null) this.kick();
        await this.running;
      }
      return true;
    })();
    let timer: NodeJS.Timeout | undefined;
    // Not unref'd: a caller awaiting flush() keeps the process alive until it is done or times out.
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([done, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Flush (at most `timeoutMs`), then refuse further items; what is left is dropped as `shutdown`. */
  async close(timeoutMs: number = 5_000): Promise<void> {
    await this.flush(timeoutMs);
    this.closed = true;
    openSinks.delete(this);
    if (this.timer !== null) clearTimeout(this.timer);
    const left = this.queue.splice(0);
    if (left.length > 0) this.drop("shutdown", left.length);
  }

  private kick(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.running !== null) return;
    this.running = this.pump()
      .catch((error: unknown) => this.log.warn("pump", `tracking delivery failed: ${String(error)}`))
      .finally(() => {
        this.running = null;
        if (this.queue.length >= this.settings.batchSize) {
          this.kick();
        } else if (this.queue.length > 0 && this.timer === null && !this.closed) {
          this.timer = setTimeout(() => this.kick(), this.settings.flushInterval);
          this.timer.unref();
        }
      });
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH_SESSIONS);
      await this.deliver(batch);
    }
  }

  private async deliver(items: CaptureItem[]): Promise<void> {
    if (this.batchMode) {
      const body: CaptureBatch = { sessions: [], events: [] };
      for (const item of items) {
        if (item.kind === "session") body.sessions.push(item.body);
        else body.events.push(item.body);
      }
      const outcome = await this.send(BATCH_PATH, body);
      if (outcome.kind === "ok") {
        this.countBatch(items.length, outcome.body);
        return;
      }
      if (outcome.kind !== "fallback") {
        this.fail(outcome, items.length, "retries_exhausted");
        return;
      }
      this.batchMode = false;
      this.log.debug("the backend has no /capture-batch: sending single items");
    }
    for (const item of items) {
      const outcome = await this.send(item.kind === "session" ? SESSION_PATH : EVENT_PATH, item.body);
      if (outcome.kind === "ok") this.stats.sent += 1;
      else this.fail(outcome, 1, "retries_exhausted");
    }
  }

  /** A `/capture-batch` answer says per item whether it was stored: events of an unknown session were not. */
  private countBatch(count: number, body: unknown): void {
    const events = (body as { events?: unknown } | null)?.events;
    let unknown = 0;
    if (Array.isArray(events)) {
      unknown = events.filter((e) => (e as { status?: unknown } | null)?.status === "unknown_session").length;
    }
    this.stats.sent += count - unknown;
    if (unknown > 0) this.drop("session_unknown", unknown);
  }

  private fail(outcome: Outcome, count: number, exhausted: string): void {
    if (outcome.kind === "reject") this.drop(`http_${outcome.status}`, count);
    else if (outcome.kind === "retry" && outcome.reason === SESSION_NOT_KNOWN) this.drop("session_unknown", count);
    else this.drop(exhausted, count);
  }

  private drop(reason: string, count: number): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + count;
    this.log.warn(reason, `tracking dropped ${count} item(s): ${reason} (counted in tracker.stats.dropped)`);
  }

  /** POST with retries; resolves to the last outcome, never rejects. */
  private async send(path: string, body: unknown): Promise<Outcome> {
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.post(path, body);
      if (outcome.kind !== "retry" || attempt >= this.settings.maxRetries) return outcome;
      this.stats.retried += 1;
      const delay = this.backoff(attempt, outcome.retryAfterMs);
      this.log.debug(`POST ${path} failed (${outcome.reason}); retry ${attempt + 1} in ${Math.round(delay)} ms`);
      await sleep(delay);
    }
  }

  private backoff(attempt: number, retryAfterMs: number | null): number {
    if (retryAfterMs !== null) return Math.min(retryAfterMs, MAX_RETRY_AFTER_MS);
    const delay = this.settings.retryDelay * 2 ** attempt * (0.5 + Math.random());
    return Math.min(delay, MAX_BACKOFF_MS);
  }

  private async post(path: string, body: unknown): Promise<Outcome> {
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "X-Org-Id": this.settings.orgId,
          "User-Agent": "mcp-gateway-tracking-ts",
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.settings.timeout),
      });
    } catch (error: unknown) {
      const name = error instanceof Error ? error.name : "Error";
      return { kind: "retry", reason: name, retryAfterMs: null };
    }
    const status = response.status;
    let answer: unknown = null;
    try {
      const text = await response.text();
      answer = status >= 200 && status < 300 && text ? JSON.parse(text) : null;
    } catch {
      answer = null; // a 2xx with a body we cannot read is still delivered
    }
    this.log.debug(`POST ${path}: HTTP ${status}`);
    if (status >= 200 && status < 300) return { kind: "ok", body: answer };
    if (status === 408 || status === 429 || status >= 500) {
      const retryAfter = status === 429 || status === 503 ? parseRetryAfter(response.headers.get("retry-after")) : null;
      return { kind: "retry", reason: `HTTP ${status}`, retryAfterMs: retryAfter };
    }
    if (path === BATCH_PATH && (status === 404 || status === 405)) return { kind: "fallback" };
    if (path === EVENT_PATH && status === 404) return { kind: "retry", reason: SESSION_NOT_KNOWN, retryAfterMs: null };
    return { kind: "reject", status };
  }
}
