/**
 * What an open may change (issue 10): only bytes it can prove are a crash
 * artefact. A zeroed length word followed by committed records, a zeroed
 * page (power loss), a hole inside a sealed segment: damage, reported as
 * ERR_CORRUPT naming the file and the seq, with every file left
 * byte-identical (each test hashes every file before and after). Also: a
 * truncation that can always reopen, errors that are MmapErrors after a
 * truncated first segment, and read-only views of a damaged log that agree.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { MmapError, inspectLog, openLog, type LogCorruptError, type LogOptions } from "../src/index.ts";
import { RECORD_SEQ_OFFSET, segmentGeometry } from "../src/log/layout.ts";
import { createHash } from "node:crypto";
import { META_DOORBELL_SEQ_OFFSET } from "../src/log/layout.ts";
import { fingerprint as fingerprintAll } from "./fixtures/log-crashed.ts";
import { checkNumbered, makeTmpDir, numberedRecord, removeTmpDir } from "./fixtures/log-helpers.ts";

const SEGMENT = 64 * 1024;

/**
 * Every file's hash, log.meta's without its doorbell counter (closing a
 * writable log rings it: that is not the open changing the log).
 */
function fingerprint(dir: string): Map<string, string> {
  const out = fingerprintAll(dir);
  const meta = path.join(dir, "log.meta");
  if (fs.existsSync(meta)) {
    const b = fs.readFileSync(meta);
    b.fill(0, META_DOORBELL_SEQ_OFFSET, META_DOORBELL_SEQ_OFFSET + 4);
    out.set("log.meta", createHash("sha256").update(b).digest("hex"));
  }
  return out;
}
const RECORDS = 700;
let root: string;
const templates = new Map<boolean, string>();

before(() => {
  root = makeTmpDir();
  for (const crc of [true, false]) {
    const dir = path.join(root, `template-${crc}`);
    const log = openLog(dir, { create: true, segmentSize: SEGMENT, crc });
    for (let n = 0; n < RECORDS; n++) log.append(numberedRecord(n));
    log.close();
    templates.set(crc, dir);
  }
});

after(() => removeTmpDir(root));

let copies = 0;
function copy(crc = true): string {
  const dir = path.join(root, `copy-${copies++}`);
  fs.cpSync(templates.get(crc)!, dir, { recursive: true });
  return dir;
}

function segFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith(".seg")).sort().map((f) => path.join(dir, f));
}

/** Frames of a segment file, walked independently of the library. */
function frames(file: string): { pos: number; end: number; seq: number }[] {
  const b = fs.readFileSync(file);
  const { dataStart } = segmentGeometry(SEGMENT);
  const out = [];
  for (let pos = dataStart; pos + 8 <= b.length; ) {
    const len = b.readInt32LE(pos);
    if (len <= 0) break;
    const end = pos + Math.ceil(len / 8) * 8;
    out.push({ pos, end, seq: Number(b.readBigUInt64LE(pos + RECORD_SEQ_OFFSET)) });
    pos = end;
  }
  return out;
}

function writeAt(file: string, offset: number, bytes: Uint8Array): void {
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, bytes, 0, bytes.length, offset);
  fs.closeSync(fd);
}

/** Opens, expecting ERR_CORRUPT at `seq` in `file`, and checks that no file changed. */
function expectCorruptUnchanged(dir: string, options: LogOptions, seq: number, file: string): LogCorruptError {
  const before = fingerprint(dir);
  let error: unknown;
  try {
    openLog(dir, options).close();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof MmapError, `open ${JSON.stringify(options)} should fail with ERR_CORRUPT, got ${String(error)}`);
  assert.equal(error.code, "ERR_CORRUPT", error.message);
  assert.equal((error as LogCorruptError).seq, seq, error.message);
  assert.equal(error.path, file, error.message);
  assert.deepEqual(fingerprint(dir), before, `open ${JSON.stringify(options)} threw and changed files`);
  return error as LogCorruptError;
}

/** readPrefix: records before `seq` intact, then the damage; appends refused; no file changed. */
function expectPrefixUnchanged(dir: string, seq: number, options: LogOptions = {}): void {
  const before = fingerprint(dir);
  const log = openLog(dir, { onDamage: "readPrefix", ...options });
  try {
    assert.equal(log.damage?.seq, seq);
    assert.equal(log.nextSeq, seq, "log.nextSeq is where the readable records end");
    const r = log.reader();
    let n = 0;
    assert.throws(
      () => {
        for (let rec = r.next(); ; rec = r.next()) {
          assert.ok(rec !== null, "the damage stops the reader, not a silent end");
          assert.equal(checkNumbered(rec.data), rec.seq);
          n++;
        }
      },
      (e: MmapError) => e.code === "ERR_CORRUPT" && (e as LogCorruptError).seq === seq,
    );
    assert.equal(n, seq);
    if (!log.readOnly) assert.throws(() => log.append("x"), { code: "ERR_CORRUPT" });
  } finally {
    log.close();
  }
  assert.deepEqual(fingerprint(dir), before, "a readPrefix open changed files");
}

const ALL_OPENS: LogOptions[] = [{}, { verify: "full" }, { readOnly: true }];

test("a zeroed length word in the newest segment, intact records after it: ERR_CORRUPT, nothing changed (crc true and false)", () => {
  for (const crc of [true, false]) {
    const dir = copy(crc);
    const files = segFiles(dir);
    const file = files[files.length - 1]!;
    const f = frames(file);
    const victim = f[Math.floor(f.length / 2)]!;
    writeAt(file, victim.pos, new Uint8Array(4));
    for (const options of ALL_OPENS) {
      const e = expectCorruptUnchanged(dir, options, victim.seq, file);
      assert.match(e.message, /zero|followed/);
    }
    expectPrefixUnchanged(dir, victim.seq);
    expectPrefixUnchanged(dir, victim.seq, { readOnly: true });
    expectPrefixUnchanged(dir, victim.seq, { verify: "full" });
    assert.equal(inspectLog(dir).damage?.seq, victim.seq);
    assert.equal(inspectLog(dir).nextSeq, victim.seq);
  }
});

test("power loss: a zeroed page inside the newest segment (crc false) is reported, not cut off silently", () => {
  const dir = path.join(root, "power-loss");
  const log = openLog(dir, { create: true, segmentSize: SEGMENT, crc: false });
  for (let n = 0; n < 120; n++) log.append(numberedRecord(n)); // about 40 KiB: one segment
  log.close();
  const file = segFiles(dir)[0]!;
  assert.equal(segFiles(dir).length, 1);
  const f = frames(file);
  const { dataStart } = segmentGeometry(SEGMENT);
  const page = dataStart + 3 * 4096; // records before it, records after it
  assert.ok(f[f.length - 1]!.end > page + 8192, "the segment has records past the page");
  writeAt(file, page, new Uint8Array(4096));
  // The frame the page starts in (or at) is where the readable records end.
  const hit = f.find((fr) => fr.end > page)!;
  for (const options of ALL_OPENS) expectCorruptUnchanged(dir, options, hit.pos === page ? hit.seq : hit.seq + 1, file);
});

test("a zero frame inside a sealed, older segment is damage: readers throw (even after appends), inspectLog and verify full report it, nothing changed", () => {
  for (const crc of [true, false]) {
    const dir = copy(crc);
    const file = segFiles(dir)[1]!;
    const f = frames(file);
    const victim = f[6]!;
    writeAt(file, victim.pos, new Uint8Array(4));
    expectCorruptUnchanged(dir, { verify: "full" }, victim.seq, file);
    expectCorruptUnchanged(dir, { verify: "full", readOnly: true }, victim.seq, file);
    expectPrefixUnchanged(dir, victim.seq, { verify: "full" });
    const s = inspectLog(dir);
    assert.equal(s.damage?.seq, victim.seq, "inspectLog reports it");
    assert.equal(s.damage?.file, file);

    // The default open checks only the newest segment's records; a reader finds the hole.
    const log = openLog(dir);
    try {
      log.append(numberedRecord(RECORDS));
      const r = log.reader();
      let n = 0;
      assert.throws(
        () => {
          for (let rec = r.next(); ; rec = r.next()) {
            assert.ok(rec !== null, "the reader does not stop at the hole as if it were the end");
            n++;
          }
        },
        (e: MmapError) => e.code === "ERR_CORRUPT" && (e as LogCorruptError).seq === victim.seq && e.path === file,
      );
      assert.equal(n, victim.seq);
    } finally {
      log.close();
    }
  }
});

test("verify \"full\" that throws changes nothing; onDamage \"truncate\" still keeps every record before the damage", () => {
  const dir = copy();
  const file = segFiles(dir)[1]!;
  const victim = frames(file)[6]!;
  writeAt(file, victim.pos, new Uint8Array(4));
  expectCorruptUnchanged(dir, { verify: "full" }, victim.seq, file);
  const log = openLog(dir, { verify: "full", onDamage: "truncate" });
  try {
    assert.equal(log.recovery.truncated?.seq, victim.seq);
    const r = log.reader();
    let n = 0;
    for (let rec = r.next(); rec !== null; rec = r.next()) assert.equal(checkNumbered(rec.data), n++);
    assert.equal(n, victim.seq, "the whole prefix is kept");
    assert.equal(log.append(numberedRecord(n)), n);
  } finally {
    log.close();
  }
});

test("after readPrefix on a truncated first segment, reader({ from }) and seek() give MmapErrors, never a RangeError", () => {
  const { dataStart } = segmentGeometry(SEGMENT);
  for (const cut of [5000, dataStart + 100, dataStart + 2000]) {
    const dir = copy();
    const file = segFiles(dir)[0]!;
    fs.truncateSync(file, cut);
    const before = fingerprint(dir);
    for (const readOnly of [false, true]) {
      const log = openLog(dir, { onDamage: "readPrefix", readOnly });
      try {
        const damage = log.damage!;
        assert.equal(damage.code, "ERR_CORRUPT");
        assert.equal(damage.path, file);
        const attempts: [string, () => unknown][] = [
          ["reader({ from: 5 })", () => log.reader({ from: 5 }).next()],
          ["reader().seek(3)", () => {
            const r = log.reader();
            r.seek(3);
            return r.next();
          }],
          ["reader({ from: 0 })", () => log.reader({ from: 0 }).next()],
          ["reader({ from: 400 })", () => log.reader({ from: 400 }).next()],
          ["reader({ from: \"end\" })", () => log.reader({ from: "end" }).next()],
          ["nextSeq", () => log.nextSeq],
        ];
        for (const [what, run] of attempts) {
          try {
            const got = run();
            if (what === "nextSeq") assert.equal(got, damage.seq, "nextSeq is the damage seq");
            else if (got !== null && typeof got === "object") {
              const rec = got as { seq: number; data: Uint8Array };
              assert.ok(rec.seq < damage.seq!, `${what}: only records before the damage`);
              assert.equal(checkNumbered(rec.data), rec.seq);
            }
          } catch (error) {
            assert.ok(error instanceof MmapError, `${what} (cut at ${cut}, readOnly ${readOnly}) threw ${String(error)}`);
          }
        }
      } finally {
        log.close();
      }
    }
    assert.deepEqual(fingerprint(dir), before);
  }
});

test("read-only opens of a damaged newest segment: log.nextSeq, the reader and inspectLog agree on where the records end", () => {
  const damages: [string, (file: string, f: { pos: number; end: number; seq: number }[]) => number][] = [
    ["a bit flip", (file, f) => {
      const b = fs.readFileSync(file).subarray(f[3]!.pos + 40, f[3]!.pos + 41);
      writeAt(file, f[3]!.pos + 40, new Uint8Array([b[0]! ^ 0x20]));
      return f[3]!.seq;
    }],
    ["a zeroed length word", (file, f) => {
      writeAt(file, f[5]!.pos, new Uint8Array(4));
      return f[5]!.seq;
    }],
    ["a truncation", (file, f) => {
      fs.truncateSync(file, f[7]!.pos + 12);
      return f[7]!.seq;
    }],
  ];
  for (const [what, damage] of damages) {
    const dir = copy();
    const files = segFiles(dir);
    const file = files[files.length - 1]!;
    const seq = damage(file, frames(file));
    const before = fingerprint(dir);
    const log = openLog(dir, { readOnly: true, onDamage: "readPrefix" });
    try {
      assert.equal(log.damage?.seq, seq, what);
      assert.equal(log.nextSeq, seq, `${what}: log.nextSeq`);
      const r = log.reader();
      let last = -1;
      assert.throws(() => {
        for (let rec = r.next(); rec !== null; rec = r.next()) last = rec.seq;
      }, { code: "ERR_CORRUPT" }, `${what}: the reader reports the damage`);
      assert.equal(last + 1, seq, `${what}: the reader's last record`);
      assert.equal(r.position, seq);
      assert.equal(inspectLog(dir).nextSeq, seq, `${what}: inspectLog`);
      assert.equal(inspectLog(dir, { verify: "tail" }).nextSeq, seq, `${what}: inspectLog (tail)`);
    } finally {
      log.close();
    }
    assert.deepEqual(fingerprint(dir), before);
  }
});

test("onDamage \"truncate\" always leaves a log that opens: a renamed first segment, a segment renamed past the newest, a lone segment with a bad header", () => {
  const cases: [string, (dir: string) => void, number][] = [
    ["the first segment renamed to seq 5", (dir) => {
      const first = segFiles(dir)[0]!;
      fs.renameSync(first, path.join(dir, "00000000000000000005.seg"));
    }, 5],
    ["the first segment renamed past the newest", (dir) => {
      const first = segFiles(dir)[0]!;
      fs.renameSync(first, path.join(dir, "00000000000000099999.seg"));
    }, RECORDS],
  ];
  for (const [what, damage, seq] of cases) {
    const dir = copy();
    damage(dir);
    assert.throws(() => openLog(dir), { code: "ERR_CORRUPT" }, what);
    const log = openLog(dir, { onDamage: "truncate" });
    try {
      assert.equal(log.recovery.truncated?.seq, seq, what);
      assert.equal(log.nextSeq, seq, what);
      assert.equal(log.append(numberedRecord(seq)), seq, what);
    } finally {
      log.close();
    }
    for (const options of [{}, { create: true }, { verify: "full" as const }]) {
      const again = openLog(dir, options);
      try {
        assert.equal(again.damage, undefined);
        assert.equal(again.nextSeq, seq + 1, `${what}: reopened with ${JSON.stringify(options)}`);
        const r = again.reader();
        let n = 0;
        for (let rec = r.next(); rec !== null; rec = r.next()) {
          assert.equal(checkNumbered(rec.data), rec.seq);
          n++;
        }
        assert.ok(n >= 1, what);
      } finally {
        again.close();
      }
    }
  }

  // A log of one segment whose header is damaged: nothing is readable; the log starts afresh at seq 0.
  const dir = path.join(root, "lone");
  const log = openLog(dir, { create: true, segmentSize: SEGMENT });
  for (let n = 0; n < 10; n++) log.append(numberedRecord(n));
  log.close();
  writeAt(segFiles(dir)[0]!, 0, new Uint8Array([0x7f]));
  const t = openLog(dir, { onDamage: "truncate" });
  assert.equal(t.recovery.truncated?.seq, 0);
  assert.equal(t.recovery.truncated?.movedFiles.length, 1);
  assert.equal(t.append(numberedRecord(0)), 0);
  t.close();
  openLog(dir, { create: true }).close();
});

test("gaps: a reader counts the sequence numbers it passed without a record (ABORTED frames) in reader.skipped", async () => {
  const { makeCrashedLog } = await import("./fixtures/log-crashed.ts");
  const dir = path.join(root, "gaps");
  const stuck = await makeCrashedLog(dir, 4, 3);
  const log = openLog(dir);
  try {
    assert.equal(log.recovery.abortedFrames, 1);
    log.claim(10);
    log.abort(); // a live writer's abort leaves a gap too
    log.append("last");
    const r = log.reader();
    const seqs: number[] = [];
    for (let rec = r.next(); rec !== null; rec = r.next()) seqs.push(rec.seq);
    assert.deepEqual(seqs, [0, 1, 2, 3, 5, 6, 7, 9]);
    assert.equal(stuck, 4);
    assert.equal(r.skipped, 2);
    assert.equal(inspectLog(dir).segments.reduce((n, s) => n + (s.aborted ?? 0), 0), 2);
  } finally {
    log.close();
  }
});

test("the newest segment's last records zeroed to the end (a lost write-back): the tail says they were there, so ERR_CORRUPT, nothing changed", () => {
  for (const crc of [false, true]) {
    const dir = copy(crc);
    const files = segFiles(dir);
    const file = files[files.length - 1]!;
    const f = frames(file);
    const victim = f[f.length - 3]!;
    writeAt(file, victim.pos, new Uint8Array(SEGMENT - victim.pos)); // every byte from there on
    for (const options of ALL_OPENS) {
      const e = expectCorruptUnchanged(dir, options, victim.seq, file);
      assert.match(e.message, /tail/);
    }
    expectPrefixUnchanged(dir, victim.seq);
  }
});

/** The damage fuzz's log fixture (bench/damage-stress.ts), byte for byte where it matters: 240 records of its lengths, 64 KiB segments; record i starts with i. */
function fuzzFixture(name: string, crc = false): string {
  const dir = path.join(root, name);
  const log = openLog(dir, { create: true, segmentSize: SEGMENT, crc });
  for (let i = 0; i < 240; i++) {
    const data = new Uint8Array(Math.max(32, 16 + (((i * 2654435761) >>> 0) % 1500)));
    new DataView(data.buffer).setUint32(0, i, true);
    log.append(data);
  }
  log.close();
  return dir;
}

function flipBits(file: string, flips: readonly (readonly [at: number, bit: number])[]): void {
  for (const [at, bit] of flips) {
    const b = fs.readFileSync(file).subarray(at, at + 1);
    b[0]! ^= 1 << bit;
    writeAt(file, at, b);
  }
}

/** The fuzz fixture's newest segment (seqs 212–239, records end and the tail is at byte 30960) and its frame at byte `pos`, which holds `seq`. */
function fuzzNewest(name: string, pos: number, seq: number): { dir: string; file: string; f: ReturnType<typeof frames>; victim: ReturnType<typeof frames>[number] } {
  const dir = fuzzFixture(name);
  const file = path.join(dir, "00000000000000000212.seg");
  const f = frames(file);
  const victim = f.find((fr) => fr.pos === pos)!;
  assert.equal(victim.seq, seq);
  assert.equal(f[f.length - 1]!.end, 30960, "the records end (and the tail is) at byte 30960");
  return { dir, file, f, victim };
}

const firstWord = (data: Uint8Array): number => new DataView(data.buffer, data.byteOffset).getUint32(0, true);

test("damage-fuzz seed 20261208 trial #94 (crc false): a length flipped to jump past the tail into the zeros is damage, not the end (no silent loss)", () => {
  const { dir, file, victim } = fuzzNewest("fuzz-94", 24976, 232);
  // The trial's 7 bit flips: in the index page's spare bytes, in payloads, and bit 7 of
  // the length word's second byte at 24977 (272 becomes 33040: from 24976 to byte 58016, past the tail, all zeros).
  flipBits(file, [[17174, 6], [5593, 7], [29552, 6], [16820, 5], [5435, 4], [19175, 1], [24977, 7]]);
  for (const options of ALL_OPENS) assert.match(expectCorruptUnchanged(dir, options, victim.seq, file).message, /tail/);
  assert.equal(inspectLog(dir).damage?.seq, victim.seq);
  const before = fingerprint(dir);
  const prefix = openLog(dir, { onDamage: "readPrefix" });
  try {
    assert.equal(prefix.damage?.seq, victim.seq);
    const r = prefix.reader();
    let n = 0;
    assert.throws(() => {
      for (let rec = r.next(); rec !== null; rec = r.next()) assert.equal(firstWord(rec.data), n++);
    }, { code: "ERR_CORRUPT" });
    assert.equal(n, victim.seq, "every record before the damaged one");
  } finally {
    prefix.close();
  }
  assert.deepEqual(fingerprint(dir), before);
});

test("damage-fuzz seed 20261208 trial #3754: a length word whose sign bit flipped in a sealed segment is damage, not a claimed frame to wait at (crc false and true)", () => {
  for (const crc of [false, true]) {
    const dir = fuzzFixture(`fuzz-3754-${crc}`, crc);
    const file = path.join(dir, "00000000000000000139.seg");
    const victim = frames(file).find((fr) => fr.pos === 40064)!;
    assert.equal(victim.seq, 181);
    // The trial's flips: two in payloads (which a CRC would catch first: not with crc), and
    // bit 31 of the length word at 40064 (433 becomes -2147483215; no CRC covers the length word).
    flipBits(file, crc ? [[40067, 7]] : [[29428, 3], [33864, 6], [40067, 7]]);
    expectCorruptUnchanged(dir, { verify: "full" }, victim.seq, file);
    assert.equal(inspectLog(dir).damage?.seq, victim.seq);
    // The default open walks only the newest segment; the reader meets the damage.
    for (const options of [{}, { readOnly: true }]) {
      const before = fingerprint(dir);
      const log = openLog(dir, options);
      try {
        const r = log.reader();
        let n = 0;
        assert.throws(
          () => {
            for (let rec = r.next(); ; rec = r.next()) {
              assert.ok(rec !== null, `the reader stopped at seq ${r.position} as if a writer were still writing there`);
              assert.equal(firstWord(rec.data), n++);
            }
          },
          (e: MmapError) => e.code === "ERR_CORRUPT" && (e as LogCorruptError).seq === victim.seq && e.path === file,
        );
        assert.equal(n, victim.seq);
      } finally {
        log.close();
      }
      assert.deepEqual(fingerprint(dir), before);
    }
  }
});

test("power loss left the tail hint behind, then a length jumps into the zeros past the end (crc false): the sparse index shows the frames jumped over, so ERR_CORRUPT, nothing changed", () => {
  const { dir, file, f, victim } = fuzzNewest("stale-tail-jump", 18528, 225);
  // A header page written back before the data pages (a power failure): the tail hint is behind the frames.
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(f[3]!.pos);
  writeAt(file, 128, tail);
  // The victim's length now reaches byte 32000, in the zeros past the last record: a walk would end there,
  // and the index entries of bytes 20480, 24576 and 28672 name frames it jumped over.
  const length = Buffer.alloc(4);
  length.writeInt32LE(32000 - victim.pos);
  writeAt(file, victim.pos, length);
  for (const options of ALL_OPENS) assert.match(expectCorruptUnchanged(dir, options, victim.seq, file).message, /jumps over/);
  assert.equal(inspectLog(dir).damage?.seq, victim.seq);
  // Truncation cuts there, and clears the index entries of what it cut (stale ones would name frames that are gone).
  openLog(dir, { onDamage: "truncate" }).close();
  const { indexStart, indexEntries, dataStart } = segmentGeometry(SEGMENT);
  const index = fs.readFileSync(file).subarray(indexStart, indexStart + 4 * indexEntries);
  for (let k = 0; k < indexEntries; k++) if (dataStart + k * 4096 >= victim.pos) assert.equal(index.readUInt32LE(4 * k), 0, `index entry ${k}`);
  const log = openLog(dir, { verify: "full" });
  try {
    assert.equal(log.nextSeq, victim.seq);
  } finally {
    log.close();
  }
});

test("every single-bit flip of a length word, in the newest segment and in a sealed one (crc false): reported, or no intact record lost", () => {
  const dir = fuzzFixture("length-sweep");
  const silent: string[] = [];
  for (const name of ["00000000000000000212.seg", "00000000000000000071.seg"]) {
    const file = path.join(dir, name);
    for (const f of frames(file)) {
      for (let bit = 0; bit < 32; bit++) {
        flipBits(file, [[f.pos + (bit >>> 3), bit & 7]]);
        // Read-only: the same checks as any open, and nothing written, so the flip is undone in place.
        const got = new Set<number>();
        let reported = false;
        try {
          const log = openLog(dir, { readOnly: true });
          try {
            reported = log.damage !== undefined;
            const r = log.reader();
            for (let rec = r.next(); rec !== null; rec = r.next()) got.add(rec.seq);
          } finally {
            log.close();
          }
        } catch (error) {
          assert.equal((error as MmapError).code, "ERR_CORRUPT", String(error));
          reported = true;
        }
        flipBits(file, [[f.pos + (bit >>> 3), bit & 7]]);
        const lost = Array.from({ length: 240 }, (_, s) => s).filter((s) => s !== f.seq && !got.has(s));
        if (!reported && lost.length > 0) silent.push(`${name} seq ${f.seq} bit ${bit}: ${lost.length} records lost from ${lost[0]}`);
      }
    }
  }
  assert.deepEqual(silent, []);
});
