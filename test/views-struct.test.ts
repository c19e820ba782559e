import { test, describe } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { tmpDir } from "./helpers/tmp.ts";
import { struct, utf8, array, mapFile, MmapError, type Row, type RowAccessor } from "../src/index.ts";

function rejectsWith(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof MmapError, `expected an MmapError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  });
}

function outOfBounds(fn: () => unknown): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof RangeError, `expected a RangeError, got ${String(error)}`);
    assert.equal((error as RangeError & { code?: string }).code, "ERR_OUT_OF_RANGE");
    assert.match(error.message, /out of bounds/);
    return true;
  });
}

describe("struct layouts", () => {
  test("natural alignment matches C: padding between fields and at the end", () => {
    const L = struct({ a: "u8", b: "f64", c: "u16", d: "i32", e: "u8" });
    assert.deepEqual(L.offsets, { a: 0, b: 8, c: 16, d: 20, e: 24 });
    assert.equal(L.byteLength, 32); // 25 rounded up to the 8-byte alignment
    assert.equal(L.alignment, 8);
    assert.equal(L.offsetOf("d"), 20);
  });

  test("packed layouts have no padding", () => {
    const L = struct({ a: "u8", b: "f64", c: "u16" }, { packed: true });
    assert.deepEqual(L.offsets, { a: 0, b: 1, c: 9 });
    assert.equal(L.byteLength, 11);
    assert.equal(L.alignment, 1);
  });

  test("nested structs and arrays align to their members", () => {
    const Point = struct({ x: "f32", y: "f32" });
    const L = struct({ tag: "u8", p: Point, v: array("u16", 3), name: utf8(5), big: "u64", pts: array(Point, 2) });
    assert.equal(Point.byteLength, 8);
    assert.equal(Point.alignment, 4);
    assert.deepEqual(L.offsets, { tag: 0, p: 4, v: 12, name: 18, big: 24, pts: 32 });
    assert.equal(L.byteLength, 48);
    assert.equal(L.offsetOf("p.y"), 8);
    assert.equal(L.offsetOf("pts"), 32);
  });

  test("a packed struct nested in a natural one keeps its own layout", () => {
    const P = struct({ a: "u8", b: "u32" }, { packed: true });
    const L = struct({ x: "u8", p: P, y: "u32" });
    assert.deepEqual(L.offsets, { x: 0, p: 1, y: 8 });
    assert.equal(L.byteLength, 12);
  });

  test("the row type is inferred from the schema", () => {
    const L = struct({ n: "i32", b: "i64", ok: "bool", s: utf8(4), a: array("f64", 2), p: struct({ x: "u8" }) });
    const buffer = new ArrayBuffer(L.byteLength);
    const rows = L.array(buffer);
    const row: Row<typeof L.schema> = { n: 1, b: 2n, ok: true, s: "ab", a: [1, 2], p: { x: 3 } };
    rows.write(0, row);
    const copy = rows.read(0);
    const n: number = copy.n;
    const b: bigint = copy.b;
    const ok: boolean = copy.ok;
    const s: string = copy.s;
    const a: number[] = copy.a;
    const x: number = copy.p.x;
    const live: RowAccessor<typeof L.schema> = rows.get(0);
    const y: number = live.p.x;
    const first: number = live.a.get(0);
    // @ts-expect-error a bigint field does not take a number
    assert.throws(() => rows.write(0, { ...row, b: 2 }));
    assert.deepEqual([n, b, ok, s, a, x, y, first], [1, 2n, true, "ab", [1, 2], 3, 3, 1]);
  });

  test("bad schemas are refused with a message saying what is wrong", () => {
    rejectsWith(() => struct({}), "ERR_INVALID_ARG", /at least one field/);
    rejectsWith(() => struct({ a: "f16" as "f32" }), "ERR_INVALID_ARG", /unknown field type "f16"/);
    rejectsWith(() => struct({ "1a": "u8" }), "ERR_INVALID_ARG", /not a C identifier/);
    rejectsWith(() => struct({ "a-b": "u8" }), "ERR_INVALID_ARG", /not a C identifier/);
    rejectsWith(() => struct({ toJSON: "u8" }), "ERR_INVALID_ARG", /reserved/);
    rejectsWith(() => struct({ constructor: "u8" }), "ERR_INVALID_ARG", /reserved/);
    rejectsWith(() => utf8(0), "ERR_INVALID_ARG", /utf8\(\) byte length/);
    rejectsWith(() => array("u8", 1.5), "ERR_INVALID_ARG", /array\(\) length/);
    rejectsWith(() => array("f64", 2 ** 24), "ERR_INVALID_ARG", /at most/);
    rejectsWith(() => struct({ a: "u8" }, { pack: true } as never), "ERR_INVALID_ARG", /struct: unknown option "pack"/);
    let deep: ReturnType<typeof struct> = struct({ a: "u8" });
    assert.throws(() => {
      for (let i = 0; i < 20; i++) deep = struct({ a: array(deep, 1) });
    }, /nest at most/);
  });

  test("layouts compare by their bytes", () => {
    const a = struct({ x: "f64", y: utf8(3) });
    assert.ok(a.equals(struct({ x: "f64", y: utf8(3) })));
    assert.ok(!a.equals(struct({ x: "f64", y: utf8(4) })));
    assert.ok(!a.equals(struct({ x: "f64", z: utf8(3) })));
    assert.ok(!a.equals(struct({ x: "f64", y: utf8(3) }, { packed: true })));
  });
});

describe("round trips of every type", () => {
  const All = struct({
    i8: "i8", u8: "u8", i16: "i16", u16: "u16", i32: "i32", u32: "u32",
    f32: "f32", f64: "f64", i64: "i64", u64: "u64", bool: "bool", s: utf8(8),
  });
  const rows = All.array(new ArrayBuffer(All.byteLength * 4));

  test("extreme integers, bigints at both ends, NaN, -0 and infinities", () => {
    const low = {
      i8: -128, u8: 0, i16: -32768, u16: 0, i32: -(2 ** 31), u32: 0,
      f32: -3.4028234663852886e38, f64: -Number.MAX_VALUE, i64: -(2n ** 63n), u64: 0n, bool: false, s: "",
    };
    const high = {
      i8: 127, u8: 255, i16: 32767, u16: 65535, i32: 2 ** 31 - 1, u32: 2 ** 32 - 1,
      f32: 3.4028234663852886e38, f64: Number.MAX_VALUE, i64: 2n ** 63n - 1n, u64: 2n ** 64n - 1n, bool: true, s: "12345678",
    };
    const odd = { ...high, f32: NaN, f64: -0, i64: -1n, u64: 1n, s: "a" };
    const inf = { ...low, f32: -Infinity, f64: Infinity, s: "é" };
    rows.write(0, low);
    rows.write(1, high);
    rows.write(2, odd);
    rows.write(3, inf);
    assert.deepEqual(rows.read(0), low);
    assert.deepEqual(rows.read(1), high);
    const r2 = rows.read(2);
    assert.ok(Number.isNaN(r2.f32));
    assert.ok(Object.is(r2.f64, -0));
    assert.deepEqual({ ...r2, f32: 0 }, { ...odd, f32: 0 });
    assert.deepEqual(rows.read(3), inf);
    // the same values through live accessors
    const live = rows.get(1);
    assert.equal(live.u64, 2n ** 64n - 1n);
    assert.equal(live.i32, 2 ** 31 - 1);
    assert.ok(Object.is(rows.get(2).f64, -0));
  });

  test("f32 rounds to single precision", () => {
    const live = rows.get(0);
    live.f32 = 0.1;
    assert.equal(live.f32, Math.fround(0.1));
  });

  test("out-of-range and mistyped values are refused, never wrapped", () => {
    const live = rows.get(0);
    rejectsWith(() => (live.u8 = 256), "ERR_INVALID_ARG", /field "u8" is u8: expected an integer in \[0, 255\], got 256/);
    rejectsWith(() => (live.i8 = -129), "ERR_INVALID_ARG", /i8/);
    rejectsWith(() => (live.u16 = -1), "ERR_INVALID_ARG", /u16/);
    rejectsWith(() => (live.i32 = 2 ** 31), "ERR_INVALID_ARG", /i32/);
    rejectsWith(() => (live.u32 = 1.5), "ERR_INVALID_ARG", /u32/);
    rejectsWith(() => (live.i16 = NaN), "ERR_INVALID_ARG", /i16/);
    rejectsWith(() => ((live as { f64: unknown }).f64 = "1"), "ERR_INVALID_ARG", /expected a number, got "1"/);
    rejectsWith(() => (live.i64 = 2n ** 63n), "ERR_INVALID_ARG", /i64/);
    rejectsWith(() => (live.u64 = -1n), "ERR_INVALID_ARG", /u64/);
    rejectsWith(() => ((live as { u64: unknown }).u64 = 1), "ERR_INVALID_ARG", /expected a bigint/);
    rejectsWith(() => ((live as { bool: unknown }).bool = 1), "ERR_INVALID_ARG", /expected a boolean/);
  });

  test("a row that fails validation leaves the stored row untouched", () => {
    const before = rows.read(1);
    rejectsWith(() => rows.write(1, { ...before, i8: 0, u8: 0, s: "way too long for eight" }), "ERR_INVALID_ARG", /field "s"/);
    rejectsWith(() => rows.write(1, { ...before, i8: 0, u16: undefined } as never), "ERR_INVALID_ARG", /field "u16".*got undefined/);
    assert.deepEqual(rows.read(1), before);
  });
});

describe("utf8 fields", () => {
  const S = struct({ s: utf8(6), n: "u8" });

  test("full-width strings, multi-byte characters, and NUL padding", () => {
    const rows = S.array(new ArrayBuffer(S.byteLength * 2));
    for (const s of ["", "abcdef", "é", "ééé", "€€", "😀", "a😀b", "日本"]) {
      rows.write(0, { s, n: 1 });
      assert.equal(rows.read(0).s, s);
      assert.equal(rows.get(0).s, s);
      assert.equal(rows.get(0).n, 1, "the next field is not overwritten");
    }
    rows.get(0).s = "abcdef";
    rows.get(0).s = "x"; // the rest of the field is cleared
    assert.equal(rows.get(0).s, "x");
  });

  test("a string that does not fit is an error, not cut in the middle of a character", () => {
    const rows = S.array(new ArrayBuffer(S.byteLength));
    rows.get(0).s = "ok";
    rejectsWith(() => (rows.get(0).s = "abcdefg"), "ERR_INVALID_ARG", /needs 7 bytes of UTF-8/);
    rejectsWith(() => (rows.get(0).s = "ééé€"), "ERR_INVALID_ARG", /needs 9 bytes/);
    rejectsWith(() => (rows.get(0).s = "abcde😀"), "ERR_INVALID_ARG", /needs 9 bytes/);
    rejectsWith(() => (rows.get(0).s = "a\0b"), "ERR_INVALID_ARG", /NUL/);
    rejectsWith(() => (rows.get(0).s = "\ud800"), "ERR_INVALID_ARG", /lone surrogate/);
    assert.equal(rows.get(0).s, "ok", "nothing was written");
  });

  test("invalid UTF-8 in the bytes decodes to U+FFFD, never throws", () => {
    const buffer = new ArrayBuffer(S.byteLength);
    new Uint8Array(buffer).set([0x61, 0xff, 0xc3, 0x62, 0xe2, 0x82]);
    assert.equal(S.array(buffer).get(0).s, "a\ufffd\ufffdb\ufffd");
  });
});

describe("struct arrays", () => {
  const Point = struct({ x: "f64", y: "f64" });
  const Body = struct({ id: "u32", pos: Point, hist: array("i16", 3), pts: array(Point, 2), grid: array(array("u8", 2), 2) });
  const sample = (i: number): Row<typeof Body.schema> => ({
    id: i,
    pos: { x: i + 0.5, y: -i },
    hist: [i, -i | 0, 7],
    pts: [{ x: 1, y: 2 }, { x: 3, y: i }],
    grid: [[1, 2], [3, i % 256]],
  });

  test("nested structs and arrays: read, write and live access", () => {
    const rows = Body.array(new ArrayBuffer(Body.byteLength * 3));
    for (let i = 0; i < 3; i++) rows.write(i, sample(i));
    for (let i = 0; i < 3; i++) assert.deepEqual(rows.read(i), sample(i));
    const b = rows.get(2);
    assert.equal(b.pos.x, 2.5);
    b.pos.y = 42;
    b.pos = { x: 9, y: 8 };
    assert.deepEqual(rows.read(2).pos, { x: 9, y: 8 });
    assert.equal(b.hist.length, 3);
    assert.equal(b.hist.get(1), -2);
    b.hist.set(1, 1000);
    assert.deepEqual(b.hist.toArray(), [2, 1000, 7]);
    assert.deepEqual([...b.hist], [2, 1000, 7]);
    b.hist.assign([4, 5, 6]);
    assert.deepEqual(rows.read(2).hist, [4, 5, 6]);
    b.pts.get(1).y = -1;
    assert.deepEqual(rows.read(2).pts, [{ x: 1, y: 2 }, { x: 3, y: -1 }]);
    b.grid.get(1).set(0, 255);
    assert.deepEqual(rows.read(2).grid, [[1, 2], [255, 2]]);
    assert.deepEqual(JSON.parse(JSON.stringify(b)), rows.read(2));
    outOfBounds(() => b.hist.get(3));
    outOfBounds(() => b.hist.set(-1, 0));
    rejectsWith(() => b.hist.assign([1, 2]), "ERR_INVALID_ARG", /array of 3: got 2 elements/);
    rejectsWith(() => rows.write(0, { ...sample(0), pts: [{ x: 1, y: 2 }, { x: 1, y: "no" }] } as never), "ERR_INVALID_ARG", /field "pts\[1\]\.y"/);
    rejectsWith(() => rows.write(0, { ...sample(0), pos: null } as never), "ERR_INVALID_ARG", /field "pos" is a struct/);
  });

  test("rows copy from one accessor to another", () => {
    const rows = Body.array(new ArrayBuffer(Body.byteLength * 2));
    rows.write(0, sample(5));
    rows.write(1, rows.get(0));
    assert.deepEqual(rows.read(1), sample(5));
  });

  test("indexes are bounds-checked with a RangeError", () => {
    const rows = Point.array(new ArrayBuffer(Point.byteLength * 4));
    for (const bad of [-1, 4, 1.5, NaN, 2 ** 32, Infinity, "1" as unknown as number]) {
      outOfBounds(() => rows.get(bad));
      outOfBounds(() => rows.read(bad));
      outOfBounds(() => rows.write(bad, { x: 0, y: 0 }));
    }
    assert.equal(rows.get(3).x, 0);
  });

  test("byteOffset and length select a region; too much is ERR_OUT_OF_RANGE", () => {
    const buffer = new ArrayBuffer(100);
    const rows = Point.array(buffer, { byteOffset: 20, length: 4 });
    rows.get(0).x = 1.5;
    assert.equal(new DataView(buffer).getFloat64(20, true), 1.5);
    assert.equal(Point.array(buffer, { byteOffset: 20 }).length, 5);
    rejectsWith(() => Point.array(buffer, { byteOffset: 20, length: 6 }), "ERR_OUT_OF_RANGE", /need 116 bytes; the source has 100/);
    rejectsWith(() => Point.array(buffer, { byteOffset: 101 }), "ERR_OUT_OF_RANGE");
    rejectsWith(() => Point.array(buffer, { byteOffset: -1 }), "ERR_INVALID_ARG");
    rejectsWith(() => Point.array({} as ArrayBuffer), "ERR_INVALID_ARG");
  });

  test("views typed arrays, SharedArrayBuffers and Buffers in place", () => {
    const u8 = new Uint8Array(64);
    const rows = Point.array(u8.subarray(16));
    rows.get(1).y = 2;
    assert.equal(new DataView(u8.buffer).getFloat64(16 + 24, true), 2);
    const shared = new SharedArrayBuffer(32);
    const S = struct({ s: utf8(8), n: "i32" });
    const srows = S.array(shared);
    srows.write(1, { s: "héllo", n: -3 });
    assert.deepEqual(srows.read(1), { s: "héllo", n: -3 });
  });

  test("iteration moves one accessor: no object per row", () => {
    const rows = Point.array(new ArrayBuffer(Point.byteLength * 5));
    for (let i = 0; i < 5; i++) rows.write(i, { x: i, y: 2 * i });
    const seen = new Set<unknown>();
    let sum = 0;
    for (const p of rows) {
      seen.add(p);
      sum += p.x + p.y;
    }
    assert.equal(sum, 30);
    assert.equal(seen.size, 1, "the same accessor is reused for every row");
    assert.deepEqual(Array.from(rows, (p) => p.toJSON().x), [0, 1, 2, 3, 4]);
    assert.deepEqual([...Point.array(new ArrayBuffer(0))], []);
  });

  test("column() copies one field into a typed array", () => {
    const L = struct({ a: "i16", b: "f64", c: "u64", d: "bool", s: utf8(3), p: Point });
    const rows = L.array(new ArrayBuffer(L.byteLength * 4));
    for (let i = 0; i < 4; i++) rows.write(i, { a: -i, b: i / 2, c: BigInt(i) << 60n, d: i % 2 === 1, s: `s${i}`, p: { x: i, y: 0 } });
    const a: Int16Array = rows.column("a");
    assert.deepEqual(a, Int16Array.from([0, -1, -2, -3]));
    assert.deepEqual(rows.column("b"), Float64Array.from([0, 0.5, 1, 1.5]));
    assert.deepEqual(rows.column("c", { start: 1, end: 3 }), BigUint64Array.from([1n << 60n, 2n << 60n]));
    const reuse = new Float64Array(10);
    const filled = rows.column("b", { start: 2, into: reuse });
    assert.equal(filled.buffer, reuse.buffer, "into is filled, not copied");
    assert.deepEqual(filled, Float64Array.from([1, 1.5]));
    rejectsWith(() => rows.column("b", { into: new Float32Array(10) }), "ERR_INVALID_ARG", /Float64Array of at least 4/);
    rejectsWith(() => rows.column("b", { into: new Float64Array(3) }), "ERR_INVALID_ARG");
    assert.deepEqual(rows.column("d"), Uint8Array.from([0, 1, 0, 1]));
    assert.deepEqual(rows.column("s"), ["s0", "s1", "s2", "s3"]);
    assert.deepEqual(rows.column("p.x"), Float64Array.from([0, 1, 2, 3]));
    rejectsWith(() => rows.column("p"), "ERR_INVALID_ARG", /scalar and utf8/);
    rejectsWith(() => rows.column("nope"), "ERR_INVALID_ARG", /no field "nope"/);
    rejectsWith(() => rows.column("a", { start: 3, end: 5 }), "ERR_OUT_OF_RANGE");
  });

  test("bisect() finds the first row not less than a value", () => {
    const L = struct({ key: "i64", v: "f64", k32: "u32" });
    const n = 1000;
    const rows = L.array(new ArrayBuffer(L.byteLength * n));
    for (let i = 0; i < n; i++) rows.write(i, { key: BigInt(i * 2) - 500n, v: i * 0.25, k32: Math.floor(i / 3) });
    assert.equal(rows.bisect("key", -500n), 0);
    assert.equal(rows.bisect("key", -501n), 0);
    assert.equal(rows.bisect("key", 0n), 250);
    assert.equal(rows.bisect("key", 1n), 251);
    assert.equal(rows.bisect("key", 10n ** 30n), n);
    assert.equal(rows.bisect("key", 0), 250, "a number searches a bigint field exactly");
    assert.equal(rows.bisect("v", 100), 400);
    assert.equal(rows.bisect("v", 100.1), 401);
    assert.equal(rows.bisect("k32", 5), 15, "the first of equal keys");
    for (let probe = 0; probe < 200; probe++) {
      const x = Math.floor(Math.random() * 400) - 10;
      const expected = rows.column("k32").findIndex((k) => k >= x);
      assert.equal(rows.bisect("k32", x), expected === -1 ? n : expected);
    }
    rejectsWith(() => rows.bisect("v", NaN), "ERR_INVALID_ARG", /NaN/);
    rejectsWith(() => rows.bisect("v", "1" as never), "ERR_INVALID_ARG");
    assert.equal(Point.array(new ArrayBuffer(0)).bisect("x", 1), 0);
  });

  test("over a mapped file: writes reach the file; a read-only mapping refuses writes", () => {
    using tmp = tmpDir();
    const dir = tmp.path;
    const file = path.join(dir, "points.bin");
    using m = mapFile(file, { access: "write", create: true, size: Point.byteLength * 10 });
    const rows = Point.array(m);
    assert.equal(rows.length, 10);
    assert.equal(rows.readOnly, false);
    rows.get(3).y = 7.25;
    m.flush();
    assert.equal(fs.readFileSync(file).readDoubleLE(3 * 16 + 8), 7.25);
    using r = mapFile(file);
    const ro = Point.array(r);
    assert.equal(ro.readOnly, true);
    assert.equal(ro.get(3).y, 7.25);
    rejectsWith(() => (ro.get(3).y = 1), "EACCES", /read-only/);
    rejectsWith(() => ro.write(0, { x: 1, y: 1 }), "EACCES");
    rows.get(3).y = 8; // the writer's change shows through the reader's mapping
    assert.equal(ro.get(3).y, 8);
    const held = ro.get(3);
    r.close();
    assert.throws(() => held.y, TypeError, "a closed mapping's accessors throw, never read unmapped memory");
    assert.throws(() => ro.read(0), TypeError);
  });
});
