/**
 * onDamage "truncate" when the log's own files stand in the way (issue 10
 * item 5, "always leaves a log that opens"): a damaged or missing log.meta
 * while segments exist, and a directory, symbolic link or FIFO where a
 * segment file should be. Truncate moves them into damaged-<t>/ and rebuilds
 * log.meta from the segments; without truncate the open throws and every
 * file stays byte-identical.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { MmapError, openLog, type LogOptions } from "../src/index.ts";
import { CURSOR_SEQ_OFFSET, CURSOR_STATE_OFFSET, CURSOR_TABLE_OFFSET, META_FLAGS_OFFSET, META_FLAG_CRC, META_SEGMENT_SIZE_OFFSET } from "../src/log/layout.ts";
import { checkNumbered, makeTmpDir, numberedRecord, removeTmpDir } from "./fixtures/log-helpers.ts";

const SEGMENT = 64 * 1024;
const RECORDS = 700;
let root: string;
const templates = new Map<boolean, string>();

/** A log of several segments with one durable reader ("billing", at seq 1). */
function makeTemplate(dir: string, crc: boolean): string {
  const log = openLog(dir, { create: true, segmentSize: SEGMENT, crc });
  try {
    for (let n = 0; n < RECORDS; n++) log.append(numberedRecord(n));
    const billing = log.reader({ name: "billing" });
    billing.next();
    billing.commit();
  } finally {
    log.close();
  }
  return dir;
}

before(() => {
  root = makeTmpDir();
  templates.set(true, makeTemplate(path.join(root, "with-crc"), true));
  templates.set(false, makeTemplate(path.join(root, "without-crc"), false));
});
after(() => removeTmpDir(root));

/** A fresh copy of a template to damage. */
let copies = 0;
const copy = (crc: boolean): string => {
  const dir = path.join(root, `damaged-copy-${++copies}`);
  fs.cpSync(templates.get(crc)!, dir, { recursive: true });
  return dir;
};

/** Every entry's kind and (for files) hash, without following links or opening FIFOs. */
function fingerprint(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const entry = path.join(rel, name);
      const st = fs.lstatSync(path.join(dir, entry));
      if (st.isDirectory()) {
        out.set(entry, "dir");
        walk(entry);
      } else if (st.isFile()) out.set(entry, createHash("sha256").update(fs.readFileSync(path.join(dir, entry))).digest("hex"));
      else out.set(entry, st.isSymbolicLink() ? `link ${fs.readlinkSync(path.join(dir, entry))}` : "other");
    }
  };
  walk("");
  return out;
}

function segFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith(".seg")).sort().map((n) => path.join(dir, n));
}

function writeAt(file: string, at: number, bytes: Uint8Array): void {
  const fd = fs.openSync(file, "r+");
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, at);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads every record from the start; asserts each is intact and in order; returns the count. */
function readAll(dir: string, options: LogOptions = {}): number {
  const log = openLog(dir, options);
  try {
    const r = log.reader();
    let n = 0;
    for (let rec = r.next(); rec !== null; rec = r.next()) {
      assert.equal(rec.seq, n);
      assert.equal(checkNumbered(rec.data), n);
      n++;
    }
    assert.equal(log.nextSeq, n);
    return n;
  } finally {
    log.close();
  }
}

/** Without truncate: throws with a string code and changes nothing. */
function refusedUntouched(dir: string, what: string): void {
  const before = fingerprint(dir);
  for (const options of [{}, { onDamage: "readPrefix" as const }, { verify: "full" as const }]) {
    assert.throws(() => openLog(dir, options), (error: unknown) => error instanceof MmapError && typeof error.code === "string", what);
  }
  assert.deepEqual(fingerprint(dir), before, `${what}: files unchanged`);
}

const metaDamage: [string, (meta: string) => void][] = [
  ["bad magic", (meta) => writeAt(meta, 0, new Uint8Array([0x58]))],
  ["bad version", (meta) => writeAt(meta, 8, new Uint8Array([0x63]))],
  ["header checksum", (meta) => writeAt(meta, META_SEGMENT_SIZE_OFFSET + 2, new Uint8Array([0x02]))],
  ["truncated", (meta) => fs.truncateSync(meta, 100)],
  ["zero-length", (meta) => fs.truncateSync(meta, 0)],
  ["a directory", (meta) => {
    fs.rmSync(meta);
    fs.mkdirSync(meta);
  }],
  ["missing", (meta) => fs.rmSync(meta)],
];

test("a damaged or missing log.meta: truncate rebuilds it from the segments and keeps every record; without truncate, nothing changes", () => {
  for (const crc of [true, false]) {
    for (const [kind, damage] of metaDamage) {
      const what = `${kind} (crc ${crc})`;
      const dir = copy(crc);
      damage(path.join(dir, "log.meta"));
      refusedUntouched(dir, what);
      const log = openLog(dir, { onDamage: "truncate" });
      try {
        const rebuilt = log.recovery.metaRebuilt;
        assert.ok(rebuilt !== undefined, `${what}: metaRebuilt`);
        const readable = kind === "bad magic" || kind === "bad version" || kind === "header checksum";
        assert.deepEqual(rebuilt.lostCursors, readable ? ["billing"] : [], `${what}: lost cursors`);
        assert.equal(log.recovery.truncated, undefined, `${what}: no segment cut`);
        if (kind !== "missing") assert.deepEqual(log.recovery.movedAside?.movedFiles, ["log.meta"], what);
        assert.equal(log.nextSeq, RECORDS, what);
        assert.equal(log.append(numberedRecord(RECORDS)), RECORDS, what);
      } finally {
        log.close();
      }
      const meta = fs.readFileSync(path.join(dir, "log.meta"));
      assert.equal(meta.readUInt32LE(META_SEGMENT_SIZE_OFFSET), SEGMENT, `${what}: segment size from the headers`);
      assert.equal((meta.readUInt32LE(META_FLAGS_OFFSET) & META_FLAG_CRC) !== 0, crc, `${what}: crc flag from the records`);
      // Later opens of every kind work and see every record.
      assert.equal(readAll(dir), RECORDS + 1, what);
      assert.equal(readAll(dir, { verify: "full" }), RECORDS + 1, what);
      assert.equal(readAll(dir, { create: true }), RECORDS + 1, what);
      assert.equal(readAll(dir, { readOnly: true }), RECORDS + 1, what);
    }
  }
});

test("a damaged log.meta and a damaged segment: truncate rebuilds the meta and keeps the longest valid prefix", () => {
  const dir = copy(true);
  fs.truncateSync(path.join(dir, "log.meta"), 0);
  const second = segFiles(dir)[1]!;
  const base = Number(path.basename(second, ".seg"));
  writeAt(second, 0, new Uint8Array([0x7f])); // its header
  refusedUntouched(dir, "meta and segment");
  const log = openLog(dir, { onDamage: "truncate" });
  try {
    assert.ok(log.recovery.metaRebuilt);
    assert.equal(log.recovery.truncated?.seq, base);
    assert.equal(log.nextSeq, base);
  } finally {
    log.close();
  }
  assert.equal(readAll(dir), base);
});

test("a directory, symbolic link or FIFO where a segment should be: truncate moves it aside and keeps the prefix before it", () => {
  const kinds: [string, (file: string) => void][] = [
    ["a directory", (file) => fs.mkdirSync(file)],
    ["a symbolic link", (file) => fs.symlinkSync("/etc/hostname", file)],
    ["a FIFO", (file) => execFileSync("mkfifo", [file])],
  ];
  for (const [kind, make] of kinds) {
    const dir = copy(false);
    const segs = segFiles(dir);
    assert.ok(segs.length >= 3, "the template has several segments");
    const victim = segs[1]!;
    const base = Number(path.basename(victim, ".seg"));
    fs.rmSync(victim);
    make(victim);
    refusedUntouched(dir, kind);
    const log = openLog(dir, { onDamage: "truncate" });
    try {
      assert.equal(log.recovery.metaRebuilt, undefined, kind);
      assert.deepEqual(log.recovery.movedAside?.movedFiles, [path.basename(victim)], kind);
      assert.equal(log.recovery.truncated?.seq, base, kind);
      assert.equal(log.nextSeq, base, kind);
      assert.equal(log.append(numberedRecord(base)), base, kind);
    } finally {
      log.close();
    }
    assert.equal(readAll(dir), base + 1, kind);
    assert.equal(readAll(dir, { create: true }), base + 1, kind);
  }
});

test("a malformed durable reader: truncate drops it (reported), so named readers and retention work again", () => {
  const kinds: [string, number, string][] = [
    ["its seq word", CURSOR_TABLE_OFFSET + CURSOR_SEQ_OFFSET + 1, "billing"],
    ["its state", CURSOR_TABLE_OFFSET + CURSOR_STATE_OFFSET, "slot 0"],
  ];
  for (const [what, at, dropped] of kinds) {
    const dir = copy(true);
    writeAt(path.join(dir, "log.meta"), at, new Uint8Array([0x5a]));
    const plain = openLog(dir);
    try {
      assert.throws(() => plain.reader({ name: "billing" }), { code: "ERR_CORRUPT" }, what);
    } finally {
      plain.close();
    }
    const log = openLog(dir, { onDamage: "truncate" });
    try {
      assert.deepEqual(log.recovery.droppedCursors, [dropped], what);
      assert.equal(log.recovery.truncated, undefined, what);
      const r = log.reader({ name: "billing" });
      assert.equal(r.next()?.seq, 0, `${what}: starts again from its from option`);
      r.commit();
    } finally {
      log.close();
    }
    assert.equal(readAll(dir), RECORDS, what);
  }
});
