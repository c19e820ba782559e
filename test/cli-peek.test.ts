/**
 * `memmap peek`: bytes of a file through a mapping, in every format.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { array, createRecordFile, struct, utf8 } from "../src/index.ts";
import { oneLine, runCli, tempDir } from "./fixtures/cli-run.ts";

const { dir, remove } = tempDir();
after(remove);

// 16 bytes of text, 4 u32s, 2 f64s, then 3 records {id u32, price f64, name utf8(4)}; 5000 bytes of 0xab at 8 KiB.
const file = path.join(dir, "sample.bin");
const buf = Buffer.alloc(8192 + 5000);
buf.write("Hello, mapping!\n", 0, "utf8");
[1, 2, 3, 0xdeadbeef].forEach((v, i) => buf.writeUInt32LE(v, 16 + i * 4));
buf.writeDoubleLE(1.5, 32);
buf.writeDoubleLE(-2.25, 40);
const RECORDS_AT = 48;
[
  [7, 9.99, "abc"],
  [8, 0.5, "wxyz"],
  [9, 1e6, ""],
].forEach(([id, price, name], i) => {
  const at = RECORDS_AT + i * 16;
  buf.writeUInt32LE(id as number, at);
  buf.writeDoubleLE(price as number, at + 4);
  buf.write(name as string, at + 12, "utf8");
});
buf.fill(0xab, 8192);
fs.writeFileSync(file, buf);
const empty = path.join(dir, "empty");
fs.writeFileSync(empty, "");

test("hex: hexdump -C layout with file offsets", async () => {
  const r = await runCli(["peek", file, "--length", "20"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    "00000000  48 65 6c 6c 6f 2c 20 6d  61 70 70 69 6e 67 21 0a  |Hello, mapping!.|\n" +
      "00000010  01 00 00 00                                       |....|\n",
  );
});

test("an unaligned offset in hex and a length with a suffix, as JSON; the end of the file bounds it", async () => {
  const r = await runCli(["peek", file, "--offset", "0x2001", "-n", "8k", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const left = buf.length - 8193;
  assert.deepEqual(JSON.parse(r.stdout), { file, size: buf.length, offset: 8193, length: left, as: "hex", hex: "ab".repeat(left) });
});

test("u32 (JSON), u8 and f64: little-endian numbers", async () => {
  const [u32, u8, f64] = await Promise.all([
    runCli(["peek", file, "-o", "16", "-n", "18", "--as", "u32", "--json"]),
    runCli(["peek", file, "-n", "5", "--as", "u8"]),
    runCli(["peek", file, "-o", "32", "-n", "16", "--as", "f64"]),
  ]);
  const j = JSON.parse(u32.stdout) as { values: number[]; trailingBytes: number };
  assert.deepEqual(j.values, [1, 2, 3, 0xdeadbeef]);
  assert.equal(j.trailingBytes, 2);
  assert.equal(u8.stdout, "00000000   72 101 108 108 111\n");
  assert.match(f64.stdout, /^00000020\s+1\.5\s+-2\.25\n$/);
});

test("--as takes every scalar type of struct(): i8 … u64, f32, bool, as JSON and text", async () => {
  // A Float32 model file, and one of each other type, written with the layout struct() gives them.
  const typed = path.join(dir, "typed.bin");
  const b = Buffer.alloc(64);
  b.writeFloatLE(0.5, 0);
  b.writeFloatLE(-1.25, 4);
  b.writeInt8(-5, 8);
  b.writeUInt8(1, 9);
  b.writeInt16LE(-300, 10);
  b.writeUInt16LE(65535, 12);
  b.writeInt32LE(-70000, 16);
  b.writeBigInt64LE(-(2n ** 60n), 24);
  b.writeBigUInt64LE(2n ** 64n - 1n, 32);
  b.writeBigUInt64LE(42n, 40);
  fs.writeFileSync(typed, b);
  const peek = (args: string[]) => runCli(["peek", typed, ...args, "--json"]);
  const cases: [string[], unknown[]][] = [
    [["--as", "f32", "-n", "8"], [0.5, -1.25]],
    [["--as", "i8", "-o", "8", "-n", "1"], [-5]],
    [["--as", "bool", "-o", "19", "-n", "2"], [true, false]],
    [["--as", "i16", "-o", "10", "-n", "2"], [-300]],
    [["--as", "u16", "-o", "12", "-n", "2"], [65535]],
    [["--as", "i32", "-o", "16", "-n", "4"], [-70000]],
    [["--as", "i64", "-o", "24", "-n", "8"], [String(-(2n ** 60n))]], // beyond 2^53: a string, as struct-json does
    [["--as", "u64", "-o", "32", "-n", "16"], ["18446744073709551615", 42]],
  ];
  const results = await Promise.all(cases.map(([args]) => peek(args)));
  results.forEach((r, i) => {
    assert.equal(r.code, 0, `${cases[i]![0].join(" ")}: ${r.stderr}`);
    assert.deepEqual((JSON.parse(r.stdout) as { values: unknown[] }).values, cases[i]![1], cases[i]![0].join(" "));
  });
  const text = await runCli(["peek", typed, "--as", "f32", "-n", "8"]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^00000000\s+0\.5\s+-1\.25\n$/);
});

test("utf8 text", async () => {
  const r = await runCli(["peek", file, "--as", "utf8", "-o", "7", "-n", "8"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "mapping!\n");
});

test("struct-json with --struct: raw records, packed or laid out like struct()", async () => {
  const packed = ["peek", file, "-o", String(RECORDS_AT), "--as", "struct-json", "--struct", "id:u32,price:f64,name:utf8(4)", "--packed", "--count", "3"];
  const [lines, natural] = await Promise.all([
    runCli(packed),
    runCli(["peek", file, "--as", "struct-json", "--struct", "a:u32,b:f64,c:u16[2]", "--json", "--count", "1"]),
  ]);
  assert.equal(lines.code, 0, lines.stderr);
  const expected = [
    { id: 7, price: 9.99, name: "abc" },
    { id: 8, price: 0.5, name: "wxyz" },
    { id: 9, price: 1e6, name: "" },
  ];
  assert.deepEqual(lines.stdout.trim().split("\n").map((l) => JSON.parse(l) as unknown), expected);
  assert.equal(oneLine(lines.stderr), "# packed struct { id: u32 @0, price: f64 @4, name: utf8(4) @12 } (16 bytes); 821 rows; showing 3 from row 0");
  // Natural alignment, as struct() lays it out: a @0, b @8, c @16, padded to 24.
  const n = JSON.parse(natural.stdout) as { rowSize: number; records: { a: number; b: number; c: number[] }[] };
  assert.equal(n.rowSize, 24);
  assert.deepEqual(n.records, [{ a: buf.readUInt32LE(0), b: buf.readDoubleLE(8), c: [buf.readUInt16LE(16), buf.readUInt16LE(18)] }]);
});

test("struct-json on a record file: the layout comes from its header", async () => {
  const recFile = path.join(dir, "ticks.rec");
  const Tick = struct({ ts: "i64", price: "f64", sym: utf8(8), flags: array("u8", 2) });
  {
    using out = createRecordFile(recFile, Tick, { capacity: 8 });
    for (let i = 0; i < 25; i++) out.append({ ts: i === 24 ? 2n ** 62n : BigInt(i * 1000), price: i + 0.25, sym: `S${i}`, flags: [i, 1] });
  }
  const [tail, notRecords] = await Promise.all([
    runCli(["peek", recFile, "--as", "struct-json", "--row", "22", "--json"]),
    runCli(["peek", file, "--as", "struct-json"]),
  ]);
  assert.equal(tail.code, 0, tail.stderr);
  const j = JSON.parse(tail.stdout) as { recordFile: boolean; rows: number; from: number; rowSize: number; records: unknown[] };
  assert.equal(j.recordFile, true);
  assert.equal(j.rows, 25);
  assert.equal(j.rowSize, Tick.byteLength);
  assert.deepEqual(j.records, [
    { ts: 22000, price: 22.25, sym: "S22", flags: [22, 1] },
    { ts: 23000, price: 23.25, sym: "S23", flags: [23, 1] },
    { ts: String(2n ** 62n), price: 24.25, sym: "S24", flags: [24, 1] }, // beyond 2^53: a string
  ]);
  assert.equal(notRecords.code, 1);
  assert.match(oneLine(notRecords.stderr), new RegExp(`^memmap: ${file}: .*; to read raw records give --struct$`));
});

test("an empty file shows nothing", async () => {
  const r = await runCli(["peek", empty]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "");
});

test("failures: missing file, offset past the end, a directory (with --debug: the stack)", async () => {
  const missing = path.join(dir, "missing");
  const [m, past, debug] = await Promise.all([runCli(["peek", missing]), runCli(["peek", file, "-o", "1M"]), runCli(["peek", dir, "--debug"])]);
  assert.equal(m.code, 1);
  assert.equal(oneLine(m.stderr), `memmap: ${missing}: no such file or directory (ENOENT)`);
  assert.equal(past.code, 1);
  assert.equal(oneLine(past.stderr), `memmap: offset 1048576 is beyond the end of ${file} (${buf.length} bytes)`);
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, new RegExp(`^memmap: ${dir}: not a regular file\\n.*\\n\\s+at `), "--debug adds the stack trace");
});

test("bad arguments exit 2 with one line", async () => {
  const cases = [
    ["peek"],
    ["peek", file, "--as", "u128"],
    ["peek", file, "--offset", "-5"],
    ["peek", file, "--as", "struct-json", "--struct", "id:u33"],
  ];
  const results = await Promise.all(cases.map((c) => runCli(c)));
  results.forEach((r, i) => {
    assert.equal(r.code, 2, `memmap ${cases[i]!.join(" ")}: ${r.stderr}`);
    assert.match(oneLine(r.stderr), /^memmap: /);
    assert.equal(r.stdout, "");
  });
});
