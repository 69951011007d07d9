/**
 * `trackMCP`'s options: the seed's names (the Agnost TypeScript SDK's), the same options and defaults as the
 * Python SDK (`track_mcp`), validated once so that a bad value is a clear `TypeError`/`RangeError` at start-up.
 * Times are milliseconds.
 */

import type { Logger } from "./log.js";
import { DEFAULT_SENSITIVE_KEYS } from "./redact.js";

export const DEFAULT_ENDPOINT = "https://api.agnost.ai";
export const DEFAULT_BATCH_SIZE = 5;
export const DEFAULT_FLUSH_INTERVAL = 2_000;
export const DEFAULT_MAX_QUEUE = 10_000;
export const DEFAULT_MAX_RETRIES = 3;
export const DEFAULT_RETRY_DELAY = 1_000;
export const DEFAULT_TIMEOUT = 3_000;
export const DEFAULT_MAX_SESSIONS = 10_000;
export const DEFAULT_TOOLS_TTL = 60_000;

/** What `identify` is given: the HTTP request's info (headers, URL) or `undefined` on stdio. */
export interface IdentifyRequest {
  headers?: Record<string, string | string[] | undefined>;
  url?: URL;
}

/** The user data of a session, or nothing. */
export type UserData = Record<string, unknown> | null | undefined;

/**
 * `identify(request, env, extra)`: `request` is the HTTP request info (`undefined` on stdio), `env` is
 * `process.env`, `extra` the SDK's `RequestHandlerExtra` of the `initialize` (or first) request.
 */
export type IdentifyFn = (
  request: IdentifyRequest | undefined,
  env: NodeJS.ProcessEnv,
  extra: unknown,
) => UserData | Promise<UserData>;

export interface TrackOptions {
  /** Base URL of an Agnost-compatible backend (mcp-gateway: `http://127.0.0.1:8000`). */
  endpoint?: string;
  /** A session's `user_data`. */
  identify?: IdentifyFn;
  /** Never send arguments (`args`). */
  disableInput?: boolean;
  /** Never send results (`result`). */
  disableOutput?: boolean;
  /** Batch items (true) or send each one as soon as it is captured, still in the background (false). */
  enableRequestQueuing?: boolean;
  /** Items that make a batch (5). */
  batchSize?: number;
  /** Retries of one request before its items are dropped (3). */
  maxRetries?: number;
  /** Milliseconds before the first retry, doubled each further one (1000). */
  retryDelay?: number;
  /** Keys whose values are hashed (prefix or suffix of the normalised key); replaces the default list. */
  sensitiveKeys?: readonly string[];
  /** Milliseconds a partial batch waits before it is sent anyway (2000). */
  flushInterval?: number;
  /** Items held in memory awaiting delivery; more are dropped (10000). */
  maxQueue?: number;
  /** Milliseconds one HTTP request may take (3000). */
  timeout?: number;
  /** Session keys remembered at once, least recently used forgotten first (10000). */
  maxSessions?: number;
  /** Send batches to `/api/v1/capture-batch` first (true); false: the seed's single routes only. */
  useBatchEndpoint?: boolean;
  /** Tool name -> argument names whose string values are hashed in its args and result. */
  privateArguments?: Record<string, readonly string[]>;
  /** Write debug lines (each request to the backend, each retry) to stderr. */
  debug?: boolean;
  /** Where the SDK logs instead of stderr. */
  logger?: Logger;
}

export interface Settings {
  orgId: string;
  endpoint: string;
  identify: IdentifyFn | undefined;
  disableInput: boolean;
  disableOutput: boolean;
  enableRequestQueuing: boolean;
  batchSize: number;
  maxRetries: number;
  retryDelay: number;
  sensitiveKeys: readonly string[];
  flushInterval: number;
  maxQueue: number;
  timeout: number;
  maxSessions: number;
  useBatchEndpoint: boolean;
  privateArguments: Record<string, readonly string[]>;
  debug: boolean;
  logger: Logger | undefined;
}

const KNOWN = new Set([
  "endpoint",
  "identify",
  "disableInput",
  "disableOutput",
  "enableRequestQueuing",
  "batchSize",
  "maxRetries",
  "retryDelay",
  "sensitiveKeys",
  "flushInterval",
  "maxQueue",
  "timeout",
  "maxSessions",
  "useBatchEndpoint",
  "privateArguments",
  "debug",
  "logger",
]);

function int(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value))
    throw new TypeError(`trackMCP: ${name} must be an integer`);
  if (value < min || value > max) throw new RangeError(`trackMCP: ${name} must be between ${min} and ${max}`);
  return value;
}

function num(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value)) throw new TypeError(`trackMCP: ${name} must be a number`);
  if (value < min || value > max) throw new RangeError(`trackMCP: ${name} must be between ${min} and ${max}`);
  return value;
}

function bool(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw new TypeError(`trackMCP: ${name} must be a boolean`);
  return value;
}

/** The options validated, with defaults; throws `TypeError`/`RangeError` naming the bad option. */
export function settingsOf(orgId: unknown, options: TrackOptions = {}): Settings {
  if (typeof orgId !== "string" || orgId.trim() === "" || orgId.length > 256) {
    throw new TypeError("trackMCP: orgId must be a non-empty string of at most 256 characters");
  }
  if (options === null || typeof options !== "object") throw new TypeError("trackMCP: options must be an object");
  const unknown = Object.keys(options).filter((key) => !KNOWN.has(key));
  if (unknown.length > 0) throw new TypeError(`trackMCP: unknown option(s): ${unknown.sort().join(", ")}`);
  const endpoint = options.endpoint ?? DEFAULT_ENDPOINT;
  if (typeof endpoint !== "string" || !/^https?:\/\/\S+$/.test(endpoint)) {
    throw new TypeError("trackMCP: endpoint must be an http(s) URL");
  }
  if (options.identify !== undefined && typeof options.identify !== "function") {
    throw new TypeError("trackMCP: identify must be a function");
  }
  const sensitiveKeys = options.sensitiveKeys ?? DEFAULT_SENSITIVE_KEYS;
  if (!Array.isArray(sensitiveKeys) || sensitiveKeys.some((key) => typeof key !== "string")) {
    throw new TypeError("trackMCP: sensitiveKeys must be an array of strings");
  }
  const privateArguments = options.privateArguments ?? {};
  if (
    privateArguments === null ||
    typeof privateArguments !== "object" ||
    Object.values(privateArguments).some((names) => !Array.isArray(names) || names.some((n) => typeof n !== "string"))
  ) {
    throw new TypeError("trackMCP: privateArguments must map tool names to arrays of argument names");
  }
  const enableRequestQueuing = bool("enableRequestQueuing", options.enableRequestQueuing, true);
  return {
    orgId,
    endpoint,
    identify: options.identify,
    disableInput: bool("disableInput", options.disableInput, false),
    disableOutput: bool("disableOutput", options.disableOutput, false),
    enableRequestQueuing,
    batchSize: enableRequestQueuing ? int("batchSize", options.batchSize, DEFAULT_BATCH_SIZE, 1, 100) : 1,
    maxRetries: int("maxRetries", options.maxRetries, DEFAULT_MAX_RETRIES, 0, 20),
    retryDelay: num("retryDelay", options.retryDelay, DEFAULT_RETRY_DELAY, 0, 30_000),
    sensitiveKeys,
    flushInterval: num("flushInterval", options.flushInterval, DEFAULT_FLUSH_INTERVAL, 1, 3_600_000),
    maxQueue: int("maxQueue", options.maxQueue, DEFAULT_MAX_QUEUE, 1, 10_000_000),
    timeout: num("timeout", options.timeout, DEFAULT_TIMEOUT, 1, 120_000),
    maxSessions: int("maxSessions", options.maxSessions, DEFAULT_MAX_SESSIONS, 1, 10_000_000),
    useBatchEndpoint: bool("useBatchEndpoint", options.useBatchEndpoint, true),
    privateArguments,
    debug: bool("debug", options.debug, process.env.AGNOST_DEBUG === "1"),
    logger: options.logger,
  };
}
