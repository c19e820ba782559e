/**
 * Damaged files: a truncated segment, bit flips, a missing segment, a bad
 * header, a damaged meta file. Opening reports ERR_CORRUPT naming the first
 * damaged sequence number and the file; with onDamage "readPrefix" every
 * record before the damage stays readable; with "truncate" the log is cut
 * there and goes on. A fuzz pass flips random bytes: nothing but coded
 * errors, never a partial record, never a hang.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { MmapError, inspectLog, openLog, type LogCorruptError, type LogOptions } from "../src/index.ts";
import { RECORD_SEQ_OFFSET, segmentGeometry } from "../src/log/layout.ts";
import { checkNumbered, makeTmpDir, numberedRecord, removeTmpDir } from "./fixtures/log-helpers.ts";

const SEGMENT = 64 * 1024;
const RECORDS = 700;
let root: string;
let template: string;
let bases: number[];

before(() => {
  root = makeTmpDir();
  template = path.join(root, "template");
  const log = openLog(template, { create: true, segmentSize: SEGMENT, crc: true });
  for (let n = 0; n < RECORDS; n++) log.append(numberedRecord(n));
  log.close();
  bases = segFiles(template).map((f) => Number(f.slice(0, 20)));
  assert.ok(bases.length >= 4, `${bases.length} segments`);
});

after(() => removeTmpDir(root));

function segFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith(".seg")).sort();
}

function segPath(dir: string, i: number): string {
  return path.join(dir, segFiles(template)[i]!);
}

let copies = 0;
function copy(): string {
  const dir = path.join(root, `copy-${copies++}`);
  fs.cpSync(template, dir, { recursive: true });
  return dir;
}

/** Frames of a segment file, walked here independently of the library: [position, aligned length, seq]. */
function frames(file: string): { pos: number; end: number; seq: number }[] {
  const b = fs.readFileSync(file);
  const { dataStart } = segmentGeometry(SEGMENT);
  const out = [];
  for (let pos = dataStart; pos + 8 <= SEGMENT; ) {
    const len = b.readInt32LE(pos);
    if (len <= 0) break;
    const end = pos + Math.ceil(len / 8) * 8;
    out.push({ pos, end, seq: Number(b.readBigUInt64LE(pos + RECORD_SEQ_OFFSET)) });
    pos = end;
  }
  return out;
}

function openError(dir: string, options: LogOptions = {}): LogCorruptError {
  try {
    openLog(dir, options).close();
  } catch (error) {
    assert.ok(error instanceof MmapError, String(error));
    assert.equal(error.code, "ERR_CORRUPT", error.message);
    return error as LogCorruptError;
  }
  assert.fail("open succeeded on a damaged log");
}

/** Reads with onDamage "readPrefix": every record before `seq` intact, then the damage error. */
function assertPrefix(dir: string, seq: number, options: LogOptions = {}): void {
  const log = openLog(dir, { onDamage: "readPrefix", ...options });
  try {
    assert.equal(log.damage?.seq, seq);
    const r = log.reader();
    let n = 0;
    assert.throws(
      () => {
        for (let rec = r.next(); ; rec = r.next()) {
          assert.ok(rec !== null, "the damage stops the reader, not the end of the data");
          assert.equal(rec.seq, n);
          assert.equal(checkNumbered(rec.data), n);
          n++;
        }
      },
      (e: MmapError) => e.code === "ERR_CORRUPT" && (e as LogCorruptError).seq === seq,
    );
    assert.equal(n, seq, "every record before the damage was read");
    assert.throws(() => log.append("x"), (e: MmapError) => e.code === "ERR_CORRUPT", "no appends after damage");
  } finally {
    log.close();
  }
}

function expectDamage(error: LogCorruptError, seq: number, file: string): void {
  assert.equal(error.seq, seq, error.message);
  assert.equal(error.path, file);
  assert.match(error.message, new RegExp(`seq ${seq} in ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
}

test("a truncated segment in the middle: ERR_CORRUPT at the first record cut, the prefix readable", () => {
  const dir = copy();
  const file = segPath(dir, 1);
  const f = frames(file);
  const cut = f[5]!.pos + 20; // inside the sixth record
  fs.truncateSync(file, cut);
  expectDamage(openError(dir), f[5]!.seq, file);
  assertPrefix(dir, f[5]!.seq);
  assert.equal(inspectLog(dir).damage?.seq, f[5]!.seq);
});

test("a truncated newest segment: the same", () => {
  const dir = copy();
  const file = segPath(dir, bases.length - 1);
  const f = frames(file);
  const cut = f[f.length - 3]!.end; // cut exactly after a record: the next ones are gone
  fs.truncateSync(file, cut);
  const e = openError(dir);
  expectDamage(e, f[f.length - 2]!.seq, file);
  assert.match(e.message, /truncated/);
  assertPrefix(dir, f[f.length - 2]!.seq);
});

test("a bit flip in a record of the newest segment: ERR_CORRUPT on open (CRC)", () => {
  const dir = copy();
  const file = segPath(dir, bases.length - 1);
  const f = frames(file);
  const victim = f[3]!;
  const fd = fs.openSync(file, "r+");
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, victim.pos + 40);
  b[0]! ^= 0x10;
  fs.writeSync(fd, b, 0, 1, victim.pos + 40);
  fs.closeSync(fd);
  const e = openError(dir);
  expectDamage(e, victim.seq, file);
  assert.match(e.message, /CRC32C/);
  assertPrefix(dir, victim.seq);
});

test("a bit flip turning a record into an ABORTED frame is caught (the CRC covers the type)", () => {
  const dir = copy();
  const file = segPath(dir, bases.length - 1);
  const victim = frames(file)[2]!;
  const fd = fs.openSync(file, "r+");
  const b = Buffer.alloc(2);
  fs.readSync(fd, b, 0, 2, victim.pos + 4);
  assert.equal(b.readUInt16LE(0), 1, "DATA");
  b.writeUInt16LE(3, 0); // ABORTED: one bit away
  fs.writeSync(fd, b, 0, 2, victim.pos + 4);
  fs.closeSync(fd);
  expectDamage(openError(dir), victim.seq, file);
});

test("a bit flip in an older segment: found by verify \"full\" on open, or by a reader", () => {
  const dir = copy();
  const file = segPath(dir, 0);
  const victim = frames(file)[7]!;
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, Buffer.from([0xee]), 0, 1, victim.pos + 33);
  fs.closeSync(fd);
  expectDamage(openError(dir, { verify: "full" }), victim.seq, file);
  const log = openLog(dir); // the default checks only the newest segment's records
  const r = log.reader();
  let n = 0;
  assert.throws(
    () => {
      for (let rec = r.next(); rec !== null; rec = r.next()) n++;
    },
    (e: MmapError) => e.code === "ERR_CORRUPT" && (e as LogCorruptError).seq === victim.seq && e.path === file,
  );
  assert.equal(n, victim.seq, "records before it were read");
  log.close();
});

test("a missing segment: ERR_CORRUPT naming the missing file and its first seq", () => {
  const dir = copy();
  const missing = segPath(dir, 2);
  fs.rmSync(missing);
  expectDamage(openError(dir), bases[2]!, missing);
  assertPrefix(dir, bases[2]!);
});

test("a missing newest segment is noticed too (the meta file remembers it)", () => {
  const dir = copy();
  const missing = segPath(dir, bases.length - 1);
  fs.rmSync(missing);
  expectDamage(openError(dir), bases[bases.length - 1]!, missing);
});

test("a bad segment header: ERR_CORRUPT at the segment's first seq", () => {
  for (const [offset, pattern] of [[0, /magic/], [50, /checksum/], [8, /version/]] as const) {
    const dir = copy();
    const file = segPath(dir, 2);
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, Buffer.from([0x7f]), 0, 1, offset);
    fs.closeSync(fd);
    const e = openError(dir);
    expectDamage(e, bases[2]!, file);
    assert.match(e.message, pattern);
    assertPrefix(dir, bases[2]!);
  }
});

test("a damaged meta file: ERR_CORRUPT naming it", () => {
  const dir = copy();
  const meta = path.join(dir, "log.meta");
  const fd = fs.openSync(meta, "r+");
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, 38); // inside the creation time: only the checksum can tell
  b[0]! ^= 0x40;
  fs.writeSync(fd, b, 0, 1, 38);
  fs.closeSync(fd);
  const e = openError(dir);
  assert.equal(e.path, meta);
  assert.match(e.message, /checksum/);
  fs.truncateSync(meta, 100);
  assert.match(openError(dir).message, /meta file is 100 bytes/);
});

test("onDamage \"truncate\" cuts the log at the damage and appends from there", () => {
  const dir = copy();
  const file = segPath(dir, 1);
  const victim = frames(file)[4]!;
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, Buffer.from([0xab]), 0, 1, victim.pos + 36);
  fs.closeSync(fd);
  const log = openLog(dir, { onDamage: "truncate", verify: "full" });
  assert.equal(log.recovery.truncated?.seq, victim.seq);
  assert.equal(log.recovery.truncated?.movedFiles.length, bases.length - 2, "later segments moved aside");
  assert.ok(fs.existsSync(path.join(log.recovery.truncated!.movedTo!, path.basename(segPath(dir, 2)))));
  assert.equal(log.nextSeq, victim.seq);
  assert.equal(log.append(numberedRecord(victim.seq)), victim.seq);
  log.close();
  const again = openLog(dir, { verify: "full" });
  const r = again.reader();
  let n = 0;
  for (let rec = r.next(); rec !== null; rec = r.next()) assert.equal(checkNumbered(rec.data), n++);
  assert.equal(n, victim.seq + 1);
  again.close();
});

test("fuzz: random byte damage gives coded errors, intact records, and no hang", () => {
  const files = segFiles(template);
  let damaged = 0;
  const ITERATIONS = Number(process.env.LOG_FUZZ_ITERATIONS ?? 150);
  for (let iter = 0; iter < ITERATIONS; iter++) {
    const dir = copy();
    const flips = 1 + (iter % 3);
    for (let k = 0; k < flips; k++) {
      const file = path.join(dir, files[Math.floor(Math.random() * files.length)]!);
      const size = fs.statSync(file).size;
      // Half the flips in the first 8 KiB (header, index, first frames), half anywhere.
      const off = Math.floor(Math.random() * (iter % 2 === 0 ? 8192 : size));
      const fd = fs.openSync(file, "r+");
      fs.writeSync(fd, Buffer.from([Math.floor(Math.random() * 256)]), 0, 1, off);
      fs.closeSync(fd);
    }
    const t0 = performance.now();
    let log;
    try {
      log = openLog(dir, { onDamage: "readPrefix", verify: iter % 2 === 0 ? "tail" : "full" });
    } catch (error) {
      assert.ok(error instanceof MmapError && error.code === "ERR_CORRUPT", String(error));
      damaged++;
      continue;
    }
    try {
      let expected = log.firstSeq;
      let r;
      try {
        r = log.reader();
        for (let rec = r.next(); rec !== null; rec = r.next()) {
          assert.equal(rec.seq, expected++, "no record skipped silently");
          assert.equal(checkNumbered(rec.data), rec.seq, "never a partial or altered record");
        }
      } catch (error) {
        assert.ok(error instanceof MmapError && (error.code === "ERR_CORRUPT" || error.code === "ERR_OUT_OF_RANGE"), String(error));
        damaged++;
      }
      for (const s of [0, 123, 699]) {
        try {
          r ??= log.reader({ from: "end" });
          r.seek(s);
          r.next();
        } catch (error) {
          assert.ok(error instanceof MmapError, String(error));
        }
      }
    } finally {
      log.close();
    }
    assert.ok(performance.now() - t0 < 5000, "no hang");
    removeTmpDir(dir);
  }
  assert.ok(damaged > ITERATIONS / 3, `most damage was reported (${damaged} of ${ITERATIONS})`);
});
