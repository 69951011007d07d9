/**
 * Privacy before anything leaves the process, the Python SDK's rules (`mcp_gateway/privacy.py`, `pii.py`):
 *
 * - A key is sensitive when, lower-cased with `_` and `-` removed, it starts or ends with one of the
 *   sensitive keys (`email`, `user_email`, `userEmail`, `access_token`, `X-Api-Key` all match;
 *   `className` does not match `ssn`), or when its first or last word is a phone word (`mobile`,
 *   `home_tel`; not `hotel`). Its value, whatever its type, becomes `"sha256:" + hex` of the trimmed text
 *   (lower-cased under an email key), or of canonical JSON for a non-string.
 * - Strings are scanned for email addresses and phone numbers, hashed in place; a string holding a JSON
 *   object or array is parsed, redacted and re-encoded.
 * - A pseudonym (`sha256:` + 64 hex digits) is left alone, so redacting twice changes nothing.
 *
 * Every pattern here is linear: bounded quantifiers, and matches start only where a token starts.
 */

import { createHash } from "node:crypto";

export const DEFAULT_SENSITIVE_KEYS: readonly string[] = [
  "email",
  "phone",
  "password",
  "passwd",
  "secret",
  "token",
  "api_key",
  "apikey",
  "authorization",
  "cookie",
  "ssn",
  "credit_card",
  "card_number",
];

const PHONE_KEY_WORDS = new Set([
  "phone",
  "phonenumber",
  "mobile",
  "cell",
  "cellphone",
  "tel",
  "telephone",
  "msisdn",
  "fax",
  "whatsapp",
]);

/** Longest `args` / `result` text kept; longer text is cut and marked. */
export const MAX_PAYLOAD_CHARS = 16_384;
/** Deepest nesting walked; deeper values become a marker. */
export const MAX_DEPTH = 32;
/** Longest JSON-looking string parsed for redaction; a longer one is replaced by a marker. */
export const MAX_PARSE_CHARS = 1_000_000;

const HASHED = /^sha256:[0-9a-f]{64}$/;
const EMAIL_IN_TEXT =
  /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}/g;
const PHONE_IN_TEXT =
  /(?<![\w+.:/-])(?:\+\d{1,3}[ .-]?(?:\(\d{1,5}\)[ .-]?)?\d|\(\d{1,5}\)[ .-]?\d|\d)(?:[ .-]?\d){5,16}(?![\w+]|[.:/-]?\d)/g;
const DATE_START = /^(?:\d{4}[-./]\d{2}[-./]\d{2}|\d{2}[-./]\d{2}[-./]\d{4})/;
const KEY_WORDS = /[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])/g;
const TOO_DEEP = "[omitted: nested too deep]";

export function hashText(text: string): string {
  return "sha256:" + createHash("sha256").update(text, "utf8").digest("hex");
}

function normaliseKey(key: string): string {
  return key.toLowerCase().replaceAll("_", "").replaceAll("-", "");
}

function digitsOf(text: string): string {
  return text.replace(/\D/g, "");
}

/** Whether a `PHONE_IN_TEXT` match is a phone number: E.164 with `+`, or 9-15 digits in 3+ groups or with an area code. */
export function looksLikePhone(candidate: string): boolean {
  const digits = digitsOf(candidate).length;
  if (candidate.startsWith("+")) return digits >= 8 && digits <= 15;
  if (digits < 9 || digits > 15 || DATE_START.test(candidate)) return false;
  const separators = [...candidate].filter((c) => c === " " || c === "." || c === "-").length;
  return candidate.includes("(") || separators >= 2;
}

/** Compact JSON with sorted keys; what JSON cannot hold becomes its string form. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value, 0)) ?? "null";
}

function sortKeys(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) return TOO_DEEP;
  if (Array.isArray(value)) return value.map((item) => sortKeys(item, depth + 1));
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      out[key] = sortKeys((value as Record<string, unknown>)[key], depth + 1);
    }
    return out;
  }
  if (typeof value === "function" || typeof value === "symbol") return String(value);
  return value;
}

export function capText(text: string, limit: number = MAX_PAYLOAD_CHARS): string {
  return text.length <= limit ? text : `${text.slice(0, limit)}…[truncated ${text.length - limit} chars]`;
}

/** Hashes the values of sensitive keys, and emails and phones in text, in anything JSON-shaped. */
export class Redactor {
  private readonly keys: string[];
  private readonly verdicts = new Map<string, boolean>();

  constructor(sensitiveKeys: Iterable<string> = DEFAULT_SENSITIVE_KEYS) {
    this.keys = [...new Set([...sensitiveKeys].filter((k) => k.trim()).map(normaliseKey))].sort();
  }

  isSensitive(key: string): boolean {
    let verdict = this.verdicts.get(key);
    if (verdict === undefined) {
      const norm = normaliseKey(key);
      verdict = this.keys.some((k) => norm.startsWith(k) || norm.endsWith(k)) || isPhoneKey(key);
      if (this.verdicts.size < 10_000) this.verdicts.set(key, verdict);
    }
    return verdict;
  }

  static hashValue(key: string, value: unknown): string {
    if (typeof value === "string") {
      if (HASHED.test(value)) return value;
      const text = value.trim();
      return hashText(normaliseKey(key).includes("email") ? text.toLowerCase() : text);
    }
    return hashText(canonicalJson(value));
  }

  /** A copy of `value` with every sensitive key's value hashed and emails and phones in strings hashed. */
  redact(value: unknown): unknown {
    return this.walk(value, 0);
  }

  /** `value` redacted, as compact JSON with sorted keys, capped at `limit` characters. */
  toJsonText(value: unknown, limit: number = MAX_PAYLOAD_CHARS): string {
    return capText(canonicalJson(this.redact(value)), limit);
  }

  /** Emails and phone numbers in free text replaced by their pseudonyms. */
  redactString(text: string): string {
    const emails = text.replace(EMAIL_IN_TEXT, (email) => hashText(email.toLowerCase()));
    return emails.replace(PHONE_IN_TEXT, (match) => (looksLikePhone(match) ? hashText(digitsOf(match)) : match));
  }

  private walk(value: unknown, depth: number): unknown {
    if (depth > MAX_DEPTH) return TOO_DEEP;
    if (Array.isArray(value)) return value.map((item) => this.walk(item, depth + 1));
    if (typeof value === "string") return this.redactJsonString(value, depth) ?? this.redactString(value);
    if (value !== null && typeof value === "object" && !(value instanceof Date)) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        out[key] =
          item !== null && item !== undefined && this.isSensitive(key)
            ? Redactor.hashValue(key, item)
            : this.walk(item, depth + 1);
      }
      return out;
    }
    return value;
  }

  private redactJsonString(text: string, depth: number): string | null {
    const head = text.trimStart();
    if (!head.startsWith("{") && !head.startsWith("[")) return null;
    if (text.length > MAX_PARSE_CHARS) return `[omitted: ${text.length} chars of JSON]`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return null;
    }
    if (parsed === null || typeof parsed !== "object") return null;
    const redacted = this.walk(parsed, depth + 1);
    const before = canonicalJson(parsed);
    const after = canonicalJson(redacted);
    return before === after ? text : after;
  }
}

function isPhoneKey(key: string): boolean {
  const words = key.slice(0, 256).match(KEY_WORDS);
  if (!words || words.length === 0) return false;
  const first = words[0]!.toLowerCase();
  const last = words[words.length - 1]!.toLowerCase();
  return PHONE_KEY_WORDS.has(first) || PHONE_KEY_WORDS.has(last);
}
