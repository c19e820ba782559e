/**
 * Retention: old segments are dropped by count, size or age — oldest first,
 * never the newest, never one a durable reader still needs (unless told to);
 * and a reader that has a dropped segment mapped keeps reading it.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { after, test } from "node:test";
import { tmpDir } from "./helpers/tmp.ts";
import { MmapError, openLog } from "../src/index.ts";
import { checkTagged, delay, makeTmpDir, removeBundles, removeTmpDir, spawnFixture } from "./fixtures/log-helpers.ts";

after(() => removeBundles());

const SEGMENT = 64 * 1024;

function segmentFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith(".seg")).sort();
}

test("retention under load keeps every segment a durable reader needs, and drops the rest", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true, segmentSize: SEGMENT });
  const slow = log.reader({ name: "slow" }); // cursor at 0: pins everything for now
  const unprotected = log.reader(); // no cursor: retention does not wait for it
  const COUNT = 6000;
  const writer = spawnFixture("log-appender.ts", [dir, "1", String(COUNT), "0", "0", JSON.stringify({ retention: { maxSegments: 3 } })]);
  let read = 0;
  let checks = 0;
  let firstSeen = 0;
  // Read slowly, committing as we go; while the writer appends and drops segments, the
  // segment holding our committed position must always exist.
  while (read < COUNT) {
    const rec = slow.next();
    if (rec === null) {
      if (writer.proc.exitCode !== null && writer.proc.exitCode !== 0) assert.fail(writer.stderr());
      await delay(2);
      continue;
    }
    assert.equal(rec.seq, read);
    assert.equal(checkTagged(rec.data), read);
    read++;
    if (read % 100 === 0) {
      slow.commit();
      const first = log.firstSeq;
      assert.ok(first <= slow.position, `the committed position ${slow.position} is still in the log (first ${first})`);
      firstSeen = Math.max(firstSeen, first);
      checks++;
      if (read % 1000 === 0) await delay(30); // let the writer run ahead and roll
    }
  }
  assert.equal((await writer.exited).code, 0, writer.stderr());
  slow.commit();
  assert.ok(checks >= 50);
  assert.ok(firstSeen > 0, "the writer dropped segments behind the reader while it ran");
  log.retain({ maxSegments: 3 });
  const files = segmentFiles(dir);
  assert.ok(files.length <= 3, `only the newest segments remain (${files.length})`);
  assert.ok(log.firstSeq > 0, "old segments were dropped");

  // The unnamed reader still has segment 0 mapped: it reads all of it, then learns the rest is gone.
  let seen = 0;
  let error: unknown;
  try {
    for (let rec = unprotected.next(); rec !== null; rec = unprotected.next()) {
      assert.equal(checkTagged(rec.data), rec.seq);
      seen++;
    }
  } catch (e) {
    error = e;
  }
  assert.ok(seen > 0, "records of the dropped, still-mapped segment were read");
  assert.ok(error instanceof MmapError && error.code === "ERR_OUT_OF_RANGE", `then: ${String(error)}`);
  log.close();
});

test("retention by size and by age; ignoreCursors; never the newest segment", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true, segmentSize: SEGMENT });
  const big = new Uint8Array(4000);
  for (let i = 0; i < 150; i++) log.append(big); // ~10 segments
  const before = segmentFiles(dir).length;
  assert.ok(before >= 9, `${before} segments`);
  const pin = log.reader({ name: "pin" });
  assert.deepEqual(log.retain({ maxBytes: 3 * SEGMENT }), [], "a durable reader at 0 pins everything");
  assert.equal(log.retain({ maxBytes: 3 * SEGMENT, ignoreCursors: true }).length, before - 3);
  assert.equal(segmentFiles(dir).length, 3);
  pin.close();
  log.deleteCursor("pin");
  await delay(30);
  for (let i = 0; i < 40; i++) log.append(big);
  const now = segmentFiles(dir).length;
  await delay(5); // every segment's successor was created before now
  const dropped = log.retain({ maxAgeMs: 0 });
  assert.equal(dropped.length, now - 1, "age drops everything but the newest");
  assert.deepEqual(log.retain({ maxSegments: 1 }), []);
  assert.equal(segmentFiles(dir).length, 1);
  const r = log.reader(); // "start" is the first record kept
  assert.equal(r.next()!.seq, log.firstSeq);
  assert.throws(() => r.seek(0), (e: MmapError) => e.code === "ERR_OUT_OF_RANGE" && /dropped by retention/.test(e.message));
  assert.throws(() => log.retain({ maxSegments: 0 }), (e: MmapError) => e.code === "ERR_INVALID_ARG");
  log.close();
});
