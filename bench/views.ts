/**
 * bench:views: a mapped record file indexed like an array, against the
 * other ways a Node program reads a file of records.
 *
 * One data set (a 5-field, 32-byte Trade) in every format, all in one run:
 * 1. the sum of one field over every row (sequential);
 * 2. every field of 1,000,000 random rows;
 * through (a) memmap accessors, (b) hand-written DataView code over the same
 * mapping, (c) a FlatBuffers vector of structs, (d) an Apache Arrow IPC file,
 * (e) JSON lines, and a C struct pointer over the same mapping (the machine's
 * limit). Then 3. the time a fresh process needs to make a 1 GiB file of the
 * same rows usable and read one random row, with the page cache warm and cold.
 *
 * usage: node --import tsx --expose-gc bench/views.ts [--quick]
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as flatbuffers from "flatbuffers";
import { tableFromIPC } from "apache-arrow";
import { evictFile, mapFile, openRecordFile } from "../src/index.ts";
import { benchDir, buildC, fmtNs, fmtRatio, median, min, printTable, quick, saveResults, timeRounds } from "./common.ts";
import { Trade as FbTrade, Trades } from "./views-flatbuffers.ts";
import { Trade, jsonLines, randomIndexes, trade, writeArrow, writeFlatBuffers, writeRecordFile } from "./views-data.ts";
import { largeFileSection } from "./views-large.ts";
import { arrowSection } from "./arrow.ts";

const ROWS = quick ? 1_000_000 : 10_000_000;
const READS = quick ? 200_000 : 1_000_000;
const JSON_ROWS = quick ? 100_000 : 1_000_000; // JSON is parsed on this many rows and scaled
const OPEN_ROWS = quick ? 2 ** 21 : 2 ** 25; // 64 MiB / 1 GiB of 32-byte rows
const ROUNDS = quick ? 5 : 7;
const OPEN_RUNS = quick ? 1 : 3; // processes per peer format and cache state
const MEMMAP_OPEN_RUNS = quick ? 3 : 7; // memmap's runs are cheap: more of them, steadier medians
const SMALL_ROWS = 65_536; // a 2 MiB record file, to show that opening does not grow with the size

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const log = (message: string): void => void process.stderr.write(`${message}\n`);
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

interface Measured {
  reader: string;
  /** Best-of-ROUNDS nanoseconds for the whole workload (scaled to ROWS or READS when `scaled`). */
  ns: number;
  check: number;
  scaled?: number;
}

function measure(reader: string, fn: () => number, scale = 1): Measured {
  gc();
  let check = fn(); // warm-up (and JIT)
  const times = timeRounds(ROUNDS, () => {
    check = fn();
  });
  // The best round: on a shared machine the slower rounds measure the neighbours, not the code.
  return { reader, ns: min(times) * scale, check, ...(scale !== 1 ? { scaled: scale } : {}) };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-bench-views-"));
try {
  log(`bench:views ${quick ? "(quick) " : ""}— ${ROWS.toLocaleString()} rows, ${READS.toLocaleString()} random reads, data in ${dir}`);

  // ------------------------------------------------------------ the data set, in every format
  const files = {
    rec: path.join(dir, "trades.rec"),
    fb: path.join(dir, "trades.fb"),
    arrow: path.join(dir, "trades.arrow"),
    jsonl: path.join(dir, "trades.jsonl"),
  };
  let t = performance.now();
  writeRecordFile(files.rec, ROWS);
  log(`  record file: ${mib(fs.statSync(files.rec).size)} in ${(performance.now() - t).toFixed(0)} ms`);
  t = performance.now();
  writeFlatBuffers(files.fb, ROWS);
  log(`  FlatBuffers: ${mib(fs.statSync(files.fb).size)} in ${(performance.now() - t).toFixed(0)} ms`);
  t = performance.now();
  writeArrow(files.arrow, ROWS);
  log(`  Arrow IPC:   ${mib(fs.statSync(files.arrow).size)} in ${(performance.now() - t).toFixed(0)} ms`);
  const jsonText = jsonLines(JSON_ROWS);
  fs.writeFileSync(files.jsonl, jsonText);
  log(`  JSON lines:  ${mib(jsonText.length)} (${JSON_ROWS.toLocaleString()} rows)`);

  // (a) and (b) read the same mapping
  const records = openRecordFile(files.rec, Trade);
  const rows = records.rows;
  const mapping = mapFile(files.rec);
  const dv = new DataView(mapping.buffer);
  const base = records.headerLength;
  // (c) and (d) as their users load them: the whole file into memory
  const trades = Trades.getRootAsTrades(new flatbuffers.ByteBuffer(fs.readFileSync(files.fb)));
  const table = tableFromIPC(fs.readFileSync(files.arrow));
  const col = {
    id: table.getChild("id")!,
    side: table.getChild("side")!,
    qty: table.getChild("qty")!,
    price: table.getChild("price")!,
    ts: table.getChild("ts")!,
  };
  // (e) one string, split into lines; random reads parse the line they need
  const jsonRows = jsonText.split("\n");
  jsonRows.pop();

  const index = randomIndexes(READS, ROWS);
  const priceColumn = new Float64Array(ROWS); // column() into a reused array: a fresh one costs its page faults every round
  const jsonIndex = randomIndexes(READS, JSON_ROWS);

  // ------------------------------------------------------------ 1. sequential: sum of price
  log("sequential sums …");
  const sequential: Measured[] = [
    measure("(a) memmap rows.get(i).price", () => {
      let s = 0;
      for (let i = 0; i < rows.length; i++) s += rows.get(i).price;
      return s;
    }),
    measure("(a) memmap for (const row of rows)", () => {
      let s = 0;
      for (const row of rows) s += row.price;
      return s;
    }),
    measure("(a) memmap rows.column(\"price\", { into }) + loop", () => {
      const c = rows.column("price", { into: priceColumn });
      let s = 0;
      for (let i = 0; i < c.length; i++) s += c[i]!;
      return s;
    }),
    measure("(b) DataView, hand-written", () => {
      let s = 0;
      for (let i = 0; i < ROWS; i++) s += dv.getFloat64(base + i * 32 + 16, true);
      return s;
    }),
    measure("(c) FlatBuffers rows(i, obj).price()", () => {
      const t = new FbTrade();
      const n = trades.rowsLength();
      let s = 0;
      for (let i = 0; i < n; i++) s += trades.rows(i, t)!.price();
      return s;
    }),
    measure("(d) Arrow vector.get(i)", () => {
      const v = col.price;
      let s = 0;
      for (let i = 0; i < v.length; i++) s += v.get(i) as number;
      return s;
    }),
    measure("(d) Arrow vector.toArray() + loop", () => {
      const a = col.price.toArray() as Float64Array;
      let s = 0;
      for (let i = 0; i < a.length; i++) s += a[i]!;
      return s;
    }),
    measure(`(e) JSON lines, JSON.parse each (×${ROWS / JSON_ROWS} from ${JSON_ROWS.toLocaleString()} rows)`, () => {
      let s = 0;
      for (let i = 0; i < jsonRows.length; i++) s += (JSON.parse(jsonRows[i]!) as { price: number }).price;
      return s;
    }, ROWS / JSON_ROWS),
  ];

  // ------------------------------------------------------------ 2. random rows: every field
  log("random reads …");
  const random: Measured[] = [
    measure("(a) memmap rows.get(i), 5 fields", () => {
      let s = 0;
      for (let k = 0; k < index.length; k++) {
        const r = rows.get(index[k]!);
        s += r.id + r.side + r.qty + r.price + r.ts;
      }
      return s;
    }),
    measure("(a) memmap rows.read(i) (plain copy)", () => {
      let s = 0;
      for (let k = 0; k < index.length; k++) {
        const r = rows.read(index[k]!);
        s += r.id + r.side + r.qty + r.price + r.ts;
      }
      return s;
    }),
    measure("(b) DataView, hand-written", () => {
      let s = 0;
      for (let k = 0; k < index.length; k++) {
        const o = base + index[k]! * 32;
        s += dv.getUint32(o, true) + dv.getUint8(o + 4) + dv.getInt32(o + 8, true) + dv.getFloat64(o + 16, true) + dv.getFloat64(o + 24, true);
      }
      return s;
    }),
    measure("(c) FlatBuffers rows(i, obj)", () => {
      const t = new FbTrade();
      let s = 0;
      for (let k = 0; k < index.length; k++) {
        const r = trades.rows(index[k]!, t)!;
        s += r.id() + r.side() + r.qty() + r.price() + r.ts();
      }
      return s;
    }),
    measure("(d) Arrow vector.get(i) × 5 columns", () => {
      let s = 0;
      for (let k = 0; k < index.length; k++) {
        const i = index[k]!;
        s += (col.id.get(i) as number) + (col.side.get(i) as number) + (col.qty.get(i) as number) + (col.price.get(i) as number) + (col.ts.get(i) as number);
      }
      return s;
    }),
    measure(`(e) JSON lines, JSON.parse the row's line (rows of a ${JSON_ROWS.toLocaleString()}-line file)`, () => {
      let s = 0;
      for (let k = 0; k < jsonIndex.length; k++) {
        const r = JSON.parse(jsonRows[jsonIndex[k]!]!) as Record<"id" | "side" | "qty" | "price" | "ts", number>;
        s += r.id + r.side + r.qty + r.price + r.ts;
      }
      return s;
    }),
  ];

  // No object per row: a child process with --trace-gc reads every row, and
  // the collections V8 reports during that pass are counted. The control
  // keeps each accessor, so it allocates per row: it shows the count can be > 0.
  const collections = (mode: string): number => {
    const out = execFileSync(process.execPath, ["--trace-gc", "--allow-natives-syntax", "--import", "tsx", path.join(benchDir, "views-gc.ts"), files.rec, mode], { encoding: "utf8" });
    const lines = out.split("\n");
    const begin = lines.indexOf("BEGIN");
    const end = lines.findIndex((l) => l.startsWith("END"));
    if (begin < 0 || end < 0 || lines[end] !== "END ok") throw new Error(`views-gc.ts ${mode}: unexpected output`);
    return lines.slice(begin + 1, end).filter((l) => /Scavenge|Mark-Compact|Mark-sweep|Minor/i.test(l)).length;
  };
  log("garbage collections per pass …");
  const gcs = { iterate: collections("iterate"), get: collections("get"), control: collections("keep") };

  // The C reference over the same file.
  const cBin = buildC("views-scan");
  let cResult: { sumNs: number; randomNs: number; sum: number; randomSum: number } | undefined;
  if (cBin) {
    cResult = JSON.parse(execFileSync(cBin, [files.rec, String(READS)], { encoding: "utf8" }));
    sequential.push({ reader: "C: struct pointer over the mapping (best of 5)", ns: cResult!.sumNs, check: cResult!.sum });
    random.push({ reader: "C: struct pointer over the mapping (best of 5)", ns: cResult!.randomNs, check: cResult!.randomSum });
  }
  mapping.close();
  records.close();

  // Every reader must have read the same numbers.
  const expectedSum = sequential.find((m) => m.reader.startsWith("(b)"))!.check;
  const expectedRandom = random.find((m) => m.reader.startsWith("(b)"))!.check;
  const row = { id: 0, side: 0, qty: 0, price: 0, ts: 0 };
  let jsonSum = 0;
  for (let i = 0; i < JSON_ROWS; i++) jsonSum += trade(i, row).price;
  let jsonRandom = 0;
  for (let k = 0; k < READS; k++) {
    const r = trade(jsonIndex[k]!, row);
    jsonRandom += r.id + r.side + r.qty + r.price + r.ts;
  }
  for (const m of sequential) {
    const want = m.reader.startsWith("(e)") ? jsonSum : expectedSum;
    if (m.check !== want) throw new Error(`${m.reader}: sum ${m.check}, expected ${want}`);
  }
  for (const m of random) {
    const want = m.reader.startsWith("(e)") ? jsonRandom : expectedRandom;
    if (m.check !== want) throw new Error(`${m.reader}: checksum ${m.check}, expected ${want}`);
  }

  // ------------------------------------------------------------ 3. open + first random read, in a new process
  log(`files of ${OPEN_ROWS.toLocaleString()} rows for the open test …`);
  const open = {
    rec: path.join(dir, "open.rec"),
    fb: path.join(dir, "open.fb"),
    arrow: path.join(dir, "open.arrow"),
  };
  const small = path.join(dir, "small.rec");
  writeRecordFile(small, SMALL_ROWS);
  writeRecordFile(open.rec, OPEN_ROWS);
  writeFlatBuffers(open.fb, OPEN_ROWS);
  writeArrow(open.arrow, OPEN_ROWS);
  const checksum = (i: number): number => {
    const r = trade(i, row);
    return r.id + r.side + r.qty + r.price + r.ts;
  };
  const jsonScale = OPEN_ROWS / JSON_ROWS;

  interface OpenResult {
    format: string;
    bytes: number;
    warmMs: number;
    coldMs: number;
    importMs: number;
    processMs: number;
    scaled?: number;
  }
  /** Runs bench/views-open.ts on `file`, reading row `k` (of `rows`). */
  const openChild = (format: string, file: string, rows: number, cold: boolean): { importMs: number; openMs: number; processMs: number } => {
    const k = rows - 12_345;
    if (cold) evictFile(file);
    const start = performance.now();
    const out = execFileSync(process.execPath, ["--import", "tsx", path.join(benchDir, "views-open.ts"), format, file, String(k)], { encoding: "utf8" });
    const processMs = performance.now() - start;
    const r = JSON.parse(out) as { importMs: number; openMs: number; check: number };
    const want = checksum(k);
    if (r.check !== want) throw new Error(`${format}: read ${r.check}, expected ${want}`);
    return { importMs: r.importMs, openMs: r.openMs, processMs };
  };
  const openTest = (label: string, format: string, file: string, rows: number, scale = 1): OpenResult => {
    log(`  ${label} …`);
    const runs = format === "memmap" ? MEMMAP_OPEN_RUNS : OPEN_RUNS;
    const warm = Array.from({ length: runs }, () => openChild(format, file, rows, false));
    const cold = Array.from({ length: runs }, () => openChild(format, file, rows, true));
    return {
      format: label,
      bytes: fs.statSync(file).size * scale,
      warmMs: median(warm.map((r) => r.openMs)) * scale,
      coldMs: median(cold.map((r) => r.openMs)) * scale,
      importMs: median(warm.map((r) => r.importMs)),
      processMs: median(warm.map((r) => r.processMs)),
      ...(scale !== 1 ? { scaled: scale } : {}),
    };
  };
  log("open + first random read in a new process …");
  const opens: OpenResult[] = [
    openTest("(a) memmap openRecordFile()", "memmap", open.rec, OPEN_ROWS),
    openTest(`(a) memmap, a ${mib(fs.statSync(files.rec).size)} file`, "memmap", files.rec, ROWS),
    openTest(`(a) memmap, a ${mib(fs.statSync(small).size)} file`, "memmap", small, SMALL_ROWS),
    openTest("(c) FlatBuffers readFileSync + ByteBuffer", "flatbuffers", open.fb, OPEN_ROWS),
    openTest("(d) Arrow readFileSync + tableFromIPC", "arrow", open.arrow, OPEN_ROWS),
    openTest(`(e) JSON lines read + parse (×${jsonScale.toFixed(1)} from ${mib(jsonText.length)})`, "jsonl", files.jsonl, JSON_ROWS, jsonScale),
  ];

  // ------------------------------------------------------------ report
  const dataView = (list: Measured[]): number => list.find((m) => m.reader.startsWith("(b)"))!.ns;
  const perRow = (m: Measured, n: number): string => fmtNs(m.ns / n);
  console.log(`\n## bench:views — ${new Date().toISOString()} — Node ${process.version}, ${os.cpus()[0]?.model ?? "?"} (${os.cpus().length} cores)`);
  printTable(
    `Sequential: sum of one f64 field over ${ROWS.toLocaleString()} rows (best of ${ROUNDS})`,
    ["reader", "time", "per row", "vs (b) DataView"],
    sequential.map((m) => [m.reader, fmtNs(m.ns), perRow(m, ROWS), fmtRatio(m.ns / dataView(sequential))]),
  );
  const memmapRandom = random[0]!.ns;
  printTable(
    `Random: all 5 fields of ${READS.toLocaleString()} random rows (best of ${ROUNDS})`,
    ["reader", "time", "per row", "vs (b) DataView", "(a) get(i) is faster by"],
    random.map((m) => [m.reader, fmtNs(m.ns), perRow(m, READS), fmtRatio(m.ns / dataView(random)), fmtRatio(m.ns / memmapRandom)]),
  );
  const memmapOpen = opens[0]!;
  printTable(
    `Open + first random read in a new process (${OPEN_ROWS.toLocaleString()} rows: ${mib(fs.statSync(open.rec).size)} as a record file; median of ${MEMMAP_OPEN_RUNS} processes for memmap, ${OPEN_RUNS} for the others)`,
    ["format", "file", "page cache warm", "vs memmap", "cold (evicted)", "vs memmap", "library import", "whole process (warm)"],
    opens.map((o) => [
      o.format,
      mib(o.bytes),
      fmtNs(o.warmMs * 1e6),
      fmtRatio(o.warmMs / memmapOpen.warmMs),
      fmtNs(o.coldMs * 1e6),
      fmtRatio(o.coldMs / memmapOpen.coldMs),
      o.format.startsWith("(e)") ? "—" : fmtNs(o.importMs * 1e6),
      fmtNs(o.processMs * 1e6),
    ]),
  );
  const seqRatio = sequential[0]!.ns / dataView(sequential);
  const iterRatio = sequential[1]!.ns / dataView(sequential);
  const smallOpen = opens.find((o) => o.bytes === fs.statSync(small).size)!;
  const randomRatio = memmapRandom / dataView(random);
  const peersRandom = random.filter((m) => /^\((c|d|e)\)/.test(m.reader));
  const targets = {
    "get(i) sequential within 2× of DataView": seqRatio <= 2,
    "get(i) random within 2× of DataView": randomRatio <= 2,
    [`iteration allocates no object per row (collections while iterating ${ROWS.toLocaleString()} rows: ${gcs.iterate}; a get(i) loop: ${gcs.get}; a control loop that keeps each accessor: ${gcs.control})`]:
      gcs.iterate === 0 && gcs.control > 0,
    "faster than (c), (d), (e) on random access": peersRandom.every((m) => m.ns > memmapRandom),
    // Not exactly flat: the first ArrayBuffer over a large mapping makes V8 run a
    // mark-compact (a fixed few ms, see the report), so the bound is "far below linear".
    [`opening does not grow with the file (${mib(memmapOpen.bytes)}: ${memmapOpen.warmMs.toFixed(1)} ms vs ${mib(smallOpen.bytes)}: ${smallOpen.warmMs.toFixed(1)} ms, within 8×; a linear cost would be ${Math.round(memmapOpen.bytes / smallOpen.bytes)}×)`]:
      memmapOpen.warmMs <= 8 * smallOpen.warmMs,
  };
  log("record files past 4 GiB …");
  const large = largeFileSection();
  targets[`get(i) over a 6 GiB file within 1.2× of the single-buffer path (${fmtRatio(large.ratio)})`] = large.ratio <= 1.2;
  log("Arrow files: memmap against tableFromIPC(readFileSync) …");
  const arrowFiles = await arrowSection();
  console.log("\nTargets:");
  for (const [name, ok] of Object.entries(targets)) console.log(`- ${ok ? "PASS" : "FAIL"}: ${name}`);
  console.log(
    `\n(e) JSON lines: the sequential figure is ${JSON_ROWS.toLocaleString()} parsed rows scaled ×${ROWS / JSON_ROWS}; random reads parse one line of a ${JSON_ROWS.toLocaleString()}-line file each (the split into lines is not counted); the open figure parses a ${mib(jsonText.length)} file and is scaled ×${jsonScale.toFixed(1)}.`,
  );
  console.log("(c) and (d) read their whole file into memory first, as their libraries' usual loaders do; (a), (b) and C read the mapped file in place.");
  const saved = saveResults("views", {
    config: { quick, rows: ROWS, reads: READS, jsonRows: JSON_ROWS, openRows: OPEN_ROWS, rounds: ROUNDS, openRuns: OPEN_RUNS },
    sequential,
    random,
    open: opens,
    ratios: { sequentialGetVsDataView: seqRatio, iterationVsDataView: iterRatio, randomGetVsDataView: randomRatio },
    garbageCollectionsPerPass: gcs,
    pastFourGiB: large,
    arrowFiles,
    targets,
  });
  console.log(`\nraw numbers: ${path.relative(process.cwd(), saved)}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
