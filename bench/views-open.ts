/**
 * Child process of bench/views.ts: makes one data file usable in a fresh
 * process and reads one row, the way a Node program would with each format.
 * Prints one JSON line: how long importing the library took, how long
 * opening plus the first random read took, and the row's checksum.
 *
 * usage: views-open.ts <memmap|flatbuffers|arrow|jsonl> <file> <row>
 */
import * as fs from "node:fs";

const [format, file, rowArg] = process.argv.slice(2) as [string, string, string];
const k = Number(rowArg);
let importMs = 0;
let openMs = 0;
let check = 0;

if (format === "memmap") {
  const t0 = performance.now();
  const { openRecordFile } = await import("../src/index.ts");
  const t1 = performance.now();
  const records = openRecordFile(file); // the layout comes from the header
  const r = records.rows.get(k) as unknown as Record<"id" | "side" | "qty" | "price" | "ts", number>;
  check = r.id + r.side + r.qty + r.price + r.ts;
  openMs = performance.now() - t1;
  importMs = t1 - t0;
} else if (format === "flatbuffers") {
  const t0 = performance.now();
  const flatbuffers = await import("flatbuffers");
  const { Trades } = await import("./views-flatbuffers.ts");
  const t1 = performance.now();
  const bb = new flatbuffers.ByteBuffer(fs.readFileSync(file));
  const r = Trades.getRootAsTrades(bb).rows(k)!;
  check = r.id() + r.side() + r.qty() + r.price() + r.ts();
  openMs = performance.now() - t1;
  importMs = t1 - t0;
} else if (format === "arrow") {
  const t0 = performance.now();
  const { tableFromIPC } = await import("apache-arrow");
  const t1 = performance.now();
  const table = tableFromIPC(fs.readFileSync(file));
  const col = (name: string): number => table.getChild(name)!.get(k) as number;
  check = col("id") + col("side") + col("qty") + col("price") + col("ts");
  openMs = performance.now() - t1;
  importMs = t1 - t0;
} else if (format === "jsonl") {
  const t1 = performance.now();
  const lines = fs.readFileSync(file, "utf8").split("\n");
  lines.pop(); // the final newline
  const rows = lines.map((l) => JSON.parse(l) as Record<string, number>);
  const r = rows[k]!;
  check = r.id! + r.side! + r.qty! + r.price! + r.ts!;
  openMs = performance.now() - t1;
} else {
  throw new Error(`unknown format ${format}`);
}
process.stdout.write(`${JSON.stringify({ importMs, openMs, check })}\n`);
