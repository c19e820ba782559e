import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { struct, utf8, array, createRecordFile, openRecordFile, MmapError, Layout } from "../src/index.ts";
import {
  FIXED_HEADER_LENGTH,
  HEADER_LENGTH_OFFSET,
  MAGIC,
  ROW_COUNT_OFFSET,
  ROW_SIZE_OFFSET,
  SCHEMA_OFFSET,
  VERSION_OFFSET,
  encodeRowCount,
  sealHeader,
} from "../src/views/record-format.ts";

let dir: string;
let counter = 0;
const fresh = (): string => path.join(dir, `file-${counter++}.rec`);

before(() => {
  dir = makeTmpDir();
});
after(() => {
  removeTmpDir(dir);
});

function rejectsWith(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof MmapError, `expected an MmapError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

const Point = struct({ x: "f32", y: "f32" });
const Item = struct({ id: "u32", price: "f64", name: utf8(10), pos: Point, tags: array("u8", 3), big: "i64", ok: "bool" });
const item = (i: number) => ({
  id: i,
  price: i * 1.25,
  name: `item-${i}`,
  pos: { x: i, y: -i },
  tags: [i % 256, 1, 2],
  big: BigInt(i) * -1_000_000_007n,
  ok: i % 3 === 0,
});

describe("record files", () => {
  test("create, append, reopen: rows and layout survive", () => {
    const file = fresh();
    {
      using out = createRecordFile(file, Item, { capacity: 10 });
      assert.equal(out.length, 0);
      assert.equal(out.capacity, 10);
      for (let i = 0; i < 7; i++) assert.equal(out.append(item(i)), i);
      assert.equal(out.length, 7);
      assert.equal(out.rows.get(6).name, "item-6");
    }
    using back = openRecordFile(file);
    assert.equal(back.access, "read");
    assert.equal(back.length, 7);
    assert.ok(back.layout.equals(Item), "the layout is rebuilt from the header");
    assert.equal(back.layout.toString(), Item.toString());
    for (let i = 0; i < 7; i++) assert.deepEqual(back.rows.read(i), item(i));
    using typed = openRecordFile(file, Item);
    const name: string = typed.rows.get(3).name;
    assert.equal(name, "item-3");
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  });

  test("the file grows when full; the rows object follows, old accessors are detached", () => {
    const file = fresh();
    using out = createRecordFile(file, Item, { capacity: 2 });
    const rows = out.rows;
    out.append(item(0));
    const early = rows.get(0);
    const sizes = new Set<number>();
    for (let i = 1; i < 1000; i++) {
      out.append(item(i));
      sizes.add(fs.statSync(file).size);
    }
    assert.ok(sizes.size >= 5, `the file grew several times (${sizes.size})`);
    assert.ok(out.capacity >= 1000);
    assert.equal(rows.length, 1000, "the same rows object sees the new rows");
    assert.deepEqual(rows.read(999), item(999));
    assert.throws(() => early.id, TypeError, "an accessor of the old mapping is detached, not dangling");
    assert.equal(rows.get(0).id, 0);
    let n = 0;
    for (const r of rows) assert.equal(r.id, n++);
    assert.equal(n, 1000);
  });

  test("appendMany publishes once; reserve grows once", () => {
    const file = fresh();
    using out = createRecordFile(file, Point, { capacity: 0 });
    out.reserve(100);
    assert.equal(out.capacity, 100);
    const size = fs.statSync(file).size;
    assert.equal(out.appendMany(Array.from({ length: 100 }, (_, i) => ({ x: i, y: i }))), 100);
    assert.equal(fs.statSync(file).size, size, "no grow needed");
    assert.equal(out.appendMany((function* () { for (let i = 0; i < 50; i++) yield { x: -i, y: 0 }; })()), 150);
    assert.equal(out.rows.get(149).x, -49);
  });

  test("a row that fails validation is not published", () => {
    const file = fresh();
    using out = createRecordFile(file, Item, { capacity: 1 });
    out.append(item(1));
    rejectsWith(() => out.append({ ...item(2), name: "much too long" }), "ERR_INVALID_ARG", /field "name"/);
    rejectsWith(() => out.append({ ...item(2), pos: { x: 1 } } as never), "ERR_INVALID_ARG", /field "pos\.y"/);
    assert.equal(out.length, 1);
    rejectsWith(() => out.appendMany([item(2), item(3), { ...item(4), id: -1 }]), "ERR_INVALID_ARG", /field "id"/);
    assert.equal(out.length, 3, "the valid rows before the bad one are published");
    using reader = openRecordFile(file);
    assert.equal(reader.length, 3);
  });

  test("a reader sees later appends, and maps more when the file grew", () => {
    const file = fresh();
    using out = createRecordFile(file, Item, { capacity: 4 });
    out.append(item(0));
    using reader = openRecordFile(file, Item);
    const rows = reader.rows;
    assert.equal(rows.length, 1);
    assert.equal(reader.capacity, 4);
    for (let i = 1; i < 300; i++) out.append(item(i));
    assert.equal(rows.length, 1, "a rows snapshot is stable until refreshed");
    assert.equal(reader.refresh(), 300);
    assert.equal(rows.length, 300);
    assert.ok(reader.capacity >= 300, "the reader mapped the grown file");
    assert.deepEqual(rows.read(299), item(299));
    assert.equal(reader.rows.get(150).name, "item-150");
    rejectsWith(() => reader.append(item(0)), "EACCES", /read-only/);
    rejectsWith(() => (reader.rows.get(0).id = 5), "EACCES");
    assert.equal(reader.rows.readOnly, true);
  });

  test("a writer can change rows in place", () => {
    const file = fresh();
    {
      using out = createRecordFile(file, Item);
      out.append(item(0));
      out.rows.get(0).price = 99.5;
      out.rows.write(0, { ...out.rows.read(0), name: "renamed" });
    }
    using back = openRecordFile(file, Item, { access: "write" });
    assert.equal(back.rows.get(0).price, 99.5);
    assert.equal(back.rows.get(0).name, "renamed");
    back.append(item(1));
    assert.equal(back.length, 2);
  });

  test("one writer at a time (ERR_BUSY); the lock goes with close()", () => {
    const file = fresh();
    const out = createRecordFile(file, Point);
    rejectsWith(() => openRecordFile(file, { access: "write" }), "ERR_BUSY", /open for writing/);
    rejectsWith(() => openRecordFile(file, undefined, { access: "write" }), "ERR_BUSY");
    using reader = openRecordFile(file);
    assert.equal(reader.length, 0);
    out.close();
    out.close();
    using again = openRecordFile(file, { access: "write" });
    again.append({ x: 1, y: 2 });
  });

  test("create refuses an existing path unless overwrite; readers of the old file keep it", () => {
    const file = fresh();
    using first = createRecordFile(file, Point);
    first.append({ x: 1, y: 1 });
    rejectsWith(() => createRecordFile(file, Point), "EEXIST", /overwrite/);
    using old = openRecordFile(file, Point);
    first.close();
    using second = createRecordFile(file, Item, { overwrite: true });
    assert.equal(second.length, 0);
    assert.equal(old.rows.get(0).x, 1, "the old file is unlinked, not truncated under its reader");
    using now = openRecordFile(file);
    assert.ok(now.layout.equals(Item));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith(".tmp")), [], "no temporary file left behind");
  });

  test("a layout that differs from the file's is ERR_SCHEMA_MISMATCH", () => {
    const file = fresh();
    createRecordFile(file, Item).close();
    const variants: [Layout, RegExp][] = [
      [struct({ id: "u32" }), /7 fields against 1/],
      [struct({ id: "i32", price: "f64", name: utf8(10), pos: Point, tags: array("u8", 3), big: "i64", ok: "bool" }), /field "id" is u32 against i32/],
      [struct({ id: "u32", price: "f64", name: utf8(11), pos: Point, tags: array("u8", 3), big: "i64", ok: "bool" }), /field "name" is utf8\(10\) against utf8\(11\)/],
      [struct({ id: "u32", price: "f64", name: utf8(10), pos: struct({ x: "f32", z: "f32" }), tags: array("u8", 3), big: "i64", ok: "bool" }), /field 1 in "pos" is "y" against "z"/],
      [struct({ id: "u32", price: "f64", name: utf8(10), pos: Point, tags: array("u8", 4), big: "i64", ok: "bool" }), /field "tags"/],
      [struct({ id: "u32", price: "f64", name: utf8(10), pos: Point, tags: array("u8", 3), big: "i64", ok: "bool" }, { packed: true }), /natural against packed/],
    ];
    for (const [layout, message] of variants) rejectsWith(() => openRecordFile(file, layout), "ERR_SCHEMA_MISMATCH", message);
  });

  test("misuse and missing files are clear errors", () => {
    rejectsWith(() => openRecordFile(path.join(dir, "missing.rec")), "ENOENT");
    rejectsWith(() => openRecordFile(dir), "EISDIR");
    rejectsWith(() => createRecordFile(fresh(), {} as Layout), "ERR_INVALID_ARG", /struct\(\)/);
    rejectsWith(() => createRecordFile(fresh(), Point, { capacity: -1 }), "ERR_INVALID_ARG");
    // Past 4 GiB is allowed; more space than the disk has is the file system's error, and leaves nothing behind.
    const tooBig = fresh();
    assert.throws(() => createRecordFile(tooBig, Point, { capacity: 2 ** 42 }), (e: MmapError) => e.code === "ENOSPC" || e.code === "EFBIG");
    assert.deepEqual(fs.readdirSync(path.dirname(tooBig)).filter((n) => n.includes(path.basename(tooBig))), []);
    rejectsWith(() => createRecordFile(fresh(), Point, { capacity: 2 ** 52 }), "ERR_INVALID_ARG");
    rejectsWith(() => openRecordFile(fresh(), { access: "append" as "read" }), "ERR_INVALID_ARG");
    const file = fresh();
    const out = createRecordFile(file, Point);
    out.close();
    rejectsWith(() => out.append({ x: 0, y: 0 }), "ERR_CLOSED");
    rejectsWith(() => out.rows, "ERR_CLOSED");
  });
});

describe("corrupt headers are ERR_CORRUPT, saying what is wrong", () => {
  // struct { a: u8 @0, b: f64 @8 }; its schema, from SCHEMA_OFFSET:
  //  +0 struct code | +1 flags | +2 u16 count | +4 u32 size 16
  //  +8 name length 1 | +9 "a" | +10 u32 offset 0 | +14 type u8
  // +15 name length 1 | +16 "b" | +17 u32 offset 8 | +21 type f64
  const AB = struct({ a: "u8", b: "f64" });
  const FIELD_A_TYPE = SCHEMA_OFFSET + 14;
  const FIELD_B_OFFSET = SCHEMA_OFFSET + 17;
  const STRUCT_SIZE = SCHEMA_OFFSET + 4;

  function damaged(change: (bytes: Buffer, view: DataView) => void, seal = true): string {
    const file = fresh();
    const out = createRecordFile(file, AB, { capacity: 4 });
    out.append({ a: 1, b: 2 });
    out.close();
    const bytes = fs.readFileSync(file);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    change(bytes, view);
    if (seal) sealHeader(bytes);
    fs.writeFileSync(file, bytes);
    return file;
  }

  const cases: [string, () => string, RegExp][] = [
    ["an empty file", () => { const f = fresh(); fs.writeFileSync(f, ""); return f; }, /truncated header: the file has 0 bytes/],
    ["a file shorter than the fixed header", () => { const f = fresh(); fs.writeFileSync(f, MAGIC); return f; }, /truncated header: the file has 8 bytes/],
    ["a header cut short", () => { const f = damaged(() => {}); fs.truncateSync(f, FIXED_HEADER_LENGTH + 8); return f; }, /truncated header: it is 64 bytes long, the file has 48/],
    ["bad magic", () => damaged((b) => b.write("NOTMAGIC", 0)), /bad magic "NOTMAGIC"/],
    ["a future version", () => damaged((_, v) => v.setUint32(VERSION_OFFSET, 3, true)), /unsupported format version 3/],
    ["a damaged byte (checksum)", () => damaged((b) => { b[FIELD_A_TYPE] = 3; }, false), /checksum mismatch/],
    ["an unknown type code", () => damaged((b) => { b[FIELD_A_TYPE] = 99; }), /unknown type code 99/],
    ["overlapping fields", () => damaged((_, v) => v.setUint32(FIELD_B_OFFSET, 0, true)), /field "b" at offset 0 overlaps field "a"|field "a" at offset 0 overlaps field "b"/],
    ["a field past the row's end", () => damaged((_, v) => v.setUint32(FIELD_B_OFFSET, 12, true)), /field "b" \(offset 12, 8 bytes\) exceeds the row size of 16 bytes/],
    ["an offset the layout rules do not give", () => damaged((_, v) => v.setUint32(FIELD_B_OFFSET, 4, true)), /field "b" is stored at offset 4 but a natural layout puts it at 8/],
    ["a struct size that disagrees", () => damaged((_, v) => v.setUint32(STRUCT_SIZE, 24, true)), /struct's size is stored as 24 bytes but its fields make 16/],
    ["a row size that disagrees", () => damaged((_, v) => v.setUint32(ROW_SIZE_OFFSET, 8, true)), /row size is stored as 8 bytes/],
    ["a bad header length", () => damaged((_, v) => v.setUint32(HEADER_LENGTH_OFFSET, 13, true)), /header length 13 is not a multiple of 8/],
    ["a row count larger than the file", () => damaged((_, v) => v.setBigInt64(ROW_COUNT_OFFSET, encodeRowCount(5, true), true)), /row count 5 is larger than the file holds \(4 rows of 16 bytes/],
    ["a negative row count", () => damaged((_, v) => v.setBigInt64(ROW_COUNT_OFFSET, -1n, true)), /row count word 0xffffffffffffffff is negative/],
    ["a row count that fails its check", () => damaged((_, v) => v.setBigInt64(ROW_COUNT_OFFSET, 3n, true)), /row count word 0x3 fails its check/],
  ];
  for (const [name, make, message] of cases) {
    test(name, () => rejectsWith(() => openRecordFile(make()), "ERR_CORRUPT", message));
  }

  test("the row count is validated again when a reader refreshes", () => {
    const file = fresh();
    using out = createRecordFile(file, AB, { capacity: 2 });
    using reader = openRecordFile(file);
    // A hostile or broken writer publishes a count the file cannot hold.
    const fd = fs.openSync(file, "r+");
    const count = Buffer.alloc(8);
    count.writeBigInt64LE(encodeRowCount(1000, true));
    fs.writeSync(fd, count, 0, 8, ROW_COUNT_OFFSET);
    fs.closeSync(fd);
    rejectsWith(() => reader.length, "ERR_CORRUPT", /row count 1000 is larger than the file holds/);
    assert.equal(out.length, 0);
  });
});
