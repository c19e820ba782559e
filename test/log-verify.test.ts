/**
 * Issue 10 re-checks (s4-verify) of the log's recovery and reader code; a
 * check still failing is marked todo with what goes wrong. Real files, real
 * processes, real SIGKILLs.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { tmpDir } from "./helpers/tmp.ts";
import { MmapError, inspectLog, openLog, type LogOptions } from "../src/index.ts";
import { alignFrame } from "../src/core/framing.ts";
import { CURSOR_SEQ_OFFSET, CURSOR_TABLE_OFFSET, SEG_DATA_START_OFFSET } from "../src/log/layout.ts";
import { makeCrashedLog } from "./fixtures/log-crashed.ts";

const RECORDS = 240;

/** A log of RECORDS records over 4 segments of 64 KiB; returns the file of the second (sealed, not the newest). */
function fourSegments(dir: string, crc: boolean): string {
  const log = openLog(dir, { create: true, segmentSize: 64 * 1024, crc });
  for (let i = 0; i < RECORDS; i++) log.append(`rec ${i} `.padEnd(700 + (i % 50), "z"));
  log.close();
  const segments = fs.readdirSync(dir).filter((f) => f.endsWith(".seg")).sort();
  assert.ok(segments.length >= 3);
  return path.join(dir, segments[1]!);
}

/** Byte offsets of the committed frames of a segment file. */
function frameOffsets(bytes: Buffer): number[] {
  const out: number[] = [];
  for (let pos = bytes.readUInt32LE(SEG_DATA_START_OFFSET); pos < bytes.length; ) {
    const length = bytes.readInt32LE(pos);
    if (length <= 0) break;
    out.push(pos);
    pos += alignFrame(length);
  }
  return out;
}

/** Reads every record with next(); "damage" when the open, the reader or log.damage says so. */
function readAll(dir: string, options: LogOptions): { seqs: number[]; nextSeq: number; damage: boolean } {
  let log;
  try {
    log = openLog(dir, options);
  } catch (error) {
    assert.ok(error instanceof MmapError && error.code === "ERR_CORRUPT", String(error));
    return { seqs: [], nextSeq: -1, damage: true };
  }
  const seqs: number[] = [];
  try {
    const reader = log.reader();
    for (let r = reader.next(); r !== null; r = reader.next()) seqs.push(r.seq);
    return { seqs, nextSeq: log.nextSeq, damage: log.damage !== undefined };
  } catch (error) {
    assert.ok(error instanceof MmapError && error.code === "ERR_CORRUPT", String(error));
    return { seqs, nextSeq: log.nextSeq, damage: true };
  } finally {
    log.close();
  }
}

test(
  "a length word damaged to a negative value inside a sealed, older segment is damage, not the end of the log",
  () => {
    for (const crc of [true, false]) {
      for (const [what, damage] of [
        ["its sign bit set", (len: number) => len | 0x80000000],
        ["-1", () => -1],
      ] as const) {
        using tmp = tmpDir();
        const file = fourSegments(tmp.path, crc);
        const bytes = fs.readFileSync(file);
        const at = frameOffsets(bytes)[2]!;
        bytes.writeInt32LE(damage(bytes.readInt32LE(at)), at);
        fs.writeFileSync(file, bytes);
        for (const options of [{}, { readOnly: true }, { onDamage: "readPrefix" }] satisfies LogOptions[]) {
          const label = `crc ${crc}, length word ${what}, ${JSON.stringify(options)}`;
          const got = readAll(tmp.path, options);
          assert.ok(got.seqs.length === RECORDS || got.damage, `${label}: ${got.seqs.length} of ${RECORDS} records, no damage reported (nextSeq ${got.nextSeq})`);
        }
        const seen = inspectLog(tmp.path);
        const log = openLog(tmp.path, { readOnly: true });
        const nextSeq = log.nextSeq;
        log.close();
        assert.equal(seen.nextSeq, nextSeq, `crc ${crc}, ${what}: inspectLog and a read-only open agree on nextSeq`);
        const read = readAll(tmp.path, { readOnly: true });
        assert.ok(read.damage && seen.damage !== undefined, `crc ${crc}, ${what}: the reader and inspectLog report the damage`);
        assert.equal(read.seqs.length, seen.damage.seq, `crc ${crc}, ${what}: the reader stops where inspectLog says the damage is`);
        assert.equal(seen.damage.file, file);
      }
    }
  },
);

test(
  "a writer SIGKILLed holding a claim, then segments rolled over: the next exclusive open seals the claim ABORTED",
  async () => {
    using tmp = tmpDir();
    const stuck = await makeCrashedLog(tmp.path, 10, 2000); // 2000 records behind it: the first segment is sealed
    assert.ok(fs.readdirSync(tmp.path).filter((f) => f.endsWith(".seg")).length >= 2);
    const log = openLog(tmp.path);
    try {
      assert.equal(log.recovery.abortedFrames, 1, "the dead writer's frame is sealed ABORTED");
      const reader = log.reader();
      const seqs: number[] = [];
      for (let r = reader.next(); r !== null; r = reader.next()) seqs.push(r.seq);
      assert.equal(seqs.length, 2010, `next() reads every committed record (stopped at ${seqs.at(-1)}; the claim is seq ${stuck})`);
    } finally {
      log.close();
    }
  },
);

test("a dead writer's claim in a sealed segment, the log held open meanwhile (no repair): a waiting reader seals it and reads on", async () => {
  using tmp = tmpDir();
  const holder = openLog(tmp.path, { create: true, segmentSize: 64 * 1024 }); // keeps later opens shared: nothing is repaired
  try {
    const stuck = await makeCrashedLog(tmp.path, 10, 2000);
    const log = openLog(tmp.path, { abandonTimeoutMs: 20 });
    try {
      assert.equal(log.recovery.exclusive, false);
      const reader = log.reader();
      const seqs: number[] = [];
      for (let r = reader.waitNext({ timeoutMs: 30_000 }); r !== null && seqs.length < 2010; ) {
        seqs.push(r.seq);
        if (seqs.length < 2010) r = reader.waitNext({ timeoutMs: 30_000 });
      }
      assert.equal(seqs.length, 2010, `the reader passed the claim (seq ${stuck}); it stopped at ${seqs.at(-1)}`);
      assert.equal(reader.skipped, 1);
    } finally {
      log.close();
    }
  } finally {
    holder.close();
  }
});

test("opening a directory that holds no log (without create) changes nothing in it: ENOENT, no locks/ left behind", () => {
  using tmp = tmpDir();
  const dir = path.join(tmp.path, "not-a-log");
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "notes.txt"), "mine");
  for (const options of [{}, { readOnly: true }, { verify: "full" }, { onDamage: "truncate" }] satisfies LogOptions[]) {
    assert.throws(() => openLog(dir, options), (e: MmapError) => e.code === "ENOENT" && /no log in/.test(e.message), JSON.stringify(options));
    assert.deepEqual(fs.readdirSync(dir), ["notes.txt"], `${JSON.stringify(options)}: the directory is as it was`);
  }
});

test(
  "a bit flipped in a durable cursor's seq, inside the log's range, is ERR_CORRUPT, not a silent skip",
  () => {
    using tmp = tmpDir();
    const log = openLog(tmp.path, { create: true, segmentSize: 64 * 1024 });
    for (let i = 0; i < 1000; i++) log.append(`r${i}`);
    log.reader({ name: "alpha", from: 100 }).close();
    log.close();
    const meta = path.join(tmp.path, "log.meta");
    const bytes = fs.readFileSync(meta);
    const at = CURSOR_TABLE_OFFSET + CURSOR_SEQ_OFFSET; // slot 0: alpha
    assert.equal(bytes.readBigUInt64LE(at) & 0xffffffffn, 100n); // the seq in the word's low bits, a check above
    bytes[at + 1]! ^= 2; // seq 100 -> 612
    fs.writeFileSync(meta, bytes);
    const again = openLog(tmp.path);
    try {
      assert.throws(() => again.reader({ name: "alpha" }), { code: "ERR_CORRUPT", message: /"alpha" \(cursor slot 0\)/ });
    } finally {
      again.close();
    }
  },
);
