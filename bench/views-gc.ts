/**
 * Child process of bench/views.ts, run with --trace-gc --allow-natives-syntax:
 * proves whether a way of reading every row allocates per row. It has the
 * loop compiled by the optimising compiler first (unoptimised code boxes
 * every double it computes, which would count the engine's tier, not the
 * library), then prints BEGIN, reads every row once more, and prints END;
 * the parent counts the collections V8 reports in between. A loop that
 * allocates an object per row over millions of rows cannot finish without
 * several scavenges; one that allocates nothing runs none.
 * "keep" is the control: it stores each row's accessor where the optimiser
 * cannot prove it dead, so it must allocate one object per row.
 *
 * usage: node --trace-gc --allow-natives-syntax --import tsx bench/views-gc.ts <file.rec> <iterate|get|keep>
 */
import { openRecordFile } from "../src/index.ts";
import { Trade } from "./views-data.ts";

const [file, mode] = process.argv.slice(2) as [string, string];
using records = openRecordFile(file, Trade);
const rows = records.rows;
const kept: { last: unknown } = { last: undefined };

function pass(): number {
  let s = 0;
  if (mode === "iterate") for (const row of rows) s += row.price;
  else if (mode === "get") for (let i = 0; i < rows.length; i++) s += rows.get(i).price;
  else if (mode === "keep")
    for (let i = 0; i < rows.length; i++) {
      const row = rows.get(i);
      kept.last = row; // escapes: V8 must allocate it
      s += row.price;
    }
  else throw new Error(`unknown mode ${mode}`);
  return s;
}

// V8 intrinsics, parsed at run time (they are not TypeScript).
const prepare = new Function("f", "%PrepareFunctionForOptimization(f);") as (f: () => number) => void;
const optimize = new Function("f", "%OptimizeFunctionOnNextCall(f);") as (f: () => number) => void;
prepare(pass);
const warm = pass() + pass();
optimize(pass);
process.stdout.write("BEGIN\n");
const sum = pass();
process.stdout.write(`END ${sum === warm / 2 ? "ok" : "mismatch"}\n`);
