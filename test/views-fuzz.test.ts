/**
 * Header fuzz: valid record files with randomly damaged headers. Every open
 * must either succeed with a self-consistent file whose rows all read in
 * bounds, or throw an MmapError: never another exception, a crash or a hang.
 * Half the cases re-seal the checksum after damaging, so the damage reaches
 * the schema decoder and the layout checks behind it.
 *
 * Reproduce a run with MEMMAP_FUZZ_SEED=<seed> (printed as a diagnostic).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { tmpDir } from "./helpers/tmp.ts";
import { struct, utf8, array, createRecordFile, openRecordFile, MmapError, type Layout } from "../src/index.ts";
import {
  CHECKSUM_OFFSET,
  FIXED_HEADER_LENGTH,
  HEADER_LENGTH_OFFSET,
  ROW_COUNT_OFFSET,
  SCHEMA_LENGTH_OFFSET,
  sealHeader,
} from "../src/views/record-format.ts";

const CASES = Number(process.env.MEMMAP_FUZZ_CASES ?? 10000);
const SEED = Number(process.env.MEMMAP_FUZZ_SEED ?? Date.now() % 2 ** 31);

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const Vec = struct({ x: "f64", y: "f64" });
const LAYOUTS: Layout[] = [
  struct({ a: "u8", b: "f64" }),
  struct({ id: "u32", name: utf8(7), tags: array("i16", 3), pos: Vec, big: "u64", ok: "bool" }),
  struct({ grid: array(array("u8", 3), 2), pts: array(Vec, 2), s: utf8(1) }, { packed: true }),
  struct({ inner: struct({ p: struct({ q: "i8", r: "f32" }, { packed: true }), t: "i64" }), last: "u16" }),
];

test("randomly damaged headers open consistently or fail with MmapError", { timeout: 120_000 }, (t) => {
  t.diagnostic(`seed ${SEED}, ${CASES} cases (MEMMAP_FUZZ_SEED / MEMMAP_FUZZ_CASES to change)`);
  const random = prng(SEED);
  const int = (n: number): number => Math.floor(random() * n);
  using tmp = tmpDir();
  const dir = tmp.path;
  const originals = LAYOUTS.map((layout, k) => {
    const file = path.join(dir, `valid-${k}.rec`);
    const out = createRecordFile(file, layout, { capacity: 5 });
    const zero = layout.array(new ArrayBuffer(layout.byteLength)).read(0); // zeros are a valid row of any layout
    out.appendMany([zero, zero, zero]);
    out.close();
    const bytes = fs.readFileSync(file);
    const headerLength = bytes.readUInt32LE(HEADER_LENGTH_OFFSET);
    for (let i = headerLength; i < bytes.length; i++) bytes[i] = int(256); // any bytes must read without error
    return { layout, bytes, headerLength };
  });

  const target = path.join(dir, "fuzz.rec");
  // Rewritten in place through one descriptor: writeFileSync's O_TRUNC would make ext4 flush on every close.
  const fd = fs.openSync(target, "w+");
  const outcomes = new Map<string, number>();
  let opened = 0;
  for (let c = 0; c < CASES; c++) {
    const original = originals[int(originals.length)]!;
    let bytes = Buffer.from(original.bytes);
    const mutations = 1 + int(4);
    for (let m = 0; m < mutations; m++) {
      const span = Math.min(original.headerLength + 8, bytes.length); // the header and the start of row 0
      if (span < 8) break;
      switch (int(7)) {
        case 0: // flip one bit
          bytes[int(span)]! ^= 1 << int(8);
          break;
        case 1: // a random byte
          bytes[int(span)] = int(256);
          break;
        case 2: { // an interesting u32 anywhere in the header
          const values = [0, 1, 2, 7, 8, 0xff, 0xffff, 0x7fffffff, 0xffffffff, bytes.length, original.headerLength, int(2 ** 32)];
          const at = int(span - 4);
          bytes.writeUInt32LE(values[int(values.length)]!, at);
          break;
        }
        case 3: { // an interesting row count
          const values = [0n, 1n, 3n, 5n, 6n, -1n, 2n ** 62n, BigInt(bytes.length), -(2n ** 63n)];
          if (bytes.length >= ROW_COUNT_OFFSET + 8) bytes.writeBigInt64LE(values[int(values.length)]!, ROW_COUNT_OFFSET);
          break;
        }
        case 4: // cut the file short
          bytes = bytes.subarray(0, int(bytes.length + 1));
          break;
        case 5: // random bytes appended
          bytes = Buffer.concat([bytes, Buffer.from(Array.from({ length: int(64) }, () => int(256)))]);
          break;
        case 6: // a byte of the schema, where type codes, counts and offsets live
          if (original.headerLength <= bytes.length) bytes[FIXED_HEADER_LENGTH + int(original.headerLength - FIXED_HEADER_LENGTH)] = int(20);
          break;
      }
    }
    // Re-seal the checksum half the time, so the damage gets past it.
    if (random() < 0.5 && bytes.length >= FIXED_HEADER_LENGTH) {
      const schemaLength = bytes.readUInt32LE(SCHEMA_LENGTH_OFFSET);
      if (FIXED_HEADER_LENGTH + schemaLength <= bytes.length) sealHeader(bytes);
      else bytes.writeUInt32LE(0, CHECKSUM_OFFSET);
    }
    fs.ftruncateSync(fd, bytes.length);
    fs.writeSync(fd, bytes, 0, bytes.length, 0);

    for (const expected of [undefined, original.layout]) {
      let file;
      try {
        file = expected === undefined ? openRecordFile(target) : openRecordFile(target, expected);
      } catch (error) {
        if (!(error instanceof MmapError)) {
          assert.fail(`case ${c} (seed ${SEED}): not an MmapError: ${(error as Error)?.stack ?? String(error)}`);
        }
        const kind = `${error.code}: ${error.message.replace(/not a valid record file: /, "").replace(/[\d"].*$/, "").trim()}`;
        outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
        continue;
      }
      try {
        // A file that opened is self-consistent: its rows lie inside the file and all read.
        opened++;
        const rows = file.rows;
        const layout = file.layout;
        assert.ok(file.headerLength + rows.length * layout.byteLength <= bytes.length, `case ${c}: rows past the end of the file`);
        for (let i = 0; i < rows.length; i++) rows.read(i);
        let n = 0;
        for (const row of rows) {
          row.toJSON();
          n++;
        }
        assert.equal(n, rows.length);
        for (const f of layout.fields) {
          if (typeof f.type === "string" || f.type.kind === "utf8") assert.equal(rows.column(f.name).length, rows.length);
        }
        assert.throws(() => rows.get(rows.length), RangeError);
      } finally {
        file.close();
      }
    }
  }
  fs.closeSync(fd);
  const summary = [...outcomes.entries()].sort((a, b) => b[1] - a[1]);
  t.diagnostic(`opened ${opened}; refused: ${summary.map(([k, v]) => `${v}× ${k}`).join(" | ")}`);
  assert.ok(opened > 0, "some damage is harmless (e.g. in padding): those files must open");
  assert.ok(outcomes.size >= 8, `the fuzz reached many different checks (${outcomes.size})`);
});
