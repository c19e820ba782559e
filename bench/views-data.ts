/**
 * The data set of bench/views.ts, in every format it compares: the same
 * rows of a 5-field Trade as a memmap record file, a FlatBuffers vector of
 * structs, an Apache Arrow IPC file and JSON lines.
 */
import * as fs from "node:fs";
import { tableFromArrays, tableToIPC } from "apache-arrow";
import { createRecordFile, struct } from "../src/index.ts";
import { buildTrades, type TradeFields } from "./views-flatbuffers.ts";

/** 32 bytes: id @0, side @4, qty @8, price @16, ts @24 (the C struct in bench/c/views-scan.c). */
export const Trade = struct({ id: "u32", side: "u8", qty: "i32", price: "f64", ts: "f64" });

/** Row i of the data set. Every value survives JSON exactly. */
export function trade(i: number, out: TradeFields): TradeFields {
  out.id = i;
  out.side = i & 1;
  out.qty = ((i * 7) % 1000) - 500;
  out.price = 100 + (i % 1000) * 0.01;
  out.ts = 1.7e12 + i;
  return out;
}

/** `count` row indexes in [0, rows): the xorshift32 sequence bench/c/views-scan.c uses too. */
export { randomIndexes } from "./common.ts";

export function writeRecordFile(path: string, rows: number): void {
  using out = createRecordFile(path, Trade, { capacity: rows, overwrite: true });
  const row = { id: 0, side: 0, qty: 0, price: 0, ts: 0 };
  out.appendMany(
    (function* () {
      for (let i = 0; i < rows; i++) yield trade(i, row);
    })(),
  );
}

export function writeFlatBuffers(path: string, rows: number): void {
  fs.writeFileSync(path, buildTrades(rows, trade));
}

export function writeArrow(path: string, rows: number): void {
  const id = new Uint32Array(rows);
  const side = new Uint8Array(rows);
  const qty = new Int32Array(rows);
  const price = new Float64Array(rows);
  const ts = new Float64Array(rows);
  const t = { id: 0, side: 0, qty: 0, price: 0, ts: 0 };
  for (let i = 0; i < rows; i++) {
    trade(i, t);
    id[i] = t.id;
    side[i] = t.side;
    qty[i] = t.qty;
    price[i] = t.price;
    ts[i] = t.ts;
  }
  fs.writeFileSync(path, tableToIPC(tableFromArrays({ id, side, qty, price, ts }), "file"));
}

export function jsonLines(rows: number): string {
  const t = { id: 0, side: 0, qty: 0, price: 0, ts: 0 };
  const parts: string[] = new Array<string>(rows);
  for (let i = 0; i < rows; i++) parts[i] = JSON.stringify(trade(i, t));
  return parts.join("\n") + "\n";
}
