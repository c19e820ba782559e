/**
 * The runnable examples (examples/*.ts, the programs the README quotes) run
 * to completion and print what they promise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");

const expectations: Record<string, RegExp> = {
  "share-read-only.ts": /(pid \d+: Rss 64 MiB, Pss 16 MiB[^\n]*\n){4}/,
  "shared-memory.ts": /counter = 42/,
  "record-file.ts": /1000000 rows; first tick at ts >= 500000 is row 166667: ts 500001/,
  "channel-ping-pong.ts": /round trip/,
  "log-resume.ts": /resumed at seq \d+; no record lost: the new consumer checked every record up to \d+/,
};

test("every example has an expectation here", () => {
  const files = fs.readdirSync(path.join(root, "examples")).filter((f) => f.endsWith(".ts"));
  assert.deepEqual(files.sort(), Object.keys(expectations).sort());
});

for (const [file, expected] of Object.entries(expectations)) {
  const full = path.join(root, "examples", file);
  test(`examples/${file} runs and prints what it promises`, { timeout: 60_000 }, () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", full], { cwd: root, encoding: "utf8", timeout: 55_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, expected);
  });
}
