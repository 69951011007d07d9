/** The redaction rules, the same as the Python SDK's (`mcp_gateway/privacy.py`, `pii.py`). */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { Redactor } from "../src/index.js";
import { canonicalJson, capText } from "../src/redact.js";

const sha = (text: string): string => "sha256:" + createHash("sha256").update(text).digest("hex");

test("a key is sensitive by prefix or suffix of its normalised form, or by a phone word at either end", () => {
  const redactor = new Redactor();
  for (const key of [
    "email",
    "user_email",
    "userEmail",
    "access_token",
    "X-Api-Key",
    "passwordConfirmation",
    "mobile",
    "home_tel",
    "telNumber",
  ]) {
    assert.equal(redactor.isSensitive(key), true, key);
  }
  for (const key of ["className", "hotel", "telemetry", "automobile", "city"]) {
    assert.equal(redactor.isSensitive(key), false, key);
  }
});

test("sensitive values are hashed as the Python SDK hashes them, nested and inside JSON text", () => {
  const redactor = new Redactor();
  const out = redactor.redact({
    Email: "  Ada@Example.COM ",
    nested: [{ token: 42 }],
    text: '{"password": "hunter2", "ok": 1}',
    note: "call +44 20 7946 0958 or mail bob@example.org on 2026-05-16",
  }) as Record<string, unknown>;
  assert.equal(out.Email, sha("ada@example.com"));
  assert.deepEqual(out.nested, [{ token: sha("42") }]);
  assert.equal(out.text, `{"ok":1,"password":"${sha("hunter2")}"}`);
  assert.equal(out.note, `call ${sha("442079460958")} or mail ${sha("bob@example.org")} on 2026-05-16`);
  assert.deepEqual(redactor.redact(out), out); // a pseudonym stays as it is
});

test("ids, timestamps, prices and dates are not phones", () => {
  const redactor = new Redactor();
  const text = "evt_123456789 at 1733500000000, $1,299.00, 2026-05-16T19:00:00Z, v1.2.3";
  assert.equal(redactor.redactString(text), text);
});

test("custom sensitive keys replace the default list; canonical JSON sorts keys; long text is cut and marked", () => {
  const redactor = new Redactor(["city"]);
  assert.deepEqual(redactor.redact({ city: "Oslo", password: "x" }), { city: sha("Oslo"), password: "x" });
  assert.equal(canonicalJson({ b: 1, a: { d: 2, c: 3 } }), '{"a":{"c":3,"d":2},"b":1}');
  assert.equal(capText("abcdef", 4), "abcd…[truncated 2 chars]");
});
