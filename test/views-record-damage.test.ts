/**
 * Record files under another writer and under damage (issue 10 items 18, 19):
 * overwriting a file a live writer appends to is ERR_BUSY, and a damaged row
 * count never returns rows that were never written.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { createRecordFile, MmapError, openRecordFile } from "../src/index.ts";
import { Tick, tick, tickProblem } from "./fixtures/views-rows.ts";

let dir: string;
before(() => (dir = makeTmpDir("memmap-recdmg-")));
after(() => removeTmpDir(dir));

function isCode(code: string): (e: unknown) => boolean {
  return (e) => e instanceof MmapError && e.code === code;
}

describe("overwrite while another process writes (item 18)", () => {
  test("createRecordFile(p, layout, { overwrite: true }) is ERR_BUSY while a writer in another process holds p", async () => {
    const file = path.join(dir, "busy.rec");
    createRecordFile(file, Tick, { capacity: 16 }).close();
    // A real writer process: opens p for writing, says so, and waits for stdin to close.
    const script = `
      import { openRecordFile } from ${JSON.stringify(path.resolve("src/index.ts"))};
      import { tick } from ${JSON.stringify(path.resolve("test/fixtures/views-rows.ts"))};
      const out = openRecordFile(${JSON.stringify(file)}, { access: "write" });
      out.append(tick(0));
      process.stdout.write("ready\\n");
      process.stdin.on("end", () => { out.append(tick(1)); out.close(); });
      process.stdin.resume();`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["pipe", "pipe", "inherit"] });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
      child.on("exit", () => reject(new Error("the writer exited early")));
    });
    try {
      assert.throws(() => createRecordFile(file, Tick, { overwrite: true }), isCode("ERR_BUSY"));
      assert.throws(() => openRecordFile(file, { access: "write" }), isCode("ERR_BUSY"));
    } finally {
      child.stdin.end();
      await exited;
    }
    // The writer's rows are all there: nothing went to an unlinked file.
    const r = openRecordFile(file, Tick);
    assert.equal(r.length, 2);
    assert.equal(tickProblem(1, r.rows.read(1)), undefined);
    r.close();
    // With the writer gone, overwrite works.
    const fresh = createRecordFile(file, Tick, { overwrite: true });
    assert.equal(fresh.length, 0);
    fresh.close();
  });

  test("overwrite while a reader has the file open is fine (readers keep the old file)", () => {
    const file = path.join(dir, "reader.rec");
    const w = createRecordFile(file, Tick, { capacity: 4 });
    w.append(tick(0));
    w.close();
    const r = openRecordFile(file, Tick);
    const fresh = createRecordFile(file, Tick, { overwrite: true });
    assert.equal(r.length, 1);
    assert.equal(fresh.length, 0);
    fresh.close();
    r.close();
  });
});

describe("a damaged row count (item 19)", () => {
  const ROW_COUNT_OFFSET = 32;
  function withRows(n: number): string {
    const file = path.join(dir, `count-${Math.random().toString(36).slice(2)}.rec`);
    const w = createRecordFile(file, Tick, { capacity: 1024 });
    for (let i = 0; i < n; i++) w.append(tick(i));
    w.close();
    return file;
  }
  function damage(file: string, at: number, bytes: Uint8Array): void {
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, bytes, 0, bytes.length, at);
    fs.closeSync(fd);
  }

  // Every damage keeps the count inside the spare capacity, where the file size cannot tell.
  const cases: [string, (file: string) => void][] = [
    ["a flipped bit (10 rows become 74)", (f) => {
      const b = Buffer.alloc(1);
      const fd = fs.openSync(f, "r+");
      fs.readSync(fd, b, 0, 1, ROW_COUNT_OFFSET);
      b[0]! ^= 64;
      fs.writeSync(fd, b, 0, 1, ROW_COUNT_OFFSET);
      fs.closeSync(fd);
    }],
    ["the low half overwritten with 64", (f) => damage(f, ROW_COUNT_OFFSET, new Uint8Array([64, 0, 0, 0]))],
    ["the whole word overwritten with a bare 64", (f) => damage(f, ROW_COUNT_OFFSET, new Uint8Array([64, 0, 0, 0, 0, 0, 0, 0]))],
    ["the whole word zeroed", (f) => damage(f, ROW_COUNT_OFFSET, new Uint8Array(8))],
  ];
  for (const [label, hurt] of cases) {
    test(`${label}: ERR_CORRUPT, never rows that were not written`, () => {
      const file = withRows(10);
      hurt(file);
      for (const access of ["read", "write"] as const) {
        let length: number | undefined;
        try {
          const r = openRecordFile(file, { access });
          length = r.length;
          r.close();
        } catch (error) {
          assert.ok(error instanceof MmapError && error.code === "ERR_CORRUPT", String(error));
          assert.match(error.message, /row count/);
        }
        assert.equal(length, undefined, `opened (${access}) with ${length} rows; 10 were written`);
      }
    });
  }

  test("a count damaged while a reader has the file open: its next refresh throws ERR_CORRUPT", () => {
    const file = withRows(10);
    const r = openRecordFile(file, Tick);
    assert.equal(r.length, 10);
    damage(file, ROW_COUNT_OFFSET, new Uint8Array([11, 0, 0, 0])); // one more row than written, inside the capacity
    assert.throws(() => r.refresh(), isCode("ERR_CORRUPT"));
    r.close();
  });

  test("a healthy count survives reopening for appends, growing, and readers following along", () => {
    const file = withRows(10);
    const reader = openRecordFile(file, Tick);
    const w = openRecordFile(file, Tick, { access: "write" });
    for (let i = 10; i < 3000; i++) w.append(tick(i)); // grows past the capacity of 1024
    assert.equal(reader.length, 3000);
    assert.equal(tickProblem(2999, reader.rows.read(2999)), undefined);
    w.close();
    reader.close();
  });
});

test("a version 1 file (bare row count) is still read, and appended to as version 1", async () => {
  const { sealHeader, VERSION_OFFSET } = await import("../src/views/record-format.ts");
  const file = path.join(dir, "v1.rec");
  const w = createRecordFile(file, Tick, { capacity: 8 });
  for (let i = 0; i < 3; i++) w.append(tick(i));
  w.close();
  // Rewrite the header as version 1 wrote it: the bare count.
  const bytes = fs.readFileSync(file);
  bytes.writeUInt32LE(1, VERSION_OFFSET);
  bytes.writeBigUInt64LE(3n, 32);
  const headerLength = bytes.readUInt32LE(12);
  sealHeader(bytes.subarray(0, headerLength));
  fs.writeFileSync(file, bytes);
  const a = openRecordFile(file, Tick, { access: "write" });
  assert.equal(a.length, 3);
  a.append(tick(3));
  a.close();
  assert.equal(fs.readFileSync(file).readBigUInt64LE(32), 4n, "still a bare count");
  const r = openRecordFile(file, Tick);
  assert.equal(r.length, 4);
  assert.equal(tickProblem(3, r.rows.read(3)), undefined);
  r.close();
});
