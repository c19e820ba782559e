/**
 * C compatibility: a C program, compiled now with the system's `cc`,
 * declares the same struct, and its compiler's offsets must equal memmap's;
 * it then reads the record file memmap wrote, field by field, and changes a
 * row that memmap reads back.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { tmpDir } from "./helpers/tmp.ts";
import { struct, utf8, array, createRecordFile, openRecordFile, type Row } from "../src/index.ts";

const source = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "views-c-reader.c");
const compiler = ["cc", "gcc", "clang"].find((cc) => spawnSync(cc, ["--version"], { stdio: "ignore" }).status === 0);

const Vec = struct({ x: "f32", y: "f32", z: "f32" });
const PackedPart = struct({ a: "u8", b: "u32", c: "f64" }, { packed: true });
const Rec = struct({
  flag: "bool",
  i8: "i8",
  u16: "u16",
  i32: "i32",
  u8: "u8",
  i64: "i64",
  f32: "f32",
  f64: "f64",
  u32: "u32",
  u64: "u64",
  i16: "i16",
  name: utf8(13),
  pos: Vec,
  hist: array("i16", 3),
  pts: array(Vec, 2),
  pk: PackedPart,
  tail: "u8",
});
type Rec = Row<typeof Rec.schema>;

const rows: Rec[] = [
  {
    flag: true, i8: -128, u16: 65535, i32: -(2 ** 31), u8: 255, i64: -(2n ** 63n), f32: 1.5, f64: -0,
    u32: 2 ** 32 - 1, u64: 2n ** 64n - 1n, i16: -32768, name: "abcdefghijklm", pos: { x: 1, y: 2, z: 3 },
    hist: [1, -2, 3], pts: [{ x: 0, y: 0, z: 0 }, { x: 4, y: 5, z: 6.25 }], pk: { a: 9, b: 123456789, c: Math.PI }, tail: 77,
  },
  {
    flag: false, i8: 127, u16: 0, i32: 2 ** 31 - 1, u8: 0, i64: 2n ** 63n - 1n, f32: -0.1, f64: 1e-300,
    u32: 0, u64: 0n, i16: 32767, name: "日本語", pos: { x: -1, y: NaN, z: Infinity },
    hist: [0, 0, 0], pts: [{ x: 1, y: 1, z: 1 }, { x: 2, y: 2, z: -7 }], pk: { a: 0, b: 0, c: NaN }, tail: 0,
  },
  {
    flag: true, i8: 0, u16: 1234, i32: 42, u8: 7, i64: 1n, f32: 3.4028234663852886e38, f64: Number.MAX_VALUE,
    u32: 305419896, u64: 1n << 40n, i16: -1, name: "", pos: { x: 0, y: 0, z: 0 },
    hist: [32767, -32768, 5], pts: [{ x: 0, y: 0, z: 0 }, { x: 0, y: 0, z: 0 }], pk: { a: 255, b: 4294967295, c: -2.5 }, tail: 255,
  },
];

const FLOAT32_KEYS = new Set(["f32", "pos.x", "pos.y", "pos.z", "pts1.z"]);

/** What the C program prints for a row, computed from the row memmap stored. */
function expectedLine(i: number, r: Rec): Record<string, string | number | bigint> {
  return {
    row: i, flag: r.flag ? 1 : 0, i8: r.i8, u16: r.u16, i32: r.i32, u8: r.u8, i64: r.i64, f32: Math.fround(r.f32), f64: r.f64,
    u32: r.u32, u64: r.u64, i16: r.i16, name: r.name, "pos.x": Math.fround(r.pos.x), "pos.y": Math.fround(r.pos.y), "pos.z": Math.fround(r.pos.z),
    hist: r.hist.join(","), "pts1.z": Math.fround(r.pts[1]!.z), "pk.a": r.pk.a, "pk.b": r.pk.b, "pk.c": r.pk.c, tail: r.tail,
  };
}

/** Parses one "row" line of the C program's output, turning each value into the type of the expected one. */
function parseLine(text: string, like: Record<string, string | number | bigint>): Record<string, string | number | bigint> {
  const [head, ...fields] = text.split("\t");
  const out: Record<string, string | number | bigint> = { row: Number(head!.split(" ")[1]) };
  for (const field of fields) {
    const eq = field.indexOf("=");
    const key = field.slice(0, eq);
    const value = field.slice(eq + 1);
    const model = like[key];
    if (typeof model === "bigint") out[key] = BigInt(value);
    else if (typeof model === "number") out[key] = /nan/i.test(value) ? NaN : Number(value.replace(/^inf$/, "Infinity").replace(/^-inf$/, "-Infinity"));
    else out[key] = value;
  }
  return out;
}

test("a C program compiled now reads what memmap wrote, at the offsets its compiler chose", { timeout: 60_000 }, (t) => {
  if (compiler === undefined) {
    t.skip("no C compiler (cc, gcc or clang) on this machine: the C compatibility test cannot run");
    return;
  }
  using tmp = tmpDir();
  const dir = tmp.path;
  const exe = path.join(dir, "views-c-reader");
  execFileSync(compiler, ["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-o", exe, source], { stdio: "pipe" });

  const file = path.join(dir, "recs.rec");
  {
    using out = createRecordFile(file, Rec, { capacity: 1 });
    for (const r of rows) out.append(r);
  }
  const output = execFileSync(exe, [file], { encoding: "utf8" }).split("\n");

  // The compiler's layout is memmap's layout.
  assert.equal(output[0], `sizeof rec ${Rec.byteLength}`);
  assert.equal(output[1], `sizeof packed_part ${PackedPart.byteLength}`);
  const offsets = Object.fromEntries(output.filter((l) => l.startsWith("offset ")).map((l) => [l.split(" ")[1]!, Number(l.split(" ")[2])]));
  assert.deepEqual(offsets, Rec.offsets);

  // Every field of every row reads the same in C.
  assert.ok(output.includes(`rows ${rows.length}`));
  const printed = output.filter((l) => l.startsWith("row "));
  assert.equal(printed.length, rows.length);
  rows.forEach((r, i) => {
    const expected = expectedLine(i, r);
    const actual = parseLine(printed[i]!, expected);
    for (const key of Object.keys(expected)) {
      const e = expected[key];
      if (typeof e === "number") {
        // %.9g round-trips a float32 exactly once rounded back to single precision.
        const got = FLOAT32_KEYS.has(key) ? Math.fround(actual[key] as number) : actual[key];
        assert.ok(Object.is(got, e), `row ${i} ${key}: C read ${String(actual[key])}, memmap wrote ${e}`);
      }
      else assert.equal(actual[key], e, `row ${i} ${key}`);
    }
  });

  // And the other way: what C writes into a row, memmap reads.
  execFileSync(exe, [file, "poke"], { encoding: "utf8" });
  using back = openRecordFile(file, Rec);
  const r0 = back.rows.read(0);
  assert.equal(r0.i32, -123456789);
  assert.equal(r0.u64, 2n ** 64n - 1n);
  assert.equal(r0.f64, 0.1);
  assert.equal(r0.name, "from C é");
  assert.equal(r0.pts[1]!.y, 2.5);
  assert.equal(r0.pk.b, 4000000000);
  assert.deepEqual({ ...r0, i32: 0, u64: 0n, f64: 0, name: "", pts: [], pk: { ...r0.pk, b: 0 } }, { ...rows[0]!, i32: 0, u64: 0n, f64: 0, name: "", pts: [], pk: { ...rows[0]!.pk, b: 0 } });
});
