/** Helpers shared by the benchmarks: timing, tables, results files, the C reference build. */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const benchDir = path.dirname(fileURLToPath(import.meta.url));
export const quick = process.argv.includes("--quick") || process.env.MEMMAP_BENCH_QUICK === "1";

export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** Runs fn `rounds` times and returns each duration in nanoseconds. */
export function timeRounds(rounds: number, fn: () => void): number[] {
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = nowNs();
    fn();
    out.push(nowNs() - t);
  }
  return out;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function min(values: number[]): number {
  return Math.min(...values);
}

/**
 * `count` indexes in [0, n): the xorshift32 sequence from seed 2463534242,
 * the same as bench/c/random-read.c and bench/c/views-scan.c draw.
 */
export function randomIndexes(count: number, n: number): Uint32Array {
  const out = new Uint32Array(count);
  let x = 2463534242;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x % n;
  }
  return out;
}

/** Formats nanoseconds with a unit that keeps 3 significant digits. */
export function fmtNs(ns: number): string {
  if (ns < 1e3) return `${ns.toPrecision(3)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toPrecision(3)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toPrecision(3)} ms`;
  return `${(ns / 1e9).toPrecision(3)} s`;
}

export function fmtRatio(r: number): string {
  return r >= 10 ? `${r.toFixed(0)}×` : `${r.toFixed(2)}×`;
}

/** Prints a Markdown table (it pastes into the README as is). */
export function printTable(title: string, header: string[], rows: string[][]): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${header.join(" | ")} |`);
  console.log(`| ${header.map(() => "---").join(" | ")} |`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

export function machineInfo(): Record<string, unknown> {
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
  };
}

export function saveResults(name: string, data: unknown): string {
  const dir = path.join(benchDir, "results");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ machine: machineInfo(), ...(data as object) }, null, 2));
  return file;
}

/** Compiles bench/c/<name>.c (once per source change) and returns the binary's path, or undefined without a compiler. */
export function buildC(name: string, extraFlags: string[] = []): string | undefined {
  const src = path.join(benchDir, "c", `${name}.c`);
  const outDir = path.join(os.tmpdir(), "memmap-bench-bin");
  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, name);
  // The shared header counts as a source of every program (a change rebuilds them all).
  const header = path.join(benchDir, "c", "bench-common.h");
  try {
    const changed = Math.max(fs.statSync(src).mtimeMs, fs.statSync(header).mtimeMs);
    if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < changed)
      execFileSync("cc", ["-O2", "-o", out, src, ...extraFlags], { stdio: "inherit" });
    return out;
  } catch {
    console.warn(`(no C compiler: skipping the C reference ${name})`);
    return undefined;
  }
}
