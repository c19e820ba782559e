// Arrow IPC files mapped zero-copy, written by apache-arrow's JS writer and by pyarrow.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { makeTmpDir, removeTmpDir, tmpDir } from "./helpers/tmp.ts";
import {
  Dictionary, Float64, Int32, Int8, RecordBatch, RecordBatchFileWriter, Table, Utf8, makeData, tableToIPC, vectorFromArray,
  compressionRegistry, CompressionType, Field, Schema,
} from "apache-arrow";
import { MmapError, mapFile, openArrowFile } from "../src/index.ts";

const GiB = 2 ** 30;

function sampleTable(): Table {
  const n = 1000;
  const price = Float64Array.from({ length: n }, (_, i) => i * 1.5);
  const qty = vectorFromArray(Array.from({ length: n }, (_, i) => (i % 7 === 0 ? null : i)), new Int32());
  const sym = vectorFromArray(Array.from({ length: n }, (_, i) => (i % 5 === 0 ? null : `s${i}-é`)), new Utf8());
  const side = vectorFromArray(Array.from({ length: n }, (_, i) => (i % 3 === 0 ? "buy" : "sell")), new Dictionary(new Utf8(), new Int8()));
  return new Table({ price: vectorFromArray(price), qty, sym, side });
}

/** Writes batches to `file`, leaving as holes the body buffers that are views of `holes` (a sparse file). */
async function writeSparse(file: string, schema: Schema, batches: RecordBatch[], holes: ArrayBufferLike): Promise<void> {
  const writer = new RecordBatchFileWriter();
  writer.reset(undefined, schema);
  for (const b of batches) writer.write(b);
  writer.finish();
  const fd = fs.openSync(file, "w");
  let position = 0;
  for await (const chunk of writer) {
    if (chunk.buffer !== holes) fs.writeSync(fd, chunk, 0, chunk.byteLength, position);
    position += chunk.byteLength;
  }
  fs.ftruncateSync(fd, position);
  fs.closeSync(fd);
}

test("a file from apache-arrow's writer: every column's values, nulls, strings and dictionaries match", () => {
  using tmp = tmpDir("memmap-arrow-");
  const dir = tmp.path;
  const file = path.join(dir, "t.arrow");
  const original = sampleTable();
  fs.writeFileSync(file, tableToIPC(original, "file"));
  const t = openArrowFile(file);
  assert.ok(t instanceof Table);
  assert.equal(t.numRows, 1000);
  assert.deepEqual(t.schema.fields.map((f) => f.name), ["price", "qty", "sym", "side"]);
  for (const name of ["price", "qty", "sym", "side"]) assert.deepEqual(t.getChild(name)!.toArray().length, 1000, name);
  for (let i = 0; i < 1000; i++) {
    assert.equal(t.getChild("price")!.get(i), i * 1.5);
    assert.equal(t.getChild("qty")!.get(i), i % 7 === 0 ? null : i);
    assert.equal(t.getChild("sym")!.get(i), i % 5 === 0 ? null : `s${i}-é`);
    assert.equal(t.getChild("side")!.get(i), i % 3 === 0 ? "buy" : "sell");
  }
});

test("zero copy: a store through another mapping of the file shows in the table's values, strings and bitmaps", () => {
  using tmp = tmpDir("memmap-arrow-");
  const dir = tmp.path;
  const file = path.join(dir, "t.arrow");
  fs.writeFileSync(file, tableToIPC(sampleTable(), "file"));
  const t = openArrowFile(file);
  const price = t.getChild("price")!.data[0]!;
  const sym = t.getChild("sym")!.data[0]!;
  using w = mapFile(file, { access: "write" });
  // The views' byte offsets are file offsets: the table's buffers are the mapping's.
  new DataView(w.buffer).setFloat64(price.values.byteOffset + 8 * 10, -42.25, true);
  assert.equal(t.getChild("price")!.get(10), -42.25);
  w.bytes[sym.values.byteOffset + sym.valueOffsets[1]!] = "S".charCodeAt(0);
  assert.equal(t.getChild("sym")!.get(1), "S1-é");
  const bitmapAt = sym.nullBitmap!.byteOffset;
  w.bytes[bitmapAt] = w.bytes[bitmapAt]! | 1; // row 0's validity bit
  assert.equal(t.getChild("sym")!.isValid(0), true);
});

test("a 2 GiB file: opening and summing a column adds under 5% of the file to the process's anonymous memory", async () => {
  const dir = makeTmpDir("memmap-arrow-");
  try {
    const file = path.join(dir, "big.arrow");
    const rowsPerBatch = 8 * 2 ** 20; // 64 MiB of f64, all but the first batch written as holes (zeros)
    const values = new Float64Array(rowsPerBatch);
    const first = new RecordBatch({ x: makeData({ type: new Float64(), length: rowsPerBatch, data: new Float64Array(rowsPerBatch).fill(0.5) }) });
    const batch = new RecordBatch({ x: makeData({ type: new Float64(), length: rowsPerBatch, data: values }) });
    await writeSparse(file, batch.schema, [first, ...Array.from({ length: 31 }, () => batch)], values.buffer);
    assert.ok(fs.statSync(file).size > 2 * GiB);
    const child = `
      import fs from "node:fs";
      import { openArrowFile } from ${JSON.stringify(path.resolve("src/index.ts"))};
      const anon = () => Number(/Anonymous:\\s+(\\d+) kB/.exec(fs.readFileSync("/proc/self/smaps_rollup", "utf8"))[1]) * 1024;
      globalThis.gc?.();
      const before = anon();
      const t = openArrowFile(process.argv[1]);
      let sum = 0;
      for (const data of t.getChild("x").data) { const v = data.values; for (let i = 0; i < v.length; i++) sum += v[i]; }
      console.log(JSON.stringify({ sum, rows: t.numRows, added: anon() - before }));
    `;
    const out = JSON.parse(execFileSync(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", child, file], { encoding: "utf8" })) as {
      sum: number; rows: number; added: number;
    };
    assert.equal(out.rows, 32 * rowsPerBatch);
    assert.equal(out.sum, rowsPerBatch * 0.5);
    assert.ok(out.added < 0.05 * fs.statSync(file).size, `anonymous memory grew by ${out.added} bytes`);
  } finally {
    removeTmpDir(dir);
  }
});

test("a file past 4 GiB (sparse): batches before and after the 4 GiB mark read through windows of the mapping", async () => {
  using tmp = tmpDir("memmap-arrow-");
  const dir = tmp.path;
  const file = path.join(dir, "huge.arrow");
  const zeros = new Float64Array(2 ** 27); // 1 GiB of f64, written as holes
  const big = new RecordBatch({ x: makeData({ type: new Float64(), length: zeros.length, data: zeros }) });
  const small = (k: number) => new RecordBatch({ x: makeData({ type: new Float64(), length: 4, data: Float64Array.from([k, k + 1, k + 2, k + 3]) }) });
  await writeSparse(file, big.schema, [small(1), big, big, big, big, small(10), big, small(20)], zeros.buffer);
  assert.ok(fs.statSync(file).size > 5 * GiB);
  const t = openArrowFile(file);
  assert.equal(t.numRows, 5 * zeros.length + 12);
  const x = t.getChild("x")!;
  assert.deepEqual([x.get(0), x.get(3)], [1, 4]);
  const afterFour = 4 + 4 * zeros.length;
  assert.deepEqual([x.get(afterFour), x.get(afterFour + 3)], [10, 13]);
  assert.deepEqual([x.get(t.numRows - 4), x.get(t.numRows - 1)], [20, 23]);
  assert.equal(x.get(afterFour - 1), 0);
});

test("compressed files are ERR_UNSUPPORTED naming the codec; damaged files are ERR_CORRUPT", () => {
  const dir = makeTmpDir("memmap-arrow-");
  try {
    // apache-arrow writes compressed buffers when a codec is registered: register one (an identity "LZ4")
    // in a child process only, so that this process's reader has none, as a user's would not.
    // (Its "compression" only puts the codec's magic number in front, enough for apache-arrow's check.)
    for (const codec of ["LZ4_FRAME", "ZSTD"]) {
      const compressed = path.join(dir, `${codec}.arrow`);
      const child = `
        import fs from "node:fs";
        import { compressionRegistry, CompressionType, tableFromArrays, RecordBatchFileWriter } from "apache-arrow";
        const magic = { LZ4_FRAME: [4, 34, 77, 24, 0x40, 0x40, 0], ZSTD: [40, 181, 47, 253, 0, 0] }[process.argv[2]];
        const type = CompressionType[process.argv[2]];
        compressionRegistry.set(type, { encode: (b) => Uint8Array.from([...magic, ...b]), decode: (b) => b.subarray(magic.length) });
        const t = tableFromArrays({ x: Float64Array.from([1, 2, 3]) });
        fs.writeFileSync(process.argv[1], new RecordBatchFileWriter({ compressionType: type }).writeAll(t).toUint8Array(true));
      `;
      execFileSync(process.execPath, ["--input-type=module", "-e", child, compressed, codec], { cwd: path.resolve("."), stdio: "inherit" });
      assert.throws(() => openArrowFile(compressed), (e: MmapError) => e.code === "ERR_UNSUPPORTED" && e.message.includes(codec), codec);
    }
    assert.equal(compressionRegistry.get(CompressionType.LZ4_FRAME), null); // this process registered none

    const good = tableToIPC(sampleTable(), "file");
    const damaged = path.join(dir, "bad.arrow");
    const cases: [string, Uint8Array][] = [
      ["empty", new Uint8Array(0)],
      ["a stream, not a file", tableToIPC(sampleTable(), "stream")],
      ["cut short", good.subarray(0, good.length - 100)],
      ["footer length past the start", (() => { const b = Uint8Array.from(good); new DataView(b.buffer).setInt32(b.length - 10, 0x7fffffff, true); return b; })()],
    ];
    for (const [name, bytes] of cases) {
      fs.writeFileSync(damaged, bytes);
      assert.throws(() => openArrowFile(damaged), (e: MmapError) => e instanceof MmapError && e.code === "ERR_CORRUPT", name);
    }
    // Random damage: a coded error or a table, never anything else.
    let seed = 99;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
    let corrupt = 0;
    for (let trial = 0; trial < 300; trial++) {
      const b = Uint8Array.from(good);
      for (let k = 0; k < 1 + rand(6); k++) b[rand(b.length)] = rand(256);
      fs.writeFileSync(damaged, b);
      try {
        const t = openArrowFile(damaged);
        for (const name of ["price", "qty", "sym", "side"]) t.getChild(name)?.toArray();
      } catch (error) {
        assert.ok(error instanceof MmapError && typeof error.code === "string", `trial ${trial}: ${String(error)}`);
        corrupt++;
      }
    }
    assert.ok(corrupt > 0);
  } finally {
    removeTmpDir(dir);
  }
});

const pyarrow = spawnSync("python3", ["-c", "import pyarrow"]).status === 0;
if (!pyarrow) console.log("# views-arrow: pyarrow tests skipped: python3 cannot import pyarrow (.ci/run installs it with pip when it can)");

test("a file written by pyarrow, with nulls, strings, dictionaries and several batches", { skip: pyarrow ? false : "pyarrow is not installed" }, () => {
  const dir = makeTmpDir("memmap-arrow-");
  try {
    const file = path.join(dir, "py.arrow");
    execFileSync("python3", [
      "-c",
      `
import sys, pyarrow as pa, pyarrow.feather as feather
n = 5000
t = pa.table({
  "price": pa.array([i * 0.25 for i in range(n)], pa.float64()),
  "qty": pa.array([None if i % 7 == 0 else i for i in range(n)], pa.int32()),
  "sym": pa.array([None if i % 5 == 0 else f"s{i}" for i in range(n)], pa.string()),
  "side": pa.array(["buy" if i % 3 == 0 else "sell" for i in range(n)]).dictionary_encode(),
})
feather.write_feather(t, sys.argv[1], compression="uncompressed", chunksize=1000)
`,
      file,
    ]);
    const t = openArrowFile(file);
    assert.equal(t.numRows, 5000);
    assert.equal(t.batches.length, 5);
    for (let i = 0; i < 5000; i += 37) {
      assert.equal(t.getChild("price")!.get(i), i * 0.25);
      assert.equal(t.getChild("qty")!.get(i), i % 7 === 0 ? null : i);
      assert.equal(t.getChild("sym")!.get(i), i % 5 === 0 ? null : `s${i}`);
      assert.equal(t.getChild("side")!.get(i), i % 3 === 0 ? "buy" : "sell");
    }
  } finally {
    removeTmpDir(dir);
  }
});

void Field;
