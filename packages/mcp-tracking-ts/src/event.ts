/**
 * What one tracked request becomes in its event: its name, its arguments and result (a list's names, an
 * `McpError`'s code and message), private arguments hidden, both cut to fit; and a session's bounded user data.
 * The Python SDK's rules (`mcp_gateway/tracking/middleware.py`).
 */

import { canonicalJson, capText, Redactor } from "./redact.js";
import type { Operation } from "./wire.js";

/** Most characters an event's `args` and `result` hold together. */
export const MAX_EVENT_PAYLOAD_CHARS = 24_576;
/** Most characters of a session's `user_data` as JSON; past it, only short scalar fields are kept. */
export const MAX_USER_DATA_CHARS = 4_096;
/** `error_type` of a tool result with `isError: true`. */
export const ERROR_TYPE_IS_ERROR = "ToolError";

const LISTED: Readonly<Record<string, readonly [string, string]>> = {
  "tools/list": ["tools", "name"],
  "prompts/list": ["prompts", "name"],
  "resources/list": ["resources", "uri"],
  "resources/templates/list": ["resourceTemplates", "uriTemplate"],
};

export function cut(text: string, limit: number): string {
  return text.length <= limit ? text : text.slice(0, limit);
}

export function errorName(error: unknown): string {
  if (error instanceof Error) return error.constructor?.name || error.name || "Error";
  return typeof error;
}

export function nameOf(method: string, operation: Operation, params: Record<string, unknown>): string {
  if (operation === "list") return method;
  const value = params[method === "resources/read" ? "uri" : "name"];
  return typeof value === "string" && value ? value : "(missing)";
}

export function argsOf(method: string, params: Record<string, unknown>): unknown {
  if (method === "tools/call" || method === "prompts/get") return params.arguments ?? {};
  const { _meta: _ignored, ...rest } = params;
  return rest;
}

/** What an event records as its result: a call's result without `_meta`, a list's names, an McpError's code. */
export function outputOf(method: string, result: unknown, error: unknown): unknown {
  if (error !== undefined) {
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === "number" && error instanceof Error) {
      return { error: { code, message: error.message.replace(/^MCP error -?\d+: /, "") } };
    }
    return undefined;
  }
  if (result === null || typeof result !== "object") return result ?? undefined;
  const listing = LISTED[method];
  const record = result as Record<string, unknown>;
  if (listing !== undefined) {
    const [field, key] = listing;
    const items = record[field];
    const names = Array.isArray(items) ? items.map((item) => (item as Record<string, unknown> | null)?.[key]) : [];
    const out: Record<string, unknown> = { [field]: names };
    if (record.nextCursor !== undefined) out.nextCursor = record.nextCursor;
    return out;
  }
  const { _meta: _ignored, ...rest } = record;
  return rest;
}

/** A tool's private arguments hashed, and their values hashed wherever the result repeats them. */
export function hidePrivate(
  args: Record<string, unknown>,
  output: unknown,
  names: readonly string[],
): [Record<string, unknown>, unknown] {
  const hidden = { ...args };
  const pseudonyms = new Map<string, string>();
  for (const name of names) {
    const value = hidden[name];
    if (typeof value === "string" && value.trim()) {
      hidden[name] = Redactor.hashValue(name, value);
      if (value.trim().length >= 3) pseudonyms.set(value.trim(), hidden[name] as string);
    }
  }
  if (pseudonyms.size === 0) return [hidden, output];
  const scrub = (value: unknown): unknown => {
    if (typeof value === "string") {
      let text = value;
      for (const [raw, pseudonym] of [...pseudonyms].sort((a, b) => b[0].length - a[0].length)) {
        text = text.split(raw).join(pseudonym);
      }
      return text;
    }
    if (Array.isArray(value)) return value.map(scrub);
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v)]));
    }
    return value;
  };
  return [hidden, scrub(output)];
}

export function fit(
  args: string | undefined,
  result: string | undefined,
  budget: number,
): [string | undefined, string | undefined] {
  const a = args?.length ?? 0;
  const r = result?.length ?? 0;
  if (a + r <= budget) return [args, result];
  const half = Math.floor(budget / 2);
  const margin = 48;
  if (a <= half) return [args, result === undefined ? undefined : capText(result, Math.max(0, budget - a - margin))];
  if (r <= half) return [args === undefined ? undefined : capText(args, Math.max(0, budget - r - margin)), result];
  return [
    args === undefined ? undefined : capText(args, half - margin),
    result === undefined ? undefined : capText(result, half - margin),
  ];
}

export function boundedUserData(data: Record<string, unknown>): Record<string, unknown> {
  if (canonicalJson(data).length <= MAX_USER_DATA_CHARS) return data;
  const kept: Record<string, unknown> = { _truncated: true };
  let used = 0;
  for (const [key, raw] of Object.entries(data)) {
    let value = raw;
    if (typeof value === "string") value = cut(value, 256);
    else if (value !== null && typeof value !== "number" && typeof value !== "boolean") continue;
    used += canonicalJson({ [key]: value }).length;
    if (used > MAX_USER_DATA_CHARS - 64) break;
    kept[key] = value;
  }
  return kept;
}
