// Random access as an array: one process writes a sorted file of records,
// another process opens it (the layout comes from the file's header) and
// binary-searches it in place.
// Run: node --import tsx examples/record-file.ts
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createRecordFile, openRecordFile, struct } from "../src/index.ts";

const Tick = struct({ ts: "i64", price: "f64", qty: "u32" });

const [file] = process.argv.slice(2);
if (file) {
  // Reader process: no schema given, no parsing, no copy.
  using ticks = openRecordFile(file);
  const rows = ticks.rows;
  const i = rows.bisect("ts", 500_000n); // first tick at or after ts 500,000
  const t = rows.get(i);
  console.log(`${rows.length} rows; first tick at ts >= 500000 is row ${i}: ts ${t.ts}, price ${t.price}, qty ${t.qty}`);
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-example-"));
  const file = path.join(dir, "ticks.rec");
  const out = createRecordFile(file, Tick, { capacity: 1024 }); // grows as needed
  for (let i = 0; i < 1_000_000; i++) out.append({ ts: BigInt(i * 3), price: 100 + (i % 100) / 10, qty: i % 7 });
  out.close();
  console.log(`wrote ${fs.statSync(file).size >> 20} MiB`);
  process.stdout.write(execFileSync(process.execPath, [...process.execArgv, process.argv[1]!, file], { encoding: "utf8" }));
  fs.rmSync(dir, { recursive: true });
}
