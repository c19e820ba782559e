/**
 * Arrow IPC files: open a file and sum a float64 column, each way in a fresh
 * process, with its time and peak RSS:
 * - memmap `openArrowFile` on a 6 GiB file and on a 1.9 GiB one;
 * - apache-arrow's usual loader, `tableFromIPC(readFileSync(f))`, on the 1.9 GiB
 *   one (readFileSync stops at 2 GiB, so that is the largest it can read).
 * The files hold real (non-zero) data, written once and then cached.
 *
 * usage: node --import tsx bench/arrow.ts [--quick]  (also run by bench:views)
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { RecordBatch, RecordBatchFileWriter, Float64, makeData } from "apache-arrow";
import { fmtRatio, printTable, quick, saveResults } from "./common.ts";
// Peak RSS counts the page cache pages a mapping touched (shared, reclaimable), so memmap's RSS
// approaches the file's size after a full scan; anonymous memory is what the process itself holds.

const GiB = 2 ** 30;
const BATCH_ROWS = 8 * 2 ** 20; // 64 MiB of f64 per record batch

async function writeArrow(file: string, bytes: number): Promise<void> {
  const values = Float64Array.from({ length: BATCH_ROWS }, (_, i) => (i % 1000) / 8);
  const batch = new RecordBatch({ x: makeData({ type: new Float64(), length: BATCH_ROWS, data: values }) });
  const writer = new RecordBatchFileWriter();
  writer.reset(undefined, batch.schema);
  const fd = fs.openSync(file, "w");
  const count = Math.max(1, Math.floor(bytes / (BATCH_ROWS * 8)));
  let position = 0;
  const drain = async () => {
    for await (const chunk of writer) {
      fs.writeSync(fd, chunk, 0, chunk.byteLength, position);
      position += chunk.byteLength;
    }
  };
  const done = drain();
  for (let i = 0; i < count; i++) writer.write(batch);
  writer.finish();
  await done;
  fs.closeSync(fd);
}

const child = (loader: "memmap" | "readFileSync") => `
  import fs from "node:fs";
  import { tableFromIPC } from "apache-arrow";
  import { openArrowFile } from ${JSON.stringify(path.resolve(import.meta.dirname, "../src/index.ts"))};
  const anonymous = () => Number(/Anonymous:\\s+(\\d+) kB/.exec(fs.readFileSync("/proc/self/smaps_rollup", "utf8"))[1]) * 1024;
  ${loader === "memmap" ? "openArrowFile(process.argv[2]); // loads apache-arrow into memmap once, as any program's first call does" : ""}
  const before = anonymous();
  const t0 = performance.now();
  const t = ${loader === "memmap" ? "openArrowFile(process.argv[1])" : "tableFromIPC(fs.readFileSync(process.argv[1]))"};
  const opened = performance.now() - t0;
  let sum = 0;
  for (const data of t.getChild("x").data) { const v = data.values; for (let i = 0; i < v.length; i++) sum += v[i]; }
  console.log(JSON.stringify({ openMs: opened, totalMs: performance.now() - t0, sum, anonymousBytes: anonymous() - before, peakRssBytes: process.resourceUsage().maxRSS * 1024 }));
`;

interface Run { openMs: number; totalMs: number; sum: number; anonymousBytes: number; peakRssBytes: number }

function run(loader: "memmap" | "readFileSync", file: string, warmUp: string): Run {
  return JSON.parse(execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", child(loader), file, warmUp], { encoding: "utf8", maxBuffer: 1 << 20 })) as Run;
}

export async function arrowSection(): Promise<Record<string, Run & { fileBytes: number }>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-bench-arrow-"));
  try {
    const big = path.join(dir, "big.arrow");
    const small = path.join(dir, "small.arrow");
    await writeArrow(big, quick ? 2.5 * GiB : 6 * GiB);
    await writeArrow(small, 1.9 * GiB);
    const tiny = path.join(dir, "tiny.arrow");
    await writeArrow(tiny, 0);
    const results: Record<string, Run & { fileBytes: number }> = {};
    for (const [name, loader, file] of [
      ["memmap openArrowFile, large file", "memmap", big],
      ["memmap openArrowFile, 1.9 GiB file", "memmap", small],
      ["tableFromIPC(readFileSync), 1.9 GiB file", "readFileSync", small],
    ] as const) {
      run(loader, file, tiny); // the first run reads the file into the page cache
      results[name] = { ...run(loader, file, tiny), fileBytes: fs.statSync(file).size };
    }
    printTable(
      "Arrow IPC: open and sum a float64 column (fresh process each, page cache warm)",
      ["loader", "file", "open", "open + sum", "GiB/s", "heap/anonymous memory added", "peak RSS (page cache included)"],
      Object.entries(results).map(([name, r]) => [
        name,
        `${(r.fileBytes / GiB).toFixed(2)} GiB`,
        `${r.openMs.toFixed(1)} ms`,
        `${r.totalMs.toFixed(0)} ms`,
        (r.fileBytes / GiB / (r.totalMs / 1000)).toFixed(2),
        `${(r.anonymousBytes / 2 ** 20).toFixed(0)} MiB (${fmtRatio(r.anonymousBytes / r.fileBytes)} of the file)`,
        `${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
      ]),
    );
    return results;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await arrowSection();
  console.log(`raw numbers: ${path.relative(process.cwd(), saveResults("arrow", { config: { quick }, results }))}`);
}
