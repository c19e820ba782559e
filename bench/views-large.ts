/**
 * Record files past 4 GiB: `rows.get(i).price` over a 6 GiB file (rows in
 * 1 GiB windows) against the same loop over a 2 GiB file (one ArrayBuffer)
 * and hand-written DataView code over that 2 GiB mapping, in one run.
 *
 * Both files are sparse. The reads go to the same number of distinct pages,
 * spread over each whole file, and every page is touched once before timing,
 * so the figures compare the index arithmetic, not page faults.
 *
 * usage: node --import tsx bench/views-large.ts [--quick]  (also run by bench:views)
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mapFile, openRecordFile, struct } from "../src/index.ts";
import { sparseRecordFile } from "../test/helpers/sparse-record-file.ts";
import { fmtNs, fmtRatio, min, printTable, quick, saveResults, timeRounds } from "./common.ts";

const Trade = struct({ id: "u32", side: "u8", qty: "u32", price: "f64", ts: "i64" }); // 32 bytes, as in bench:views
const GiB = 2 ** 30;
const PAGES = quick ? 4096 : 16384; // distinct pages read in each file
const READS = quick ? 500_000 : 2_000_000;
const ROUNDS = quick ? 5 : 9;

/** A sparse record file of about `bytes` whose count says every row is there; returns the rows. */
function sparseFile(file: string, bytes: number): number {
  const rows = Math.floor((bytes - 4096) / Trade.byteLength);
  sparseRecordFile(file, Trade, rows, rows);
  return rows;
}

/** READS row indexes drawn from PAGES pages spread evenly over `rows` rows (xorshift, fixed seed). */
function indexes(rows: number): Float64Array {
  const rowsPerPage = 4096 / Trade.byteLength;
  const step = Math.floor(rows / rowsPerPage / PAGES) * rowsPerPage;
  const out = new Float64Array(READS);
  let x = 2463534242;
  for (let k = 0; k < READS; k++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[k] = (x % PAGES) * step + (x >>> 20) % rowsPerPage;
  }
  return out;
}

export function largeFileSection(): { ratio: number; figures: Record<string, number> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-bench-large-"));
  try {
    const smallFile = path.join(dir, "2g.rec");
    const bigFile = path.join(dir, "6g.rec");
    const smallRows = sparseFile(smallFile, 2 * GiB);
    const bigRows = sparseFile(bigFile, 6 * GiB);
    using small = openRecordFile(smallFile, Trade);
    using big = openRecordFile(bigFile, Trade);
    using mapping = mapFile(smallFile);
    const dv = new DataView(mapping.buffer);
    const base = small.headerLength;
    const smallIndex = indexes(smallRows);
    const bigIndex = indexes(bigRows);
    const priceAt = Trade.offsets.price;

    const loops = {
      "memmap rows.get(i).price, 6 GiB file (1 GiB windows)": () => {
        const rows = big.rows;
        let s = 0;
        for (let k = 0; k < READS; k++) s += rows.get(bigIndex[k]!).price;
        return s;
      },
      "memmap rows.get(i).price, 2 GiB file (one ArrayBuffer)": () => {
        const rows = small.rows;
        let s = 0;
        for (let k = 0; k < READS; k++) s += rows.get(smallIndex[k]!).price;
        return s;
      },
      "DataView, hand-written, 2 GiB file": () => {
        let s = 0;
        for (let k = 0; k < READS; k++) s += dv.getFloat64(base + smallIndex[k]! * 32 + priceAt, true);
        return s;
      },
    };
    const figures: Record<string, number> = {};
    for (const [name, fn] of Object.entries(loops)) {
      fn(); // touch every page once, and JIT
      figures[name] = min(timeRounds(ROUNDS, fn)) / READS;
    }
    const [windowed, single, dataView] = Object.values(figures) as [number, number, number];
    const ratio = windowed / single;
    printTable(
      `Random get(i).price past 4 GiB (${READS.toLocaleString()} reads over ${PAGES.toLocaleString()} warm pages, best of ${ROUNDS})`,
      ["reader", "per read", "vs 2 GiB get(i)"],
      Object.entries(figures).map(([name, ns]) => [name, fmtNs(ns), fmtRatio(ns / single)]),
    );
    console.log(`- ${ratio <= 1.2 ? "PASS" : "FAIL"}: get(i) over 6 GiB within 1.2× of the single-buffer path (${fmtRatio(ratio)}; DataView ${fmtRatio(dataView / single)})`);
    return { ratio, figures };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = largeFileSection();
  console.log(`raw numbers: ${path.relative(process.cwd(), saveResults("views-large", { config: { quick, pages: PAGES, reads: READS, rounds: ROUNDS }, ...result }))}`);
}
