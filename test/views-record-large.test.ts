// Record files past 4 GiB: rows over windows of one mapping, on sparse files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { makeTmpDir, removeTmpDir, tmpDir } from "./helpers/tmp.ts";
import { array, openRecordFile, struct } from "../src/index.ts";
import { sparseRecordFile } from "./helpers/sparse-record-file.ts";

const Tick = struct({ ts: "i64", price: "f64", qty: "u32" }); // 24 bytes: windows hold a whole number of rows
const GiB = 2 ** 30;

test("a 6 GiB record file: rows near the start, across the 4 GiB boundary and at the end; append; column; reopen in another process", () => {
  const dir = makeTmpDir("memmap-rec-large-");
  try {
    const file = path.join(dir, "big.rec");
    const rows = Math.floor((6 * GiB) / Tick.byteLength);
    const { headerLength } = sparseRecordFile(file, Tick, rows, rows - 10);
    const boundary = Math.floor((4 * GiB - headerLength) / Tick.byteLength); // the first row that starts past 4 GiB
    const marks = [0, 1, 2, boundary - 2, boundary - 1, boundary, boundary + 1, rows - 11];
    {
      using w = openRecordFile(file, Tick, { access: "write" });
      assert.equal(w.length, rows - 10);
      for (const i of marks) w.rows.write(i, { ts: BigInt(i), price: i / 2, qty: i % 1000 });
      w.rows.get(boundary + 2).price = 42.5; // through a live accessor
      assert.equal(w.append({ ts: -1n, price: -1, qty: 1 }), rows - 10);
      w.appendMany([{ ts: -2n, price: -2, qty: 2 }, { ts: -3n, price: -3, qty: 3 }]);
      assert.equal(w.length, rows - 7);
      for (const i of marks) assert.deepEqual(w.rows.read(i), { ts: BigInt(i), price: i / 2, qty: i % 1000 });
      assert.equal(w.rows.get(boundary + 2).price, 42.5);
      // A column read that spans the boundary.
      const prices = w.rows.column("price", { start: boundary - 2, end: boundary + 3 });
      assert.deepEqual(Array.from(prices), [(boundary - 2) / 2, (boundary - 1) / 2, boundary / 2, (boundary + 1) / 2, 42.5]);
      assert.throws(() => w.rows.get(rows - 7), (e: RangeError & { code?: string }) => e.code === "ERR_OUT_OF_RANGE");
    }
    const script = `
      import { openRecordFile } from ${JSON.stringify(path.resolve("src/index.ts"))};
      const r = openRecordFile(process.argv[1]);
      const out = [r.length];
      for (const i of JSON.parse(process.argv[2])) { const row = r.rows.read(i); out.push([String(row.ts), row.price, row.qty]); }
      console.log(JSON.stringify(out));
    `;
    const got = JSON.parse(
      execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, file, JSON.stringify([...marks, rows - 10, rows - 8])], { encoding: "utf8" }),
    ) as unknown[];
    assert.deepEqual(got, [rows - 7, ...marks.map((i) => [String(i), i / 2, i % 1000]), ["-1", -1, 1], ["-3", -3, 3]]);
  } finally {
    removeTmpDir(dir);
  }
});

test("iteration moves one cursor across window boundaries, in order", () => {
  using tmp = tmpDir("memmap-rec-large-");
  const dir = tmp.path;
  const Page = struct({ n: "u32", body: array("u8", 4092) }); // 4 KiB rows: 262,144 per window
  const file = path.join(dir, "pages.rec");
  const rows = (4 * GiB + 8 * 2 ** 20) / Page.byteLength; // 8 MiB past 4 GiB
  sparseRecordFile(file, Page, rows, rows);
  {
    using w = openRecordFile(file, Page, { access: "write" });
    for (let i = 0; i < rows; i += 9973) w.rows.get(i).n = i + 1;
    w.rows.get(rows - 1).n = rows;
  }
  using r = openRecordFile(file, Page);
  let i = 0;
  let marked = 0;
  for (const row of r.rows) {
    // Read only the marked rows: touching all 4 GiB would fill the page cache with zero pages.
    if (i % 9973 === 0 || i === rows - 1) { assert.equal(row.n, i + 1, `row ${i}`); marked++; }
    else if (i % 9973 === 1) assert.equal(row.n, 0, `row ${i}`);
    i++;
  }
  assert.equal(i, rows);
  assert.equal(marked, Math.ceil(rows / 9973) + 1);
});

test("bisect across the 4 GiB boundary", () => {
  using tmp = tmpDir("memmap-rec-large-");
  const dir = tmp.path;
  const file = path.join(dir, "sorted.rec");
  const rows = Math.floor((4 * GiB + 16 * 2 ** 20) / Tick.byteLength); // 16 MiB past 4 GiB
  const { headerLength } = sparseRecordFile(file, Tick, rows, rows);
  const boundary = Math.floor((4 * GiB - headerLength) / Tick.byteLength);
  const firstPositive = boundary - 5;
  {
    using w = openRecordFile(file, Tick, { access: "write" });
    for (let i = 0; i < 10; i++) w.rows.write(i, { ts: BigInt(i - 10), price: 0, qty: 0 }); // -10 … -1, then zeros
    const batch = w.rows;
    for (let i = firstPositive; i < rows; i++) batch.get(i).ts = BigInt(i); // ascending from just before the boundary to the end
  }
  using r = openRecordFile(file, Tick);
  assert.equal(r.rows.bisect("ts", -10n), 0);
  assert.equal(r.rows.bisect("ts", -3n), 7);
  assert.equal(r.rows.bisect("ts", 0n), 10);
  assert.equal(r.rows.bisect("ts", 1n), firstPositive);
  assert.equal(r.rows.bisect("ts", BigInt(boundary)), boundary);
  assert.equal(r.rows.bisect("ts", BigInt(boundary + 1)), boundary + 1);
  assert.equal(r.rows.bisect("ts", BigInt(rows - 1)), rows - 1);
  assert.equal(r.rows.bisect("ts", BigInt(rows)), rows);
});

test("a 1 TiB sparse record file opens by mapping windows lazily and reads its last row", () => {
  using tmp = tmpDir("memmap-rec-large-");
  const dir = tmp.path;
  const file = path.join(dir, "huge.rec");
  const rows = Math.floor(2 ** 40 / Tick.byteLength);
  const { headerLength } = sparseRecordFile(file, Tick, rows, rows);
  const fd = fs.openSync(file, "r+");
  const last = Buffer.alloc(Tick.byteLength);
  last.writeBigInt64LE(123456789n, 0);
  last.writeDoubleLE(9.75, 8);
  last.writeUInt32LE(77, 16);
  fs.writeSync(fd, last, 0, last.length, headerLength + (rows - 1) * Tick.byteLength);
  fs.closeSync(fd);
  using r = openRecordFile(file, Tick);
  assert.equal(r.length, rows);
  assert.deepEqual(r.rows.read(rows - 1), { ts: 123456789n, price: 9.75, qty: 77 });
  assert.equal(r.rows.get(rows - 1).qty, 77);
  // Constant work: opening and reading the last row made one window besides the first, not ~1,024.
  assert.ok(r.rows.$w.filter(Boolean).length <= 1, `windows made: ${r.rows.$w.filter(Boolean).length}`);
});
