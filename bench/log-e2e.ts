/**
 * bench:log, end to end: `append` in this process → a reader in another
 * process, for each wait strategy of a reader ("spin", "yield", "futex",
 * "adaptive"), through `for await` and through the blocking `waitNext()`;
 * pinned to CPUs 0 and 1, both on CPU 0 (when taskset and 2 CPUs are
 * there), and unpinned;
 * with the producer busy (spinning) or idle (sleeping) between records.
 * One record every ~200 µs, so a sleeping reader is asleep before each one.
 * C's futex wake (bench/c/futex-wake.c), paced and pinned the same way and
 * measured in the same run, is the limit for a sleeping reader.
 *
 * Also measured: the producer's `append` call with each reader (it includes
 * the futex wake when the reader sleeps: the appender's side of a wake).
 *
 * Only some: npm run bench:log -- --only e2e --readers waitNext:futex,for-await:spin --placements pinned,one-cpu
 * As a child: node log-e2e.ts --e2e-child <dir> <strategy> async|sync
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as os from "node:os";
import { fileURLToPath } from "node:url";
import * as hdr from "hdr-histogram-js";
import { openLog, type WaitStrategy } from "../src/index.ts";
import { buildC, fmtNs, fmtRatio, quick } from "./common.ts";

const here = fileURLToPath(import.meta.url);

export interface Latency {
  min: number;
  median: number;
  p99: number;
  p999: number;
  max: number;
}

export function histogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60e9, numberOfSignificantValueDigits: 3 });
}

export function summarize(h: hdr.Histogram): Latency {
  return { min: h.minNonZeroValue, median: h.getValueAtPercentile(50), p99: h.getValueAtPercentile(99), p999: h.getValueAtPercentile(99.9), max: h.maxValue };
}

/** A latency as p50 / p99 / p99.9 in one cell. */
export const pct = (l: Latency): string => `${fmtNs(l.median)} / ${fmtNs(l.p99)} / ${fmtNs(l.p999)}`;

// ---- the child: reads each record as it comes and reports its latency --------------------------

if (process.argv[2] === "--e2e-child") {
  const [dir, strategy, api] = process.argv.slice(3);
  const log = openLog(dir!);
  const reader = log.reader({ from: "end", strategy: strategy as WaitStrategy });
  const lat: number[] = [];
  /** False at the end marker (a zero timestamp). */
  const record = (data: Uint8Array): boolean => {
    const now = process.hrtime.bigint();
    const sent = new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true);
    if (sent === 0n) return false;
    lat.push(Number(now - sent));
    return true;
  };
  process.stdout.write("ready\n");
  if (api === "sync") {
    while (record(reader.waitNext()!.data));
  } else {
    for await (const rec of reader) if (!record(rec.data)) break;
  }
  log.close();
  process.stdout.write(JSON.stringify(lat) + "\n");
  process.exit(0);
}

// ---- the parent --------------------------------------------------------------------------------

type Api = "for await" | "waitNext";
type Producer = "busy" | "idle";
/** Every reader, or those named by `--readers waitNext:spin,for-await:futex,…`. */
const readersArg = process.argv.indexOf("--readers");
const VARIANTS: { api: Api; strategy: WaitStrategy }[] = (["waitNext", "for await"] as const)
  .flatMap((api) => (["spin", "yield", "futex", "adaptive"] as const).map((strategy) => ({ api, strategy })))
  .filter(({ api, strategy }) => readersArg < 0 || process.argv[readersArg + 1]!.split(",").includes(`${api.replace(" ", "-")}:${strategy}`));

export interface EndToEnd extends Latency {
  api: Api;
  strategy: WaitStrategy;
  producer: Producer;
  placement: Placement;
  samples: number;
  /** The producer's append call (with the futex wake when the reader sleeps). */
  append: Latency;
  /** C's futex wake in the same condition. */
  c: Latency | undefined;
  /** "✓", "✗ (why)", or "—" (no target for this strategy). */
  met: string;
}

const taskset = os.cpus().length >= 2 && spawnSync("taskset", ["-V"], { stdio: "ignore" }).status === 0;
/**
 * Where the two processes run: on CPUs 0 and 1, both on CPU 0, or where the
 * scheduler puts them (which, for a sleeping reader, is often the waker's
 * CPU: a local wake-up, without waking another, halted, virtual CPU).
 */
type Placement = "pinned" | "one-cpu" | "unpinned";
const CPUS: Record<Placement, { self: string; child: string }> = {
  pinned: { self: "0", child: "1" },
  "one-cpu": { self: "0", child: "0" },
  unpinned: { self: `0-${os.cpus().length - 1}`, child: "" },
};
const placementsArg = process.argv.indexOf("--placements");
const PLACEMENTS = (taskset ? (["pinned", "one-cpu", "unpinned"] as const) : (["unpinned"] as const)).filter(
  (p) => placementsArg < 0 || process.argv[placementsArg + 1]!.split(",").includes(p),
);
function pinSelf(cpus: string): void {
  if (taskset) spawnSync("taskset", ["-a", "-pc", cpus, String(process.pid)], { stdio: "ignore" });
}

async function run(dir: string, api: Api, strategy: WaitStrategy, producer: Producer, placement: Placement, samples: number): Promise<Omit<EndToEnd, "c" | "met">> {
  const log = openLog(dir, { create: true });
  const cpus = CPUS[placement];
  pinSelf(cpus.self);
  const node = [process.execPath, "--import", "tsx", here, "--e2e-child", dir, strategy, api === "waitNext" ? "sync" : "async"];
  const [cmd, ...args] = cpus.child !== "" ? ["taskset", "-c", cpus.child, ...node] : node;
  const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.setEncoding("utf8");
  const ready = new Promise<void>((resolve) => {
    child.stdout.on("data", (d: string) => {
      out += d;
      if (out.startsWith("ready\n")) resolve();
    });
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await ready;
  await new Promise((r) => setTimeout(r, 50)); // the child reaches its first wait
  const record = new Uint8Array(64);
  const dv = new DataView(record.buffer);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const append = histogram();
  const skip = Math.min(100, samples >> 4); // warm-up (JIT, the adaptive budget)
  for (let i = 0; i < samples; i++) {
    if (producer === "busy") for (const until = process.hrtime.bigint() + 200_000n; process.hrtime.bigint() < until; );
    else Atomics.wait(pause, 0, 0, 0.2);
    const t = process.hrtime.bigint();
    dv.setBigUint64(0, t, true);
    log.append(record);
    if (i >= skip) append.recordValue(Math.max(1, Number(process.hrtime.bigint() - t)));
    if (i % 500 === 499) await new Promise((r) => setImmediate(r)); // let stdout drain
  }
  dv.setBigUint64(0, 0n, true);
  log.append(record);
  await exited;
  log.close();
  const lat = JSON.parse(out.slice("ready\n".length)) as number[];
  const h = histogram();
  for (const v of lat.slice(skip)) h.recordValue(Math.max(1, v));
  return { ...summarize(h), api, strategy, producer, placement, samples: lat.length, append: summarize(append) };
}

/** The machine's limit for a sleeping reader: C's futex wake of a sleeping process, paced the same way. */
function cFutexWake(producer: Producer, placement: Placement, samples: number): Latency | undefined {
  const bin = buildC("futex-wake");
  if (bin === undefined) return undefined;
  const args = [producer, String(samples), ...(placement === "pinned" ? [] : ["unpinned"])]; // the program pins itself to CPUs 0 and 1
  const [cmd, ...rest] = placement === "one-cpu" ? ["taskset", "-c", "0", bin, ...args] : [bin, ...args];
  const out = execFileSync(cmd!, rest, { encoding: "utf8", maxBuffer: 64 << 20 });
  const h = histogram();
  for (const line of out.trim().split("\n").slice(100)) h.recordValue(Math.max(1, Number(line)));
  return summarize(h);
}

/** Whether a row meets its target: a spinning reader p50 ≤ 2 µs and p99.9 ≤ 25 µs; a sleeping one (futex, adaptive) ≤ 1.3× C and p99 ≤ 10× its p50. */
function verdict(e: Omit<EndToEnd, "met">): string {
  const why: string[] = [];
  if (e.strategy === "spin") {
    if (e.median > 2000) why.push(`p50 ${fmtNs(e.median)} > 2 µs`);
    if (e.p999 > 25_000) why.push(`p99.9 ${fmtNs(e.p999)} > 25 µs`);
  } else if (e.strategy === "futex" || e.strategy === "adaptive") {
    if (e.c === undefined) return "— (no C)";
    if (e.median > 1.3 * e.c.median) why.push(`p50 ${fmtRatio(e.median / e.c.median)} C`);
    if (e.p99 > 10 * e.median) why.push(`p99 ${fmtRatio(e.p99 / e.median)} p50; C's ${fmtRatio(e.c.p99 / e.c.median)}`);
  } else return "—";
  return why.length === 0 ? "✓" : `✗ (${why.join(", ")})`;
}

/** Every variant in every condition: pinned, on one CPU, unpinned; busy producer, then idle. */
export async function endToEndSuite(freshDir: () => string): Promise<EndToEnd[]> {
  const samples = quick ? 2000 : 10_000;
  const rows: EndToEnd[] = [];
  for (const placement of PLACEMENTS) {
    for (const producer of ["busy", "idle"] as const) {
      const c = cFutexWake(producer, placement, samples);
      for (const { api, strategy } of VARIANTS) {
        const e = { ...(await run(freshDir(), api, strategy, producer, placement, samples)), c };
        rows.push({ ...e, met: verdict(e) });
        console.log(`  end-to-end ${placement}, producer ${producer}, ${api} "${strategy}": ${pct(e)} (${rows.at(-1)!.met})`);
      }
    }
  }
  pinSelf(`0-${os.cpus().length - 1}`);
  return rows;
}

/** The table's rows: one per variant and condition, with C's futex wake and the ratio to it. */
export function endToEndRows(rows: EndToEnd[]): string[][] {
  return rows.map((e) => [
    `${PLACEMENT_LABEL[e.placement]}, ${e.producer}`,
    `${e.api} "${e.strategy}"`,
    fmtNs(e.min),
    fmtNs(e.median),
    fmtNs(e.p99),
    fmtNs(e.p999),
    e.c ? pct(e.c) : "—",
    e.c ? fmtRatio(e.median / e.c.median) : "—",
    fmtNs(e.append.median),
    e.met,
  ]);
}

const PLACEMENT_LABEL: Record<Placement, string> = { pinned: "pinned 0/1", "one-cpu": "both on CPU 0", unpinned: "unpinned" };

export const END_TO_END_HEADER = ["condition (producer between records)", "reader", "min", "p50", "p99", "p99.9", "C futex wake p50 / p99 / p99.9", "p50 ÷ C", "append (producer)", "target met"];

// ---- where the time goes: the reader's own costs, in one process --------------------------------

/** Median ns per call of `op` over rounds of `n` calls. */
async function perCall(n: number, op: (n: number) => Promise<void> | void): Promise<number> {
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t = process.hrtime.bigint();
    await op(n);
    rounds.push(Number(process.hrtime.bigint() - t) / n);
  }
  return rounds.sort((a, b) => a - b)[3]!;
}

/**
 * The costs a record pays on its way to a reader besides the wake-up
 * itself, each measured in this process: finding and validating it
 * (`next()`), a `for await` step (async generator, promise), a turn of the
 * event loop (what a spinning `for await` pays per slice), the appender's
 * check for sleepers (nobody sleeping) and a futex wake with nobody on it.
 */
export async function whereTimeGoes(freshDir: () => string): Promise<[string, number][]> {
  const n = quick ? 100_000 : 400_000;
  const log = openLog(freshDir(), { create: true, segmentSize: 64 << 20 });
  const record = new Uint8Array(64);
  for (let i = 0; i < n; i += 1000) log.appendBatch(Array.from({ length: 1000 }, () => record));
  const reader = log.reader();
  const next = await perCall(n, (k) => {
    reader.seek(0);
    for (let i = 0; i < k; i++) reader.next();
  });
  const step = await perCall(n, async (k) => {
    reader.seek(0);
    let i = 0;
    for await (const _ of reader.tail()) if (++i === k) break;
  });
  const turn = await perCall(quick ? 20_000 : 100_000, async (k) => {
    for (let i = 0; i < k; i++) await new Promise((r) => setImmediate(r));
  });
  const append = await perCall(n, (k) => {
    for (let i = 0; i < k; i++) log.append(record);
  });
  const { Doorbell } = await import("../src/core/wait.ts");
  const bell = new Doorbell(new ArrayBuffer(8), 0, 4);
  const ring = await perCall(n, (k) => {
    for (let i = 0; i < k; i++) bell.ring();
  });
  const wake = await perCall(quick ? 20_000 : 100_000, (k) => {
    for (let i = 0; i < k; i++) bell.ringAlways();
  });
  log.close();
  return [
    ["reader.next() of a 64 B record (find, validate, view)", next],
    ["a `for await` step over a waiting record (next() + async generator + promise)", step],
    ["one turn of the event loop (setImmediate): a spinning `for await` pays one per 0.1 ms slice", turn],
    ["log.append(64 B) with nobody waiting (includes the check for sleepers)", append],
    ["Doorbell.ring() with nobody waiting: one atomic load", ring],
    ["a futex wake with nobody on it (the system call a sleeping reader costs the appender, at least)", wake],
  ];
}
