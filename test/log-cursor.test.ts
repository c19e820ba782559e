/**
 * Durable readers (cursors): a consumer process is SIGKILLed and restarted
 * again and again while a producer keeps appending; each restart resumes
 * where the last commit left it, and every record is processed at least
 * once. Plus the cursor API in one process.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { tmpDir } from "./helpers/tmp.ts";
import { MmapError, openLog, inspectLog, type LogCorruptError } from "../src/index.ts";
import { CURSOR_LENGTH, CURSOR_NAME_LENGTH_OFFSET, CURSOR_NAME_OFFSET, CURSOR_SEQ_OFFSET, CURSOR_STATE_OFFSET, CURSOR_TABLE_OFFSET, CURSOR_UPDATED_AT_OFFSET } from "../src/log/layout.ts";
import { nameCrc, seqWord, timeWord, wordValue } from "../src/log/cursor-entry.ts";
import { delay, makeTmpDir, removeBundles, removeTmpDir, spawnFixture } from "./fixtures/log-helpers.ts";

after(() => removeBundles());

test("a durable consumer killed and restarted resumes at its last commit (at-least-once)", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true, segmentSize: 128 * 1024 });
  const EVERY = 7;
  let produced = 0;
  const produce = (n: number): void => {
    for (let i = 0; i < n; i++) log.append(`record ${produced++}`);
  };
  produce(2000);
  const processed = new Set<number>();
  let lastCommit = 0;
  for (let run = 0; run < 8; run++) {
    const consumer = spawnFixture("log-consumer.ts", [dir, "consumer-a", String(EVERY)]);
    const start = Number((await consumer.waitFor((l) => l.startsWith("start"))).split(" ")[1]);
    // Killed after the last printed commit, possibly after one more commit it did not print.
    assert.ok(start >= lastCommit && start <= lastCommit + EVERY, `run ${run} resumed at ${start}, last commit seen ${lastCommit}`);
    produce(300); // the producer keeps going while the consumer runs
    await delay(20 + Math.random() * 60);
    consumer.proc.kill("SIGKILL");
    await consumer.exited;
    for (const line of consumer.lines) {
      const [what, value] = line.split(" ");
      if (what === "got") processed.add(Number(value));
      if (what === "commit") lastCommit = Number(value);
    }
  }
  log.append("END");
  const last = spawnFixture("log-consumer.ts", [dir, "consumer-a", String(EVERY)]);
  assert.equal((await last.exited).code, 0, last.stderr());
  for (const line of last.lines) if (line.startsWith("got ")) processed.add(Number(line.split(" ")[1]));
  for (let seq = 0; seq < produced; seq++) assert.ok(processed.has(seq), `record ${seq} was processed`);
  const info = inspectLog(dir).cursors.find((c) => c.name === "consumer-a")!;
  assert.equal(info.seq, produced + 1, "the final commit is past END");
  assert.equal(info.lag, 0);
  log.close();
});

test("cursor API: resume, from ignored once named, explicit commit(seq), delete, validation", () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true });
  for (let i = 0; i < 100; i++) log.append(`r${i}`);
  const a = log.reader({ name: "alpha", from: 40 });
  assert.equal(a.position, 40);
  assert.equal(a.next()!.seq, 40);
  a.commit();
  assert.deepEqual(log.cursors().map((c) => [c.name, c.seq]), [["alpha", 41]]);
  a.close();
  const again = log.reader({ name: "alpha", from: "end" });
  assert.equal(again.position, 41, "an existing cursor wins over from");
  again.commit(90);
  again.close();
  assert.equal(log.reader({ name: "alpha" }).position, 90);
  const beyond = log.reader({ name: "beta", from: "end" });
  assert.equal(beyond.position, 100);
  assert.throws(() => beyond.commit(500), { code: "ERR_OUT_OF_RANGE", message: /cannot commit seq 500/ }); // past the end: nothing to have processed
  beyond.commit(100);
  assert.equal(log.reader({ name: "beta" }).position, 100);
  assert.equal(log.deleteCursor("beta"), true);
  assert.equal(log.deleteCursor("beta"), false);
  assert.deepEqual(log.cursors().map((c) => c.name), ["alpha"]);
  const unnamed = log.reader();
  assert.throws(() => unnamed.commit(), (e: MmapError) => e.code === "ERR_INVALID_ARG" && /named reader/.test(e.message));
  assert.throws(() => log.reader({ name: "" }), (e: MmapError) => e.code === "ERR_INVALID_ARG");
  assert.throws(() => log.reader({ name: "x".repeat(41) }), (e: MmapError) => e.code === "ERR_INVALID_ARG" && /40 bytes/.test(e.message));
  assert.throws(() => log.reader({ name: "ok", from: -1 }), (e: MmapError) => e.code === "ERR_INVALID_ARG");
  assert.throws(() => log.reader({ name: "ok2", from: 101 }), (e: MmapError) => e.code === "ERR_OUT_OF_RANGE");
  log.close();
  // Cursors survive a reopen.
  const reopened = openLog(dir);
  assert.equal(reopened.reader({ name: "alpha" }).position, 90);
  reopened.close();
});

test("the cursor table holds 128 names, then says it is full", () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true });
  for (let i = 0; i < 128; i++) log.reader({ name: `reader-${i}` }).close();
  assert.throws(() => log.reader({ name: "one-too-many" }), (e: MmapError) => e.code === "ERR_FULL");
  log.deleteCursor("reader-5");
  log.reader({ name: "one-too-many" }).close();
  log.close();
});

test("a durable cursor past the end of the log, or a malformed one, is ERR_CORRUPT naming it (never clamped, never ignored)", () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true, segmentSize: 64 * 1024 });
  for (let i = 0; i < 1000; i++) log.append(`r${i} ${"x".repeat(200)}`); // a few segments, for retain()
  for (const name of ["alpha", "beta", "gamma"]) log.reader({ name, from: 100 }).close();
  log.close();
  const meta = path.join(dir, "log.meta");
  const pristine = fs.readFileSync(meta);
  const slot = (i: number): number => CURSOR_TABLE_OFFSET + i * CURSOR_LENGTH;
  /** Writes slot i's seq (and time) as a commit would: checked words that match its name. */
  const commitAs = (b: Buffer, i: number, seq: number): void => {
    const crc = nameCrc(b, slot(i));
    b.writeBigInt64LE(wordValue(seqWord(seq, crc)), slot(i) + CURSOR_SEQ_OFFSET);
    b.writeBigInt64LE(wordValue(timeWord(Date.now(), crc)), slot(i) + CURSOR_UPDATED_AT_OFFSET);
  };
  const cases: [string, (b: Buffer) => void, string | undefined, RegExp][] = [
    ["past the end", (b) => commitAs(b, 1, 1800), "beta", /"beta" is at seq 1800, past the end of the log \(100\d\)/],
    ["a bad state", (b) => b.writeUInt32LE(7, slot(1) + CURSOR_STATE_OFFSET), undefined, /cursor slot 1\) is malformed: state 7/],
    ["a zero name length", (b) => b.writeUInt32LE(0, slot(2) + CURSOR_NAME_LENGTH_OFFSET), undefined, /cursor slot 2\) is malformed: name length 0/],
    ["a name length past the slot", (b) => b.writeUInt32LE(99, slot(0) + CURSOR_NAME_LENGTH_OFFSET), undefined, /cursor slot 0\) is malformed: name length 99/],
    ["a name that is not UTF-8", (b) => b.writeUInt8(0xff, slot(0) + CURSOR_NAME_OFFSET + 1), undefined, /cursor slot 0\) is malformed: its name is not UTF-8/],
    ["a seq word without its check", (b) => b.writeBigUInt64LE(1n << 60n, slot(2) + CURSOR_SEQ_OFFSET), "gamma", /"gamma" \(cursor slot 2\) is malformed: its check does not match/],
    // Names are unique (added under the meta lock): a second slot with a name, at another seq, is damage, not a choice.
    ["a name two slots hold", (b) => b.copy(b, slot(1) + CURSOR_NAME_LENGTH_OFFSET, slot(0) + CURSOR_NAME_LENGTH_OFFSET, slot(0) + CURSOR_NAME_LENGTH_OFFSET + 4) && b.copy(b, slot(1) + CURSOR_NAME_OFFSET, slot(0) + CURSOR_NAME_OFFSET, slot(1)) && commitAs(b, 1, 300), "alpha", /"alpha" \(cursor slots 0 and 1\) is malformed: two slots hold the name/],
  ];
  for (const [what, damage, name, message] of cases) {
    const b = Buffer.from(pristine);
    damage(b);
    fs.writeFileSync(meta, b);
    const again = openLog(dir); // appending does not need the cursors
    try {
      again.append("more");
      for (const n of name === undefined ? ["alpha", "beta", "gamma"] : [name]) {
        assert.throws(() => again.reader({ name: n }), (e: MmapError) => {
          assert.equal(e.code, "ERR_CORRUPT", `${what}: ${e.message}`);
          assert.equal(e.path, meta);
          assert.match(e.message, message, what);
          return true;
        }, `${what}: reader({ name: "${n}" })`);
      }
      if (name === undefined) assert.throws(() => again.cursors(), { code: "ERR_CORRUPT" }, what);
      assert.throws(() => again.retain({ maxSegments: 1 }), { code: "ERR_CORRUPT" }, `${what}: retention refuses to guess`);
      const s = inspectLog(dir);
      assert.equal(s.damage?.file, meta, what);
      assert.match(s.damage!.reason, message, what);
    } finally {
      again.close();
    }
  }
  // A damaged seq under a readable name: deleting the reader clears it.
  const b = Buffer.from(pristine);
  b.writeBigUInt64LE(1n << 60n, slot(2) + CURSOR_SEQ_OFFSET);
  fs.writeFileSync(meta, b);
  const fix = openLog(dir);
  assert.equal(fix.deleteCursor("gamma"), true);
  assert.deepEqual(fix.cursors().map((c) => c.name), ["alpha", "beta"]);
  fix.close();
  fs.writeFileSync(meta, pristine);
  const ok = openLog(dir);
  assert.equal(ok.reader({ name: "beta" }).position, 100);
  ok.close();
  void (undefined as unknown as LogCorruptError);
});
