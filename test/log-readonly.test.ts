/**
 * Read-only opens (`openLog(dir, { readOnly: true })`): an inspector that
 * changes nothing. On a log a writer crashed in, it reads the records before
 * the frame the dead writer left claimed and leaves every file byte-identical
 * (a later normal open still repairs it); every method that writes throws
 * ERR_READ_ONLY; tailing sees appends by other processes, also without write
 * access to the files (polling then); it works while others write.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { tmpDir } from "./helpers/tmp.ts";
import { MmapError, openLog, type LogRecord } from "../src/index.ts";
import { fingerprint, makeCrashedLog } from "./fixtures/log-crashed.ts";
import { FIXTURES_DIR, makeTmpDir, removeBundles, removeTmpDir, spawnFixture } from "./fixtures/log-helpers.ts";

after(() => removeBundles());

function text(rec: LogRecord): string {
  return Buffer.from(rec.data).toString("utf8");
}

const SEGMENT = 64 * 1024; // small files: the tests hash them
const readOnlyError = { code: "ERR_READ_ONLY", message: /opened read-only/ };

test("a read-only open of a crashed log reads up to the dead writer's claimed frame and changes no byte", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const stuck = await makeCrashedLog(dir, 10, 3);
  assert.equal(stuck, 10);
  const before = fingerprint(dir);
  assert.ok(before.has("log.meta") && before.has(path.join("locks", "open.lock")), [...before.keys()].join(", "));

  const log = openLog(dir, { readOnly: true, abandonTimeoutMs: 20 });
  assert.deepEqual(log.recovery, { exclusive: false, abortedFrames: 0, rewoundFrames: 0 });
  const reader = log.reader();
  const got: string[] = [];
  for (let rec = reader.next(); rec !== null; rec = reader.next()) got.push(text(rec));
  assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => `before ${i}`));
  assert.equal(reader.position, stuck);

  // Tailing waits at the frame (its writer is dead, but sealing it is a
  // repair) many abandon timeouts long, without spinning, until aborted.
  const stop = new AbortController();
  const tailed: string[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  setTimeout(() => stop.abort(), 400);
  await assert.rejects(async () => {
    for await (const rec of log.reader({ from: 8, signal: stop.signal })) tailed.push(text(rec));
  }, { code: "ERR_ABORTED" });
  const cpu = process.cpuUsage(cpu0);
  assert.deepEqual(tailed, ["before 8", "before 9"]);
  assert.ok(performance.now() - t0 >= 390);
  assert.ok((cpu.user + cpu.system) / 1000 < 150, `the wait used ${(cpu.user + cpu.system) / 1000} ms of CPU in 400 ms`);

  // The frame stays unsealed; what follows it is there for a seek.
  assert.equal(reader.next(), null);
  reader.seek(stuck + 1);
  assert.equal(text(reader.next()!), "after 0");
  assert.equal(log.nextSeq, stuck + 4);
  log.close();
  assert.deepEqual(fingerprint(dir), before, "every file byte-identical, no file added or removed");

  // A normal open, alone with the log, repairs it as before.
  const repaired = openLog(dir);
  try {
    assert.equal(repaired.recovery.exclusive, true);
    assert.equal(repaired.recovery.abortedFrames, 1, "the claimed frame, followed by committed ones, is sealed ABORTED");
    const all: [number, string][] = [];
    const r = repaired.reader();
    for (let rec = r.next(); rec !== null; rec = r.next()) all.push([rec.seq, text(rec)]);
    assert.equal(all.length, 13);
    assert.deepEqual(all.slice(9), [[9, "before 9"], [11, "after 0"], [12, "after 1"], [13, "after 2"]]);
  } finally {
    repaired.close();
  }
});

test("every method that writes throws ERR_READ_ONLY; create and truncate are refused", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const writer = openLog(dir, { create: true, segmentSize: SEGMENT });
  writer.append("one");
  writer.reader({ name: "billing" }).commit(1);
  writer.close();
  const before = fingerprint(dir);

  const log = openLog(dir, { readOnly: true });
  assert.equal(log.readOnly, true);
  assert.throws(() => log.append("x"), readOnlyError);
  assert.throws(() => log.appendBatch(["x", "y"]), readOnlyError);
  assert.throws(() => log.claim(8), readOnlyError);
  assert.throws(() => log.commit(), readOnlyError);
  assert.throws(() => log.abort(), readOnlyError);
  await assert.rejects(log.flush(), readOnlyError);
  assert.throws(() => log.retain({ maxSegments: 1 }), readOnlyError);
  assert.throws(() => log.deleteCursor("billing"), readOnlyError);
  assert.throws(() => log.reader({ name: "billing" }), readOnlyError);
  assert.throws(() => log.reader({ name: "new" }), readOnlyError);
  const reader = log.reader();
  assert.throws(() => reader.commit(), readOnlyError);
  assert.throws(() => reader.commit(0), readOnlyError);
  assert.deepEqual(log.cursors().map((c) => [c.name, c.seq]), [["billing", 1]], "reading cursors is fine");
  assert.equal(text(reader.next()!), "one");
  assert.equal(reader.next(), null);
  log.close();
  assert.deepEqual(fingerprint(dir), before);

  assert.throws(() => openLog(dir, { readOnly: true, create: true }), { code: "ERR_INVALID_ARG" });
  assert.throws(() => openLog(dir, { readOnly: true, onDamage: "truncate" }), { code: "ERR_INVALID_ARG" });
  const missing = path.join(dir, "nope");
  assert.throws(() => openLog(missing, { readOnly: true }), { code: "ENOENT" });
  assert.equal(fs.existsSync(missing), false);
  assert.deepEqual(fingerprint(dir), before);
});

test('read-only honours onDamage "throw" and "readPrefix", and repairs nothing', () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const writer = openLog(dir, { create: true, segmentSize: SEGMENT, crc: true });
  for (let i = 0; i < 20; i++) writer.append(`record ${i};`);
  writer.close();
  const seg = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith(".seg"))!);
  const bytes = fs.readFileSync(seg);
  const at = bytes.indexOf("record 12;");
  bytes[at + 3]! ^= 0x20; // a bit flip in record 12's data: its CRC no longer matches
  fs.writeFileSync(seg, bytes);
  const before = fingerprint(dir);

  assert.throws(() => openLog(dir, { readOnly: true }), (error: unknown) => {
    assert.ok(error instanceof MmapError && error.code === "ERR_CORRUPT", String(error));
    assert.equal((error as MmapError & { seq: number }).seq, 12);
    return true;
  });
  const log = openLog(dir, { readOnly: true, onDamage: "readPrefix" });
  assert.equal(log.damage?.seq, 12);
  assert.equal(log.recovery.damage?.seq, 12);
  const reader = log.reader();
  const got: string[] = [];
  assert.throws(() => {
    for (let rec = reader.next(); rec !== null; rec = reader.next()) got.push(text(rec));
  }, { code: "ERR_CORRUPT" });
  assert.deepEqual(got, Array.from({ length: 12 }, (_, i) => `record ${i};`));
  log.close();
  assert.deepEqual(fingerprint(dir), before);
});

test("a read-only tailing reader sees records another process appends; its signal ends it, and so does close", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  openLog(dir, { create: true, segmentSize: SEGMENT }).close();
  const log = openLog(dir, { readOnly: true });
  const stop = new AbortController();
  const COUNT = 5;
  const ticker = spawnFixture("log-ticker.ts", [dir, String(COUNT), "20"]);
  const got: string[] = [];
  await assert.rejects(async () => {
    for await (const rec of log.reader({ from: "start", signal: stop.signal })) {
      got.push(`${rec.seq} ${text(rec)}`);
      if (got.length === COUNT) setTimeout(() => stop.abort(), 50); // then it waits, and the signal ends the wait
    }
  }, { code: "ERR_ABORTED" });
  assert.deepEqual(got, Array.from({ length: COUNT }, (_, i) => `${i} tick ${i}`));
  assert.equal((await ticker.exited).code, 0, ticker.stderr());

  const seen: string[] = [];
  const done = (async () => {
    for await (const rec of log.reader()) seen.push(text(rec));
  })();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const t0 = performance.now();
  log.close();
  await done;
  assert.ok(performance.now() - t0 < 10_000, `the iteration ended ${performance.now() - t0} ms after close`); // a hang guard
  assert.equal(seen.length, COUNT);
});

test("a read-only open works while another process has the log open for writing", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const writer = openLog(dir, { create: true, segmentSize: SEGMENT });
  writer.append("first");
  writer.close();
  const claimer = spawnFixture("log-claimer.ts", [dir, "800"]);
  assert.equal(Number((await claimer.waitFor((l) => l.startsWith("claimed "))).split(" ")[1]), 1);

  const log = openLog(dir, { readOnly: true, abandonTimeoutMs: 50 });
  assert.equal(log.recovery.exclusive, false);
  const reader = log.reader();
  assert.equal(text(reader.next()!), "first");
  assert.equal(reader.next(), null, "the live writer's record is not committed yet");
  for await (const rec of reader) {
    // committed by the writer ~800 ms after its claim, while this log is open
    assert.equal(rec.seq, 1);
    assert.deepEqual([...rec.data], new Array(16).fill(0x5a));
    break;
  }
  assert.equal((await claimer.exited).code, 0, claimer.stderr());

  // A writer opening now shares the log with the read-only open (which holds it open too).
  const other = openLog(dir);
  try {
    assert.equal(other.recovery.exclusive, false);
    assert.equal(other.append("second"), 2);
    assert.equal(text(reader.next()!), "second");
  } finally {
    other.close();
  }
  log.close();
});

// As root the tailer runs as "nobody", who must be able to read the project (not so in a clone under a 0700 directory).
const asRoot = process.getuid?.() === 0;
const nobodyReadsFixtures =
  !asRoot ||
  spawnSync(process.execPath, ["-e", `require("fs").accessSync(${JSON.stringify(path.join(FIXTURES_DIR, "log-ro-tailer.ts"))}, 4)`], { uid: 65534, gid: 65534 }).status === 0;

test("without write access to the log's files, a read-only open still tails (by polling)", { skip: !nobodyReadsFixtures && "uid 65534 cannot read the project's files" }, async () => {
  const dir = makeTmpDir();
  const log = openLog(dir, { create: true, segmentSize: SEGMENT });
  let tailer: ReturnType<typeof spawn> | undefined;
  try {
    log.append("zero");
    // Readable by all, writable by none; as root (whom permissions do not
    // stop) the tailer runs as "nobody".
    const lockdown = (p: string): void => {
      const isDir = fs.statSync(p).isDirectory();
      fs.chmodSync(p, isDir ? 0o755 : 0o444);
      if (isDir) for (const name of fs.readdirSync(p)) lockdown(path.join(p, name));
    };
    lockdown(dir);
    const asOther = asRoot ? { uid: 65534, gid: 65534 } : {};
    tailer = spawn(process.execPath, ["--import", "tsx", path.join(FIXTURES_DIR, "log-ro-tailer.ts"), dir, "3"], {
      stdio: ["ignore", "pipe", "pipe"],
      ...asOther,
    });
    let stderr = "";
    tailer.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const lines: string[] = [];
    const exited = new Promise<number | null>((resolve) => tailer!.once("exit", resolve));
    const ready = new Promise<void>((resolve, reject) => {
      createInterface({ input: tailer!.stdout! }).on("line", (line) => {
        lines.push(line);
        if (line.startsWith("ready ")) resolve();
      });
      void exited.then(() => reject(new Error(`the tailer exited early: ${stderr}`)));
    });
    await ready;
    assert.equal(lines[0], "ready 1");
    for (const word of ["one", "two", "three"]) {
      log.append(word);
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(lines.slice(1), ["got 1 one", "got 2 two", "got 3 three", "done"]);
  } finally {
    tailer?.kill("SIGKILL");
    log.close();
    removeTmpDir(dir);
  }
});
