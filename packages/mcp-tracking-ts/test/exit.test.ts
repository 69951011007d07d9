/** A script that ends without close() still delivers what it queued (at `beforeExit`), then exits. */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { FakeBackend } from "./helpers.js";

const FIXTURE = fileURLToPath(new URL("./fixtures/ends_without_close.js", import.meta.url));

test("items queued when the process runs out of work are delivered before it exits", async () => {
  const backend = new FakeBackend();
  const endpoint = await backend.start();
  try {
    const child = spawn(process.execPath, [FIXTURE], { env: { ...process.env, TRACKING_ENDPOINT: endpoint } });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 0, stderr);
    assert.equal(backend.sessions().length, 1);
    assert.deepEqual(
      backend.events().map((e) => [e.primitive_name, e.args]),
      [["get_weather", '{"city":"Bergen"}']],
    );
  } finally {
    await backend.stop();
  }
});
