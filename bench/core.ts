/**
 * bench:core — what mapping a file buys over reading it, in one run.
 *
 * On a page-cached file of 1 GiB:
 * 1. making the data available: mapFile() vs fs.readFileSync(), and mapFile()
 *    of 1 GiB vs 1 MiB (the cost must not grow with the size);
 * 2. a sequential scan: the mapping vs fs.readSync in 1 MiB chunks vs the same
 *    loop over an in-heap Buffer;
 * 3. 1,000,000 random 8-byte reads: DataView over the mapping vs fs.readSync
 *    at a position, and a C program reading through mmap (the machine's limit);
 * 4. the close path: 20,000 cycles of mapFile(1 MiB), touch a byte, close(),
 *    with the address space and memory-map entries (VMAs) the process holds
 *    right after the loop and once the event loop has run.
 *
 * Run: npm run bench:core [-- --quick]
 */
import { execFileSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mapFile, type MappedFile } from "../src/index.ts";
import { buildC, fmtNs, fmtRatio, median, min, nowNs, printTable, quick, randomIndexes, saveResults, timeRounds } from "./common.ts";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const size = quick ? 256 * MiB : GiB;
const reads = 1_000_000;
const file = path.join(os.tmpdir(), `memmap-bench-core-${size}.bin`);
const smallFile = path.join(os.tmpdir(), "memmap-bench-core-1MiB.bin");

function prepare(): void {
  if (!fs.existsSync(file) || fs.statSync(file).size !== size) {
    console.log(`writing ${size / MiB} MiB of random data to ${file} …`);
    const chunk = randomFillSync(Buffer.alloc(64 * MiB));
    const fd = fs.openSync(file, "w");
    for (let off = 0; off < size; off += chunk.length) fs.writeSync(fd, chunk, 0, chunk.length, off);
    fs.closeSync(fd);
  }
  fs.writeFileSync(smallFile, randomFillSync(Buffer.alloc(MiB)));
  // Warm the page cache: every figure below is for cached data.
  const m = mapFile(file, { populate: true });
  m.close();
}

/** The same xorshift32 offsets as bench/c/random-read.c: of 8-byte words, in bytes. */
function randomOffsets(bytes: number, count: number): Uint32Array {
  const out = randomIndexes(count, Math.floor(bytes / 8));
  for (let i = 0; i < count; i++) out[i] = out[i]! * 8;
  return out;
}

function sumInt32(a: Int32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s = (s + a[i]!) | 0;
  return s;
}

/** Address space (VmSize) in bytes and memory-map entries of this process. */
function addressSpace(): { vmBytes: number; vmas: number } {
  const status = fs.readFileSync("/proc/self/status", "utf8");
  const kb = Number(/VmSize:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  const vmas = fs.readFileSync("/proc/self/maps", "utf8").split("\n").length - 1;
  return { vmBytes: kb * 1024, vmas };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** 4. 20,000 map/close cycles of 1 MiB; optionally a full GC every 1,000 cycles. */
async function closeCycles(withGc: boolean): Promise<{ ns: number; grownBytes: number; grownVmas: number; afterTurnBytes: number; afterTurnVmas: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const cycles = 20_000;
  await turn();
  const before = addressSpace();
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < cycles; i++) {
    const m = mapFile(smallFile);
    sink += m.bytes[i & 1023]!; // hands out the ArrayBuffer, as real use does
    m.close();
    if (withGc && gc && i % 1000 === 999) gc();
  }
  const ns = Number(process.hrtime.bigint() - start);
  const after = addressSpace();
  for (let i = 0; i < 3; i++) await turn();
  const settled = addressSpace();
  if (sink === -1) console.log("");
  return {
    ns,
    grownBytes: after.vmBytes - before.vmBytes,
    grownVmas: after.vmas - before.vmas,
    afterTurnBytes: settled.vmBytes - before.vmBytes,
    afterTurnVmas: settled.vmas - before.vmas,
  };
}

async function main(): Promise<void> {
  prepare();
  const results: Record<string, number> = {};

  // 1. Making the data available.
  const kept: MappedFile[] = [];
  const mapTimes = timeRounds(quick ? 20 : 50, () => {
    const m = mapFile(file);
    void m.buffer; // the ArrayBuffer is created lazily: include it
    kept.push(m); // earlier mappings stay referenced
  });
  const smallMapTimes = timeRounds(quick ? 20 : 50, () => {
    const m = mapFile(smallFile);
    void m.buffer;
    kept.push(m);
  });
  for (const m of kept) m.close();
  const readFileTimes = timeRounds(quick ? 2 : 3, () => {
    fs.readFileSync(file);
  });
  results.mapMedianNs = median(mapTimes);
  results.mapMaxNs = Math.max(...mapTimes);
  results.mapSmallMedianNs = median(smallMapTimes);
  results.readFileSyncNs = median(readFileTimes);

  // 2. Sequential scan.
  const m = mapFile(file, { advice: "sequential" });
  const mapped = m.view(Int32Array);
  const heap = fs.readFileSync(file);
  const heapInts = new Int32Array(heap.buffer, heap.byteOffset, heap.byteLength / 4);
  let sink = 0;
  const scanMapped = min(timeRounds(3, () => (sink ^= sumInt32(mapped))));
  const scanHeap = min(timeRounds(3, () => (sink ^= sumInt32(heapInts))));
  const chunk = Buffer.alloc(MiB);
  const chunkInts = new Int32Array(chunk.buffer, chunk.byteOffset, MiB / 4);
  const fd = fs.openSync(file, "r");
  const scanReadSync = min(
    timeRounds(3, () => {
      for (let off = 0; off < size; off += MiB) {
        fs.readSync(fd, chunk, 0, MiB, off);
        sink ^= sumInt32(chunkInts);
      }
    }),
  );
  results.scanMappedNs = scanMapped;
  results.scanHeapNs = scanHeap;
  results.scanReadSyncNs = scanReadSync;

  // 3. Random 8-byte reads.
  // The offsets are drawn before timing (as in C). Each timed loop sums into a local: a sum kept in a
  // variable the closure captures (as this loop did before) is a boxed double, a heap allocation per read.
  const offsets = randomOffsets(size, reads);
  const dv = new DataView(m.buffer);
  const f64 = new Float64Array(m.buffer);
  let acc = 0;
  const randomMapped = min(
    timeRounds(5, () => {
      let sum = 0;
      for (let i = 0; i < reads; i++) sum += dv.getFloat64(offsets[i]!, true);
      acc += sum;
    }),
  );
  const randomTyped = min(
    timeRounds(5, () => {
      let sum = 0;
      for (let i = 0; i < reads; i++) sum += f64[offsets[i]! >>> 3]!;
      acc += sum;
    }),
  );
  const offsetsOnly = min(
    timeRounds(5, () => {
      let sum = 0;
      for (let i = 0; i < reads; i++) sum += offsets[i]!;
      acc += sum;
    }),
  );
  const boxed = min(
    timeRounds(3, () => {
      for (let i = 0; i < reads; i++) acc += dv.getFloat64(offsets[i]!, true);
    }),
  );
  const drawStart = nowNs();
  acc += randomOffsets(size, reads)[0]!;
  const drawNs = nowNs() - drawStart;
  const eight = Buffer.alloc(8);
  const preadCount = quick ? 100_000 : reads;
  const randomReadSync = min(
    timeRounds(2, () => {
      for (let i = 0; i < preadCount; i++) {
        fs.readSync(fd, eight, 0, 8, offsets[i]!);
        acc += eight.readDoubleLE(0);
      }
    }),
  ) * (reads / preadCount);
  fs.closeSync(fd);
  m.close();
  results.randomMappedNs = randomMapped / reads;
  results.randomTypedNs = randomTyped / reads;
  results.randomOffsetsOnlyNs = offsetsOnly / reads;
  results.randomBoxedSumNs = boxed / reads;
  results.randomDrawNs = drawNs / reads;
  results.randomReadSyncNs = randomReadSync / reads;

  const bin = buildC("random-read");
  let c: { mmapNs: number; randomReadNs: number; scanGBps: number } | undefined;
  if (bin) c = JSON.parse(execFileSync(bin, [file, String(reads)], { encoding: "utf8" }));
  if (c) {
    results.cRandomReadNs = c.randomReadNs;
    results.cMmapNs = c.mmapNs;
    results.cScanGBps = c.scanGBps;
  }
  if (sink === 0.5 || acc === 0.5) console.log(""); // keep the loops' results alive

  // 4. The close path.
  const cyclesNoGc = await closeCycles(false);
  const cyclesGc = await closeCycles(true);
  results.cycles20kNs = cyclesNoGc.ns;
  results.cycles20kGcNs = cyclesGc.ns;
  results.cyclesGrownBytes = cyclesNoGc.grownBytes;
  results.cyclesGrownVmas = cyclesNoGc.grownVmas;
  results.cyclesSettledBytes = cyclesNoGc.afterTurnBytes;
  results.cyclesSettledVmas = cyclesNoGc.afterTurnVmas;

  const sizeLabel = `${size / MiB} MiB`;
  printTable(
    `Making ${sizeLabel} available (page-cached)`,
    ["operation", "median", "vs memmap"],
    [
      [`mapFile() of ${sizeLabel} (+ its ArrayBuffer), 50 kept alive`, fmtNs(results.mapMedianNs), "1×"],
      ["mapFile() of 1 MiB", fmtNs(results.mapSmallMedianNs), fmtRatio(results.mapMedianNs / results.mapSmallMedianNs) + " faster (size-independent if ≈1×)"],
      ...(c ? [[`C mmap() of ${sizeLabel}`, fmtNs(c.mmapNs), fmtRatio(results.mapMedianNs / c.mmapNs) + " faster"]] : []),
      ["fs.readFileSync()", fmtNs(results.readFileSyncNs), fmtRatio(results.readFileSyncNs / results.mapMedianNs) + " slower"],
    ],
  );
  console.log(`(mapFile max of ${mapTimes.length}: ${fmtNs(results.mapMaxNs)})`);
  const gbps = (ns: number): string => `${(size / ns).toFixed(2)} GB/s`;
  printTable(
    `Sequential scan of ${sizeLabel} (sum of int32 words)`,
    ["reader", "time", "throughput", "vs memmap"],
    [
      ["memmap: Int32Array over the mapping", fmtNs(scanMapped), gbps(scanMapped), "1×"],
      ["same loop over an in-heap Buffer", fmtNs(scanHeap), gbps(scanHeap), fmtRatio(scanMapped / scanHeap) + " of its time"],
      ["fs.readSync, 1 MiB chunks", fmtNs(scanReadSync), gbps(scanReadSync), fmtRatio(scanReadSync / scanMapped) + " slower"],
      ...(c ? [["C, 8-byte words through mmap", "", `${c.scanGBps.toFixed(2)} GB/s`, ""]] : []),
    ],
  );
  printTable(
    `${reads.toLocaleString("en")} random 8-byte reads`,
    ["reader", "per read", "vs memmap"],
    [
      ["memmap: DataView over the mapping", fmtNs(results.randomMappedNs), "1×"],
      ["memmap: Float64Array over the mapping, [offset >>> 3]", fmtNs(results.randomTypedNs), fmtRatio(results.randomTypedNs / results.randomMappedNs) + " of its time"],
      ["fs.readSync at a position", fmtNs(results.randomReadSyncNs), fmtRatio(results.randomReadSyncNs / results.randomMappedNs) + " slower"],
      ...(c ? [["C through mmap (machine limit)", fmtNs(c.randomReadNs), fmtRatio(results.randomMappedNs / c.randomReadNs) + " of C's time"]] : []),
      // Where the time goes: the offsets are drawn before timing; the loop alone; the old loop's boxed sum.
      ["(not timed) drawing an offset, xorshift32", fmtNs(results.randomDrawNs), ""],
      ["(part of the first row) the loop over the offsets, no data access", fmtNs(results.randomOffsetsOnlyNs), ""],
      ["(the old loop) DataView, the sum in a captured variable: a boxed double per read", fmtNs(results.randomBoxedSumNs), ""],
    ],
  );
  const mib = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;
  printTable(
    "20,000 cycles of mapFile(1 MiB) + touch + close()",
    ["variant", "total", "per cycle", "address space / VMAs grown after the loop", "after the event loop ran"],
    [cyclesNoGc, cyclesGc].map((r, i) => [
      i === 0 ? "no GC" : "gc() every 1,000",
      fmtNs(r.ns),
      fmtNs(r.ns / 20_000),
      `${mib(r.grownBytes)} / ${r.grownVmas}`,
      `${mib(r.afterTurnBytes)} / ${r.afterTurnVmas}`,
    ]),
  );
  const targets = {
    "mapFile(1 GiB) median < 1 ms": results.mapMedianNs < 1e6,
    "random reads ≥ 30× faster than fs.readSync": results.randomReadSyncNs / results.randomMappedNs >= 30,
    "random reads within 3× of C": c ? results.randomMappedNs / c.randomReadNs <= 3 : "no C compiler",
    "scan within 1.2× of an in-heap Buffer": scanMapped / scanHeap <= 1.2,
  };
  console.log("\ntargets:", targets);
  console.log(`raw numbers: ${saveResults("core", { size, reads, results, targets })}`);
}

await main();
