/**
 * The memmap tour: `npm start`. In well under a minute it shows the four
 * things memory-mapped files are good for, with real processes and real
 * figures, then the log mirrored through NATS JetStream (when nats-server
 * is installed), and removes everything it made.
 *
 * Child processes run examples/tour/child.ts with the
 * same Node options as this process, so the TypeScript loader carries over.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { createChannel, createRecordFile, createSharedMemory, inspectLog, openChannel, openLog, openRecordFile, struct } from "../../src/index.ts";
import { PING_ROUNDS, type PingRound } from "./protocol.ts";
import { mappingMemory, processMemory } from "./proc.ts";
import { partBridge } from "./bridge.ts";

const here = fileURLToPath(import.meta.url);
const childScript = path.join(path.dirname(here), `child${path.extname(here)}`);

const MiB = 1024 * 1024;
const children = new Set<ChildProcess>();
let tempDir: string | undefined;

// ---------------------------------------------------------------- output

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string): string => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

function say(text = ""): void {
  process.stdout.write(`${text}\n`);
}

function heading(n: number, title: string): void {
  say();
  say(bold(`${n}/5  ${title}`));
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

function nsText(ns: number): string {
  if (ns < 1000) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1000).toFixed(1)} µs`;
  return `${(ns / 1e6).toFixed(2)} ms`;
}

function columns(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("   "));
}

// ---------------------------------------------------------------- children

type Message = Record<string, unknown>;

interface Child {
  process: ChildProcess;
  /** The first message (already received or still to come) that `match` accepts; earlier ones are dropped. */
  waitFor(match: (m: Message) => boolean, timeoutMs?: number): Promise<Message>;
  send(message: Message): void;
  exited: Promise<number | null>;
}

/** Any wait on a child longer than this means something is broken: fail rather than hang. */
const CHILD_TIMEOUT_MS = 20_000;

function startChild(role: string, args: string[], stdio: ("ignore" | "inherit" | "ipc" | number)[] = ["ignore", "inherit", "inherit", "ipc"]): Child {
  const child = spawn(process.execPath, [...process.execArgv, childScript, role, ...args], { stdio });
  children.add(child);
  const queue: Message[] = [];
  let waiter: { match: (m: Message) => boolean; resolve: (m: Message) => void; reject: (e: Error) => void } | undefined;
  let failure: Error | undefined;
  const fail = (error: Error): void => {
    failure ??= error;
    waiter?.reject(failure);
    waiter = undefined;
  };
  const exited = new Promise<number | null>((resolve) => {
    // "close", not "exit": it comes after the last IPC message has been delivered.
    child.on("close", (code, signal) => {
      children.delete(child);
      resolve(code);
      fail(new Error(`the ${role} process exited (${signal ?? `code ${String(code)}`})`));
    });
  });
  child.on("message", (m: Message) => {
    if (typeof m.error === "string") return fail(new Error(`the ${role} process failed: ${m.error}`));
    if (waiter?.match(m)) {
      waiter.resolve(m);
      waiter = undefined;
    } else queue.push(m);
  });
  return {
    process: child,
    waitFor: (match, timeoutMs = CHILD_TIMEOUT_MS) => {
      while (queue.length > 0) {
        const m = queue.shift()!;
        if (match(m)) return Promise.resolve(m);
      }
      if (failure) return Promise.reject(failure);
      return new Promise<Message>((resolve, reject) => {
        const timer = setTimeout(() => fail(new Error(`the ${role} process did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
        waiter = {
          match,
          resolve: (m) => (clearTimeout(timer), resolve(m)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        };
      });
    },
    send: (message) => child.send(message),
    exited,
  };
}

// ---------------------------------------------------------------- 1. sharing

async function partSharing(dir: string): Promise<void> {
  heading(1, "One copy in memory, shared by many processes");
  const size = 64 * MiB;
  const processes = 4;
  const file = path.join(dir, "shared.bin");
  fs.writeFileSync(file, Buffer.alloc(size, 0x5a));
  say(`     A ${mib(size)} file is mapped read-only by ${processes} processes; each one reads every page.`);

  const kids = Array.from({ length: processes }, () => startChild("share", [file]));
  await Promise.all(kids.map((k) => k.waitFor((m) => m.ready === true)));
  const rows = [["", "file pages in RAM (Rss)", "its share (Pss)", "whole process Pss"]];
  let pssSum = 0;
  for (const k of kids) {
    const pid = k.process.pid!;
    const m = mappingMemory(pid, file);
    const whole = processMemory(pid);
    pssSum += m.pss;
    rows.push([`     process ${pid}`, mib(m.rss), mib(m.pss), mib(whole.pss)]);
  }
  for (const line of columns(rows)) say(line);
  for (const k of kids) k.send({ done: true });
  await Promise.all(kids.map((k) => k.exited));
  say(
    `     Each process has all ${mib(size)} in its address space, yet the shares add up to ${mib(pssSum)}:`,
  );
  say(`     the kernel keeps one copy in its page cache and maps it into all ${processes}.`);
  say(dim(`     (Reading the file into a Buffer in each process would take ${processes} × ${mib(size)} = ${mib(processes * size)}.`));
  say(dim(`      Figures from /proc/<pid>/smaps and smaps_rollup.)`));
  fs.rmSync(file);
}

// ---------------------------------------------------------------- 2. records

async function partRecords(dir: string): Promise<void> {
  heading(2, "A file of records is an array you index");
  const count = 1_000_000;
  const file = path.join(dir, "orders.rec");
  const Order = struct({ id: "u32", quantity: "u32", price: "f64" });
  {
    using out = createRecordFile(file, Order, { capacity: count });
    out.appendMany(
      (function* () {
        for (let i = 0; i < count; i++) yield { id: i, quantity: 1 + (i % 100), price: Math.round(((i * 7919) % 100_000) + 99) / 100 };
      })(),
    );
  }
  say(`     A record file of ${count.toLocaleString("en-US")} orders (${mib(fs.statSync(file).size)}), each one`);
  say(`     ${Order.toString()}.`);

  // Opening maps the file: nothing is read or parsed up front; pages load as rows are touched.
  using orders = openRecordFile(file, Order);
  const rows = orders.rows;
  say(`     Order #654,321, read from the mapped page: ${JSON.stringify(rows.get(654_321).toJSON())}`);

  // Random lookups: the same indices for both ways of reading.
  const lookups = 100_000;
  const indices = new Uint32Array(lookups);
  let seed = 12345;
  for (let i = 0; i < lookups; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    indices[i] = seed % count;
  }
  let total = 0;
  for (let i = 0; i < 10_000; i++) total += rows.get(indices[i]!).price; // warm up the JIT
  total = 0;
  let t = process.hrtime.bigint();
  for (let i = 0; i < lookups; i++) total += rows.get(indices[i]!).price;
  const mappedNs = Number(process.hrtime.bigint() - t) / lookups;

  const fd = fs.openSync(file, "r");
  const buf = Buffer.alloc(Order.byteLength);
  const priceAt = Order.offsetOf("price");
  let totalRead = 0;
  t = process.hrtime.bigint();
  for (let i = 0; i < lookups; i++) {
    fs.readSync(fd, buf, 0, buf.length, orders.headerLength + indices[i]! * Order.byteLength);
    totalRead += buf.readDoubleLE(priceAt);
  }
  const readNs = Number(process.hrtime.bigint() - t) / lookups;
  fs.closeSync(fd);
  if (Math.abs(total - totalRead) > 1e-6 * Math.abs(total)) throw new Error("the two ways of reading disagree");

  for (const line of columns([
    ["", "per random lookup"],
    ["     rows.get(i).price on the mapping", nsText(mappedNs)],
    [`     fs.readSync of ${Order.byteLength} bytes + decode`, nsText(readNs)],
  ]))
    say(line);
  const speedup = readNs / mappedNs;
  if (speedup >= 1.5)
    say(`     ${lookups.toLocaleString("en-US")} random lookups: the mapping is ${speedup.toFixed(0)}× faster — no system call, no copy, no parsing.`);
  else say(`     ${lookups.toLocaleString("en-US")} random lookups: on this machine right now the two were about as fast (${speedup.toFixed(1)}×).`);
  orders.close();
  fs.rmSync(file);
}

// ---------------------------------------------------------------- 3. channel

/** Median and 99th percentile of samples, in nanoseconds. */
function percentiles(samples: Float64Array): { median: number; p99: number } {
  const sorted = samples.slice().sort();
  return { median: sorted[Math.floor(sorted.length / 2)]!, p99: sorted[Math.floor(sorted.length * 0.99)]! };
}

async function partChannel(): Promise<void> {
  heading(3, "Fast IPC: a ping-pong between two processes");
  const trips = 9_000;
  const passes = 3;
  say(`     Two processes bounce a 16-byte message back and forth ${trips.toLocaleString("en-US")} times over a channel in shared`);
  say(`     memory, and as often over Node's own process.send: ${passes} passes, taking turns, so that a busy`);
  say(`     machine slows every row alike.`);

  // Two rings in anonymous shared memory (memfds), handed to the child as its fds 4 and 5.
  using requestMemory = createSharedMemory(0);
  using replyMemory = createSharedMemory(0);
  createChannel(requestMemory, { capacity: 64 * 1024 }).close();
  createChannel(replyMemory, { capacity: 64 * 1024 }).close();
  const child = startChild("pong", [], ["ignore", "inherit", "inherit", "ipc", requestMemory.fd, replyMemory.fd]);

  const ping = new Uint8Array(16);
  const perPass = trips / passes;
  const warmup = 300; // each round's first trips also wait for the child to switch
  const samples = new Map<PingRound, Float64Array>(PING_ROUNDS.map((r) => [r, new Float64Array(trips)]));
  for (let pass = 0; pass < passes; pass++) {
    for (const round of PING_ROUNDS) {
      const out = samples.get(round)!;
      child.send({ round });
      await child.waitFor((m) => m.ready === true);
      if (round === "send") {
        for (let i = -warmup; i < perPass; i++) {
          const t = process.hrtime.bigint();
          child.send({ ping: i });
          await child.waitFor((m) => m.ping === i);
          if (i >= 0) out[pass * perPass + i] = Number(process.hrtime.bigint() - t);
        }
        child.send({ end: true });
        continue;
      }
      // The same calls a user makes: openChannel(target) with the default options, or with { strategy }.
      using requests = openChannel(requestMemory, round === "default" ? {} : { strategy: round });
      using replies = openChannel(replyMemory, round === "default" ? {} : { strategy: round });
      for (let i = -warmup; i < perPass; i++) {
        const t = process.hrtime.bigint();
        ping[0] = i & 0xff;
        requests.send(ping);
        const pong = replies.receive({ timeoutMs: CHILD_TIMEOUT_MS });
        if (pong[0] !== (i & 0xff)) throw new Error("the channel returned the wrong message");
        if (i >= 0) out[pass * perPass + i] = Number(process.hrtime.bigint() - t);
      }
      requests.send("next");
    }
  }
  child.send({ exit: true });
  await child.exited;

  const label: Record<PingRound, string> = {
    default: "channel, default options",
    futex: 'channel, strategy "futex"',
    yield: 'channel, strategy "yield"',
    spin: 'channel, strategy "spin"',
    adaptive: 'channel, strategy "adaptive" (the default)',
    send: "process.send (pipe + JSON)",
  };
  const rows = [["", "round trip: median", "99th percentile"]];
  const medians = new Map<PingRound, number>();
  for (const round of PING_ROUNDS) {
    const p = percentiles(samples.get(round)!);
    medians.set(round, p.median);
    rows.push([`     ${label[round]}`, nsText(p.median), nsText(p.p99)]);
  }
  for (const line of columns(rows)) say(line);
  const ratio = medians.get("send")! / medians.get("default")!;
  const times = (x: number): string => (x >= 10 ? x.toFixed(0) : x.toFixed(1));
  if (ratio >= 1) say(`     With the default options, process.send takes ${times(ratio)}× as long as the channel.`);
  else say(`     On this machine right now, process.send was ${times(1 / ratio)}× faster than the channel with default options.`);
  say(`     Wait strategies: the default, "adaptive", polls only while polling has been paying off (not at all`);
  say(`     when both share one CPU), then sleeps in the kernel until the sender wakes it (no CPU used while`);
  say(`     idle); "futex" always polls a few µs first; "yield" keeps polling and gives the CPU away in between`);
  say(`     (lower latency, a CPU kept busy); "spin" polls without pause (lowest latency, a whole core).`);
  say(dim(`     (A message is written once into memory both processes map: no system call unless the other side`));
  say(dim(`      sleeps. Busy machines stretch every figure here: both processes need a CPU for each trip.)`));
}

// ---------------------------------------------------------------- 4. log

async function partLog(dir: string): Promise<void> {
  heading(4, "Persistent IPC: a log that survives a crash");
  const logDir = path.join(dir, "orders.log");
  openLog(logDir, { create: true, segmentSize: 1024 * 1024 }).close();
  say(`     A producer process appends orders to a log; a consumer process reads them, saving its`);
  say(`     position under the name "billing" every 100 records. Both are killed with SIGKILL: the consumer`);
  say(`     first, the producer a moment later.`);

  const producer = startChild("produce", [logDir]);
  const consumer = startChild("consume", [logDir, "follow"]);
  await consumer.waitFor((m) => typeof m.resumedAt === "number");
  await producer.waitFor((m) => typeof m.appended === "number");
  // Kill the consumer first, then the producer mid-stream, wherever each one is.
  await new Promise((resolve) => setTimeout(resolve, 100));
  consumer.process.kill("SIGKILL");
  await new Promise((resolve) => setTimeout(resolve, 100));
  producer.process.kill("SIGKILL");
  await Promise.all([producer.exited, consumer.exited]);

  const killed = inspectLog(logDir);
  const cursor = killed.cursors.find((c) => c.name === "billing");
  if (cursor === undefined) throw new Error("the consumer committed no position");
  say(`     Killed after appending about ${killed.nextSeq.toLocaleString("en-US")} records; "billing" was saved at seq ${cursor.seq.toLocaleString("en-US")}.`);

  const resumed = startChild("consume", [logDir, "drain"]);
  const start = await resumed.waitFor((m) => typeof m.resumedAt === "number");
  const done = await resumed.waitFor((m) => m.done === true);
  await resumed.exited;
  const [from, read, end] = [start.resumedAt as number, done.read as number, done.next as number];
  say(
    `     A new consumer resumed at seq ${from.toLocaleString("en-US")} and read the ${read.toLocaleString("en-US")} records after it, to seq ` +
      `${(end - 1).toLocaleString("en-US")},\n     each checked: none lost, none repeated.`,
  );
  if ((start.repaired as number) > 0)
    say(`     The producer died in the middle of an append; opening the log rolled that half-written record back.`);

  using log = openLog(logDir);
  const seq = log.append("order after the crash");
  say(`     Reopened for writing, the next append gets seq ${seq.toLocaleString("en-US")}: the log carries on.`);
  if (from !== cursor.seq || from + read !== end || seq !== end)
    throw new Error(`the log does not add up: resumed at ${from}, read ${read}, ended at ${end}, next append ${seq}`);
  say(dim(`     (\`memmap log stat <dir>\` shows segments, cursors and their lag.)`));
}

// ---------------------------------------------------------------- main

function cleanup(): void {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
  if (tempDir !== undefined) fs.rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
}

async function main(): Promise<void> {
  const started = performance.now();
  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-tour-"));
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      cleanup();
      process.exit(130);
    });
  }
  say(bold("memmap: a tour of memory-mapped files"));
  say(dim(`(working in ${tempDir}; everything is removed at the end)`));
  try {
    await partSharing(tempDir);
    await partRecords(tempDir);
    await partChannel();
    await partLog(tempDir);
    await partBridge(tempDir, path.join(tempDir, "orders.log"), { say, heading, dim, track: (c) => children.add(c) });
  } finally {
    cleanup();
  }
  say();
  say(`Tour done in ${((performance.now() - started) / 1000).toFixed(1)} s. Next: docs/README.md, and \`npx memmap --help\`.`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`tour failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
