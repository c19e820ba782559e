/**
 * The log's API in one process: appending every kind of data, batches,
 * zero-copy claim/commit/abort, reading, seek through the sparse index,
 * the ends of the log, roll-over, durability modes, inspectLog, closing, and
 * the coded errors for bad arguments.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { MmapError, inspectLog, openLog, type Log } from "../src/index.ts";
import { smapsFor } from "./fixtures/core-helpers.ts";
import { checkNumbered, makeTmpDir, numberedRecord, removeTmpDir } from "./fixtures/log-helpers.ts";

let root: string;
let dirs = 0;
before(() => {
  root = makeTmpDir();
});
after(() => removeTmpDir(root));

function fresh(options: Parameters<typeof openLog>[1] = {}): Log {
  return openLog(path.join(root, `log-${dirs++}`), { create: true, ...options });
}

function texts(log: Log, from: "start" | "end" | number = "start"): string[] {
  const r = log.reader({ from });
  const out: string[] = [];
  for (let rec = r.next(); rec !== null; rec = r.next()) out.push(Buffer.from(rec.data).toString());
  r.close();
  return out;
}

const isCode = (code: string) => (e: unknown) => e instanceof MmapError && e.code === code;

test("append takes strings, Uint8Arrays and other views; sequence numbers start at 0", () => {
  const log = fresh();
  assert.equal(log.nextSeq, 0);
  assert.equal(log.append("héllo"), 0);
  assert.equal(log.append(new Uint8Array([1, 2, 3])), 1);
  assert.equal(log.append(new Uint16Array([0x4241])), 2);
  assert.equal(log.append(new DataView(new Uint8Array([9, 8, 7, 6]).buffer, 1, 2)), 3);
  assert.equal(log.append(""), 4);
  assert.equal(log.append("x".repeat(5000)), 5);
  const r = log.reader();
  const got: [number, string][] = [];
  for (let rec = r.next(); rec !== null; rec = r.next()) got.push([rec.seq, Buffer.from(rec.data).toString("latin1")]);
  assert.deepEqual(got.slice(0, 5), [
    [0, Buffer.from("héllo").toString("latin1")],
    [1, "\x01\x02\x03"],
    [2, "AB"],
    [3, "\x08\x07"],
    [4, ""],
  ]);
  assert.equal(got[5]![1]!.length, 5000);
  const t = log.reader({ from: 0 }).next()!.timestamp;
  assert.ok(Math.abs(t - Date.now()) < 60_000, "records carry the append time");
  assert.equal(log.nextSeq, 6);
  log.close();
});

test("a writer keeps the pages ahead of its tail faulted in, off the event loop", async () => {
  const log = fresh({ segmentSize: 8 << 20 });
  const segment = path.join(log.dir, fs.readdirSync(log.dir).find((f) => f.endsWith(".seg"))!);
  const mappedKb = (): number => smapsFor(segment).Rss;
  const before = mappedKb();
  log.append("first");
  for (let i = 0; i < 200 && mappedKb() < before + 1024; i++) await new Promise((resolve) => setTimeout(resolve, 5));
  // A megabyte or more past the tail is mapped in before any record reaches it.
  assert.ok(mappedKb() >= before + 1024, `mapped ${before} kB, then ${mappedKb()} kB`);
  assert.ok(mappedKb() <= before + 2 * 1024 + 8, `no more than two chunks ahead: ${mappedKb()} kB`);
  assert.deepEqual(texts(log), ["first"]);
  log.close();
});

test("appendBatch returns each record's seq; a bad item appends nothing", () => {
  const log = fresh({ crc: true });
  assert.deepEqual(log.appendBatch(["a", "b", new Uint8Array([99])]), [0, 1, 2]);
  assert.deepEqual(log.appendBatch([]), []);
  assert.throws(() => log.appendBatch(["c", 5 as unknown as string]), isCode("ERR_INVALID_ARG"));
  assert.equal(log.nextSeq, 3, "nothing of the failed batch was appended");
  assert.deepEqual(texts(log), ["a", "b", "c"]);
  log.close();
});

test("claim/commit is zero-copy; abort leaves an ABORTED frame that readers skip", () => {
  const log = fresh();
  const view = log.claim(4);
  view.set([10, 20, 30, 40]);
  assert.throws(() => log.append("no"), isCode("ERR_BUSY"), "one claim at a time");
  assert.equal(log.commit(), 0);
  assert.equal(view.length, 0, "the claimed view is detached by commit");
  log.claim(3).set([1, 2, 3]);
  log.abort();
  assert.equal(log.append("after"), 2, "the aborted record used seq 1");
  const r = log.reader();
  assert.deepEqual([...r.next()!.data], [10, 20, 30, 40]);
  const next = r.next()!;
  assert.equal(next.seq, 2);
  assert.equal(r.next(), null);
  assert.throws(() => log.commit(), isCode("ERR_BUSY"));
  log.close();
});

test("records roll over to new segments; seek finds any seq through the sparse index", () => {
  const log = fresh({ segmentSize: 64 * 1024, crc: true });
  const N = 3000;
  for (let n = 0; n < N; n++) assert.equal(log.append(numberedRecord(n, 200)), n);
  const segments = fs.readdirSync(log.dir).filter((f) => f.endsWith(".seg"));
  assert.ok(segments.length >= 6, `${segments.length} segments`);
  const r = log.reader();
  for (const target of [0, 1, 17, 999, 1000, 1234, 2998, 2999, ...Array.from({ length: 50 }, () => Math.floor(Math.random() * N))]) {
    r.seek(target);
    const rec = r.next()!;
    assert.equal(rec.seq, target);
    assert.equal(checkNumbered(rec.data, 200), target);
  }
  r.seek(N);
  assert.equal(r.next(), null, "seek to nextSeq: the end");
  assert.throws(() => r.seek(N + 1), isCode("ERR_OUT_OF_RANGE"));
  assert.throws(() => r.seek(-1), isCode("ERR_INVALID_ARG"));
  // Every record, in order, across all segments.
  const all = log.reader();
  let n = 0;
  for (let rec = all.next(); rec !== null; rec = all.next()) assert.equal(checkNumbered(rec.data, 200), n++);
  assert.equal(n, N);
  // A reader from "end" sees only what comes next.
  const tail = log.reader({ from: "end" });
  assert.equal(tail.next(), null);
  log.append(numberedRecord(N, 200));
  assert.equal(tail.next()!.seq, N);
  log.close();
});

test("the sparse index is untrusted: zeroed or garbage entries still seek right", () => {
  const dir = path.join(root, `log-${dirs++}`);
  const log = openLog(dir, { create: true, segmentSize: 256 * 1024 });
  for (let n = 0; n < 3000; n++) log.append(numberedRecord(n, 150));
  log.close();
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".seg"));
  // The index lives between the 4 KiB header and the data (src/log/layout.ts).
  const zeroed = path.join(dir, files[0]!);
  const fd0 = fs.openSync(zeroed, "r+");
  fs.writeSync(fd0, Buffer.alloc(256), 0, 256, 4096);
  fs.closeSync(fd0);
  const garbled = path.join(dir, files[1]!);
  const fd1 = fs.openSync(garbled, "r+");
  fs.writeSync(fd1, Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 37) & 0xff)), 0, 256, 4096);
  fs.closeSync(fd1);
  const again = openLog(dir);
  const r = again.reader();
  for (const target of [0, 5, 100, 400, 700, 1500, 2999]) {
    r.seek(target);
    assert.equal(checkNumbered(r.next()!.data, 150), target);
  }
  again.close();
});

test("a record larger than a segment can hold is refused with ERR_TOO_LARGE", () => {
  const log = fresh({ segmentSize: 64 * 1024 });
  assert.ok(log.maxRecordLength > 50_000 && log.maxRecordLength < 64 * 1024);
  assert.equal(log.append(new Uint8Array(log.maxRecordLength)), 0);
  assert.throws(() => log.append(new Uint8Array(log.maxRecordLength + 1)), isCode("ERR_TOO_LARGE"));
  assert.throws(() => log.claim(log.maxRecordLength + 1), isCode("ERR_TOO_LARGE"));
  assert.equal(log.append("fits"), 1);
  assert.equal(texts(log, 1)[0], "fits");
  log.close();
});

test("durability modes: flush() resolves once data is on disk; sync and batch append the same records", async () => {
  for (const durability of ["none", "batch", "sync"] as const) {
    const log = fresh({ durability, segmentSize: 64 * 1024, flushIntervalMs: 5, flushRecords: 10 });
    assert.equal(log.durability, durability);
    for (let i = 0; i < 500; i++) log.append(`${durability} ${i}`);
    await log.flush();
    log.appendBatch(["x", "y"]);
    await log.flush();
    const r = log.reader({ name: "c" });
    r.next();
    r.commit();
    await log.flush();
    assert.equal(texts(log).length, 502);
    log.close();
  }
});

test("a reopened log continues where it ended; inspectLog describes it", () => {
  const dir = path.join(root, `log-${dirs++}`);
  const log = openLog(dir, { create: true, segmentSize: 64 * 1024 });
  for (let i = 0; i < 1000; i++) log.append(numberedRecord(i, 100));
  log.reader({ name: "half", from: 500 }).close();
  log.close();
  const again = openLog(dir);
  assert.equal(again.nextSeq, 1000);
  assert.equal(again.append(numberedRecord(1000, 100)), 1000);
  const info = inspectLog(dir);
  assert.equal(info.firstSeq, 0);
  assert.equal(info.nextSeq, 1001);
  assert.equal(info.segmentSize, 64 * 1024);
  assert.deepEqual(info.cursors.map((c) => [c.name, c.seq, c.lag]), [["half", 500, 501]]);
  assert.equal(info.segments.reduce((a, s) => a + (s.records ?? 0), 0), 1001);
  assert.ok(info.segments.slice(0, -1).every((s) => s.sealed === true));
  assert.equal(info.segments.at(-1)!.sealed, false);
  assert.ok(info.writers.some((w) => w.pid === process.pid && w.alive), "this process holds a writer slot");
  assert.equal(info.damage, undefined);
  again.close();
  assert.throws(() => inspectLog(path.join(root, "nope")), isCode("ENOENT"));
});

test("closing: idempotent; later calls fail with ERR_CLOSED; record views are detached", () => {
  const log = fresh();
  log.append("abc");
  const r = log.reader();
  const rec = r.next()!;
  log.close();
  log.close();
  assert.equal(rec.data.length, 0, "views into the mapping are detached by close");
  assert.throws(() => log.append("x"), isCode("ERR_CLOSED"));
  assert.throws(() => r.next(), isCode("ERR_CLOSED"));
  assert.throws(() => log.nextSeq, isCode("ERR_CLOSED"));
  assert.throws(() => log.reader(), isCode("ERR_CLOSED"));
});

test("bad arguments are coded errors that say what was expected", () => {
  const dir = path.join(root, `log-${dirs++}`);
  assert.throws(() => openLog(dir), (e: MmapError) => e.code === "ENOENT" && /create: true/.test(e.message));
  assert.throws(() => openLog(""), isCode("ERR_INVALID_ARG"));
  assert.throws(() => openLog(dir, { create: true, segmentSize: 1000 }), (e: MmapError) => e.code === "ERR_INVALID_ARG" && /multiple of 4096/.test(e.message));
  assert.throws(() => openLog(dir, { create: true, durability: "fast" as "none" }), (e: MmapError) => e.code === "ERR_INVALID_ARG" && /"batch"/.test(e.message));
  assert.throws(() => openLog(dir, { create: true, retention: { maxCount: 3 } as object }), (e: MmapError) => /openLog retention: unknown option "maxCount"/.test(e.message));
  assert.throws(() => openLog(dir, { create: true, colour: 1 } as object), (e: MmapError) => /unknown option "colour"/.test(e.message));
  assert.throws(() => openLog(dir, { create: true, flushRecords: 0 }), isCode("ERR_INVALID_ARG"));
  const log = openLog(dir, { create: true });
  assert.throws(() => log.append(42 as unknown as string), (e: MmapError) => e.code === "ERR_INVALID_ARG" && /Uint8Array/.test(e.message));
  assert.throws(() => log.append(null as unknown as string), isCode("ERR_INVALID_ARG"));
  assert.throws(() => log.claim(-1), isCode("ERR_INVALID_ARG"));
  assert.throws(() => log.reader({ from: "middle" as "start" }), isCode("ERR_INVALID_ARG"));
  assert.throws(() => log.reader({ verifyCrc: 1 as unknown as boolean }), isCode("ERR_INVALID_ARG"));
  assert.throws(() => log.reader({ limit: 3 } as object), isCode("ERR_INVALID_ARG"));
  log.close();
});

test("two logs open on one directory in one process behave like two processes", () => {
  const dir = path.join(root, `log-${dirs++}`);
  const a = openLog(dir, { create: true });
  const b = openLog(dir);
  assert.equal(a.recovery.exclusive, true);
  assert.equal(b.recovery.exclusive, false, "the second opener shares the log");
  const seqs: number[] = [];
  for (let i = 0; i < 100; i++) seqs.push((i % 2 === 0 ? a : b).append(`r${i}`));
  assert.deepEqual(seqs, Array.from({ length: 100 }, (_, i) => i));
  const r = b.reader();
  assert.equal(texts(a).length, 100);
  assert.equal(r.next()!.seq, 0);
  a.close();
  b.close();
});
