/**
 * The checks on durable cursor entries (log.meta): every single-bit flip of a
 * committed entry is ERR_CORRUPT naming the slot and changes nothing; an
 * entry an older memmap wrote (no checks) still reads and is converted by its
 * next commit; processes committing and opening at once never see damage.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { tmpDir } from "./helpers/tmp.ts";
import { openLog, type MmapError } from "../src/index.ts";
import {
  CURSOR_CHECKED, CURSOR_IN_USE, CURSOR_LENGTH, CURSOR_SEQ_OFFSET, CURSOR_STATE_OFFSET, CURSOR_TABLE_OFFSET, CURSOR_UPDATED_AT_OFFSET,
} from "../src/log/layout.ts";
import { spawnFixture } from "./fixtures/log-helpers.ts";

/**
 * SHA-256 of every file of the log, by name; of log.meta only its cursor
 * table (a writable open takes a writer slot and rings the doorbell).
 */
function hashFiles(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    let bytes = fs.readFileSync(file);
    if (entry.name === "log.meta") bytes = bytes.subarray(CURSOR_TABLE_OFFSET);
    out.set(file, crypto.createHash("sha256").update(bytes).digest("hex"));
  }
  return out;
}

function makeLog(dir: string): void {
  const log = openLog(dir, { create: true, segmentSize: 64 * 1024 });
  for (let i = 0; i < 1000; i++) log.append(`r${i}`);
  const reader = log.reader({ name: "alpha-reader", from: 100 });
  reader.commit(100);
  reader.close();
  log.close();
}

test("every single-bit flip of a committed cursor entry (state, name, seq, time, check) is ERR_CORRUPT naming it, and changes nothing", () => {
  using tmp = tmpDir();
  makeLog(tmp.path);
  const meta = path.join(tmp.path, "log.meta");
  const pristine = fs.readFileSync(meta);
  assert.equal(pristine.readUInt32LE(CURSOR_TABLE_OFFSET + CURSOR_STATE_OFFSET), CURSOR_CHECKED);
  for (let bit = 0; bit < CURSOR_LENGTH * 8; bit++) {
    const damaged = Buffer.from(pristine);
    damaged[CURSOR_TABLE_OFFSET + (bit >>> 3)]! ^= 1 << (bit & 7);
    fs.writeFileSync(meta, damaged);
    const before = hashFiles(tmp.path);
    const log = openLog(tmp.path);
    try {
      for (const use of [() => log.reader({ name: "alpha-reader" }), () => log.cursors()]) {
        assert.throws(use, (e: MmapError) => {
          assert.equal(e.code, "ERR_CORRUPT", `bit ${bit}: ${e.message}`);
          assert.match(e.message, /\(cursor slot 0\) is malformed/, `bit ${bit}`);
          return true;
        }, `bit ${bit} of the entry was accepted`);
      }
    } finally {
      log.close();
    }
    assert.deepEqual(hashFiles(tmp.path), before, `bit ${bit}: the files changed`);
  }
  fs.writeFileSync(meta, pristine);
  const log = openLog(tmp.path);
  assert.equal(log.reader({ name: "alpha-reader" }).position, 100);
  log.close();
});

test("a cursor entry without checks (an older memmap's) still reads, and its next commit writes the checked form", () => {
  using tmp = tmpDir();
  makeLog(tmp.path);
  const meta = path.join(tmp.path, "log.meta");
  const at = CURSOR_TABLE_OFFSET;
  const old = fs.readFileSync(meta);
  old.writeUInt32LE(CURSOR_IN_USE, at + CURSOR_STATE_OFFSET);
  old.writeBigUInt64LE(250n, at + CURSOR_SEQ_OFFSET);
  old.writeDoubleLE(1_700_000_000_000, at + CURSOR_UPDATED_AT_OFFSET);
  fs.writeFileSync(meta, old);
  let log = openLog(tmp.path);
  assert.deepEqual(log.cursors(), [{ name: "alpha-reader", seq: 250, updatedAt: 1_700_000_000_000 }]);
  const reader = log.reader({ name: "alpha-reader" });
  assert.equal(reader.position, 250);
  reader.commit(260);
  log.close();
  const now = fs.readFileSync(meta);
  assert.equal(now.readUInt32LE(at + CURSOR_STATE_OFFSET), CURSOR_CHECKED);
  assert.equal(now.readBigUInt64LE(at + CURSOR_SEQ_OFFSET) >> 63n, 1n, "the seq word is checked");
  log = openLog(tmp.path);
  assert.equal(log.reader({ name: "alpha-reader" }).position, 260);
  log.close();
});

test("processes committing and reopening durable cursors at once never see one as damaged", async () => {
  using tmp = tmpDir();
  makeLog(tmp.path);
  const ROUNDS = 60;
  const children = ["p0", "p1", "p2"].map((name) => spawnFixture("log-cursor-churn.ts", [tmp.path, name, String(ROUNDS), "50"]));
  for (const child of children) {
    const done = await child.waitFor((l) => l.startsWith("done"), 120_000);
    assert.equal(done, `done ${ROUNDS} 0`, `${child.lines.join("\n")}\n${child.stderr()}`);
  }
  const log = openLog(tmp.path);
  assert.deepEqual(log.cursors().map((c) => c.name).sort(), ["alpha-reader", "p0", "p1", "p2", "shared"]);
  log.close();
});
