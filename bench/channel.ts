/**
 * bench:channel — the channel against what a Node user would otherwise use
 * for IPC, and against C, in one run.
 *
 * 0. Round trip under load (see `conditions`): the default strategy against
 *    process.send and C, unpinned and pinned, idle, beside a CPU hog, and
 *    with both processes on one CPU.
 * 1. Round-trip latency of a 16-byte message (ping-pong between two
 *    processes; median, p99, p99.9 from an HDR histogram): the channel with
 *    the "spin" strategy, the default ("adaptive"), "futex" (spin 2,000
 *    polls, then sleep), futex with no spinning, and with receiveAsync on both sides;
 *    child_process process.send; a Unix domain socket; worker_threads
 *    postMessage (in-process); a C program over a shared mapping (spin and
 *    futex) — the machine's limit.
 * 2. One-way throughput of 64-byte and 4 KiB messages, sent one by one and
 *    in batches of 1,024 (one publication per batch), against the same peers
 *    and a C stream over the same frames (best of 3 runs each).
 * 3. Where the time goes: per-operation costs measured in one process.
 *
 * Parts 1-3 pin the two processes to CPUs 0 and 1 with taskset when there
 * are two CPUs. Run: npm run bench:channel [-- --quick] [-- --only=conditions|latency|throughput]
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import * as hdr from "hdr-histogram-js";
import { createChannel, createSharedMemory, Doorbell, mapFile, openChannel, MmapError, type WaitStrategy } from "../src/index.ts";
import { DATA_SEQ_OFFSET, SPACE_SEQ_OFFSET } from "../src/channel/layout.ts";
import { buildC, fmtNs, fmtRatio, median, printTable, quick, saveResults } from "./common.ts";

const self = fileURLToPath(import.meta.url);
const scale = quick ? 0.2 : 1;
/** `--only=latency` or `--only=throughput`: one part (while working on it). */
const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const n = (count: number): number => Math.max(1000, Math.round(count * scale));
const BATCH = 1024;

// ------------------------------------------------------------------ helpers

interface Latency {
  medianNs: number;
  p99Ns: number;
  p999Ns: number;
  meanNs: number;
  roundTrips: number;
}

function summarize(samples: Float64Array): Latency {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60e9, numberOfSignificantValueDigits: 3 });
  let sum = 0;
  for (const s of samples) {
    const v = Math.max(1, Math.round(s));
    h.recordValue(v);
    sum += v;
  }
  const out = {
    medianNs: h.getValueAtPercentile(50),
    p99Ns: h.getValueAtPercentile(99),
    p999Ns: h.getValueAtPercentile(99.9),
    meanNs: sum / samples.length,
    roundTrips: samples.length,
  };
  h.destroy();
  return out;
}

/** Each of `rounds` awaited round trips in ns, after a warm-up of a fifth as many (at most 5,000). */
async function timeRoundTrips(rounds: number, roundTrip: () => Promise<unknown>): Promise<Float64Array> {
  const warmup = Math.min(5000, rounds / 5);
  const samples = new Float64Array(rounds);
  for (let i = -warmup; i < rounds; i++) {
    const t0 = performance.now();
    await roundTrip();
    if (i >= 0) samples[i] = (performance.now() - t0) * 1e6;
  }
  return samples;
}

const haveTaskset = os.cpus().length >= 2 && commandExists("taskset");

function commandExists(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function pinSelf(cpus: string): void {
  if (haveTaskset) execFileSync("taskset", ["-a", "-pc", cpus, String(process.pid)], { stdio: "ignore" });
}

/** Starts this file as the peer process on `cpus` (default CPU 1; "" leaves it unpinned). */
function peer(role: string, args: string[], ipc = false, cpus = "1"): ChildProcess {
  const node = [process.execPath, "--import", "tsx", self, "--peer", role, ...args];
  const [cmd, ...rest] = haveTaskset && cpus !== "" ? ["taskset", "-c", cpus, ...node] : node;
  return spawn(cmd!, rest, { stdio: ipc ? ["inherit", "inherit", "inherit", "ipc"] : "inherit" });
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
  if (code !== 0) throw new Error(`peer exited with ${code ?? signal}`);
}

function isClosed(error: unknown): boolean {
  return error instanceof MmapError && error.code === "ERR_CLOSED";
}

const shmDir = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();

// ---------------------------------------------------------- peer processes

async function peerMain(role: string, args: string[]): Promise<void> {
  switch (role) {
    case "echo-sync": {
      const [strategy, spin, pingPath, pongPath] = args as [WaitStrategy | "default", string, string, string];
      const opts = { ...(strategy === "default" ? {} : { strategy }), ...(spin === "-" ? {} : { spin: Number(spin) }) };
      const ping = openChannel(pingPath, opts);
      const pong = openChannel(pongPath, opts);
      try {
        for (;;) pong.send(ping.receive());
      } catch (error) {
        if (!isClosed(error)) throw error;
      }
      return;
    }
    case "echo-async": {
      const [pingPath, pongPath] = args as [string, string];
      const ping = openChannel(pingPath);
      const pong = openChannel(pongPath);
      for await (const m of ping) pong.send(m);
      return;
    }
    case "produce": {
      const [strategy, size, count, batch, file] = args as [WaitStrategy, string, string, string, string];
      const ch = openChannel(file, { strategy });
      const msg = new Uint8Array(Number(size)).fill(7);
      const total = Number(count);
      if (batch === "1") for (let i = 0; i < total; i++) ch.send(msg);
      else {
        const list = new Array<Uint8Array>(Number(batch)).fill(msg);
        for (let i = 0; i < total; i += list.length) ch.sendBatch(list);
      }
      ch.end();
      return;
    }
    case "ps-echo": {
      process.on("message", (m) => process.send!(m));
      process.on("disconnect", () => process.exit(0));
      return;
    }
    case "ps-produce": {
      const [size, count] = args.map(Number) as [number, number];
      const payload = "x".repeat(size);
      for (let i = 0; i < count; i++) {
        // Wait for the pipe now and then, so the backlog (and memory) stays bounded.
        if (i % 256 === 255) await new Promise<void>((resolve) => process.send!(payload, () => resolve()));
        else process.send!(payload);
      }
      process.send!("end", () => process.disconnect());
      return;
    }
    case "sock-echo": {
      const socket = net.connect(args[0]!);
      socket.setNoDelay(true);
      socket.on("data", (d) => socket.write(d));
      socket.on("end", () => socket.end());
      return;
    }
    case "sock-produce": {
      const [file, size, count, batch] = args as [string, string, string, string];
      const socket = net.connect(file);
      await once(socket, "connect");
      const frame = Buffer.alloc(4 + Number(size), 7);
      frame.writeUInt32LE(Number(size), 0);
      const chunk = Number(batch) === 1 ? frame : Buffer.concat(new Array<Buffer>(Number(batch)).fill(frame));
      const writes = Number(count) / Number(batch);
      for (let i = 0; i < writes; i++) if (!socket.write(chunk)) await once(socket, "drain");
      socket.end();
      await once(socket, "close");
      return;
    }
    default:
      throw new Error(`unknown peer role ${role}`);
  }
}

/** The worker side of the worker_threads runs, plain JavaScript (evaluated: no TypeScript loader in the worker). */
const workerSource = `
const { parentPort, workerData: data } = require("node:worker_threads");
if (data.role === "echo") {
  parentPort.on("message", (m) => (m === "stop" ? parentPort.close() : parentPort.postMessage(m)));
} else {
  const frame = new Uint8Array(4 + data.size).fill(7);
  new DataView(frame.buffer).setUint32(0, data.size, true);
  if (data.batch === 1) for (let i = 0; i < data.count; i++) parentPort.postMessage(frame.slice());
  else {
    const chunk = new Uint8Array(frame.length * data.batch);
    for (let k = 0; k < data.batch; k++) chunk.set(frame, k * frame.length);
    for (let i = 0; i < data.count / data.batch; i++) parentPort.postMessage(chunk.slice());
  }
  parentPort.postMessage("end");
}`;

// ------------------------------------------------------------- latency runs

/** A ping-pong of `rounds` timed round trips; "default" passes no strategy (the adaptive default). */
async function channelLatency(strategy: WaitStrategy | "default" | "async", spin: number | undefined, rounds: number, cpus = "1"): Promise<Latency> {
  const dir = fs.mkdtempSync(path.join(shmDir, "memmap-bench-"));
  try {
    const opts = strategy === "async" || strategy === "default" ? {} : { strategy, ...(spin === undefined ? {} : { spin }) };
    const ping = createChannel(path.join(dir, "ping"), { capacity: 65536, ...opts });
    const pong = createChannel(path.join(dir, "pong"), { capacity: 65536, ...opts });
    const child =
      strategy === "async"
        ? peer("echo-async", [ping.path!, pong.path!], false, cpus)
        : peer("echo-sync", [strategy, spin === undefined ? "-" : String(spin), ping.path!, pong.path!], false, cpus);
    const msg = new Uint8Array(16).fill(1);
    // First round trip: wait for the peer to start.
    ping.send(msg);
    await pong.receiveAsync({ timeoutMs: 30_000 });
    const warmup = Math.min(20_000, rounds / 5);
    const samples = new Float64Array(rounds);
    if (strategy === "async") {
      for (let i = -warmup; i < rounds; i++) {
        const t0 = performance.now();
        ping.send(msg);
        await pong.receiveAsync();
        if (i >= 0) samples[i] = (performance.now() - t0) * 1e6;
      }
    } else {
      for (let i = -warmup; i < rounds; i++) {
        const t0 = performance.now();
        ping.send(msg);
        pong.receive();
        if (i >= 0) samples[i] = (performance.now() - t0) * 1e6;
      }
    }
    ping.end();
    await exited(child);
    ping.close();
    pong.close();
    return summarize(samples);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function processSendLatency(rounds: number, cpus = "1"): Promise<Latency> {
  const child = peer("ps-echo", [], true, cpus);
  const msg = "0123456789abcdef";
  const roundTrip = (): Promise<unknown> =>
    new Promise((resolve) => {
      child.once("message", resolve);
      child.send(msg);
    });
  await roundTrip();
  const samples = await timeRoundTrips(rounds, roundTrip);
  child.disconnect();
  await exited(child);
  return summarize(samples);
}

async function socketLatency(rounds: number): Promise<Latency> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-bench-"));
  const file = path.join(dir, "sock");
  const server = net.createServer();
  server.listen(file);
  await once(server, "listening");
  const child = peer("sock-echo", [file]);
  const [socket] = (await once(server, "connection")) as [net.Socket];
  socket.setNoDelay(true);
  const msg = Buffer.alloc(16, 1);
  let got = 0;
  let wake: (() => void) | undefined;
  socket.on("data", (d: Buffer) => {
    got += d.length;
    if (got >= 16 && wake) {
      got -= 16;
      const w = wake;
      wake = undefined;
      w();
    }
  });
  const roundTrip = (): Promise<void> =>
    new Promise((resolve) => {
      wake = resolve;
      socket.write(msg);
    });
  const samples = await timeRoundTrips(rounds, roundTrip);
  socket.end();
  await exited(child);
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return summarize(samples);
}

async function workerLatency(rounds: number): Promise<Latency> {
  const worker = new Worker(workerSource, { eval: true, workerData: { role: "echo", size: 0, count: 0, batch: 0 } });
  const msg = new Uint8Array(16).fill(1);
  const roundTrip = (): Promise<unknown> =>
    new Promise((resolve) => {
      worker.once("message", resolve);
      worker.postMessage(msg);
    });
  await roundTrip();
  const samples = await timeRoundTrips(rounds, roundTrip);
  worker.postMessage("stop");
  await once(worker, "exit");
  return summarize(samples);
}

/** The C ping-pong; with `cpus` it runs unpinned inside that CPU set ("" = anywhere) instead of on CPUs 0/1. */
function cLatency(mode: "spin" | "futex", rounds: number, cpus?: string): Latency | undefined {
  const bin = buildC("channel-pingpong");
  if (!bin) return undefined;
  if (cpus === undefined) return JSON.parse(execFileSync(bin, [mode, String(rounds)], { encoding: "utf8" })) as Latency;
  const [cmd, ...rest] = haveTaskset && cpus !== "" ? ["taskset", "-c", cpus, bin, mode, String(rounds)] : [bin, mode, String(rounds)];
  return JSON.parse(execFileSync(cmd!, rest, { encoding: "utf8", env: { ...process.env, MEMMAP_BENCH_NOPIN: "1" } })) as Latency;
}

// --------------------------------------------------- latency under conditions

/**
 * Where users run the channel: unpinned or pinned to CPUs 0/1, on an idle
 * machine or beside one busy-loop process (a CPU hog, unpinned), and both
 * processes on one CPU (taskset -c 0). Each condition runs the default
 * strategy, the explicit "futex" strategy (spin 2,000 polls, then sleep: the
 * default before the adaptive one), process.send and the C futex ping-pong,
 * one after the other, under the same condition.
 */
interface Condition {
  key: string;
  label: string;
  /** CPUs of this process and of the peer ("" = all). */
  self: string;
  peer: string;
  hog: boolean;
  /** Goal: process.send ÷ default at least this. */
  goal: number;
}

const allCpus = os.cpus().map((_, i) => i).join(",");
const conditions: Condition[] = [
  { key: "idle", label: "unpinned, otherwise idle", self: "", peer: "", hog: false, goal: 20 },
  { key: "hog", label: "unpinned, one busy-loop process beside it", self: "", peer: "", hog: true, goal: 2 },
  { key: "oneCpu", label: "both on one CPU (taskset -c 0)", self: "0", peer: "0", hog: false, goal: 1 },
  { key: "pinnedIdle", label: "pinned to CPUs 0/1, otherwise idle", self: "0", peer: "1", hog: false, goal: 20 },
  { key: "pinnedHog", label: "pinned to CPUs 0/1, one busy-loop process beside it", self: "0", peer: "1", hog: true, goal: 2 },
];

interface ConditionResult {
  adaptive: Latency;
  futex: Latency;
  processSend: Latency;
  cFutex: Latency | undefined;
}

function startHog(): ChildProcess {
  return spawn(process.execPath, ["-e", "for (;;);"], { stdio: "ignore" });
}

async function conditionLatencies(): Promise<Record<string, ConditionResult>> {
  const out: Record<string, ConditionResult> = {};
  const rounds = n(18_000);
  for (const c of conditions) {
    if (!haveTaskset && (c.self !== "" || c.peer !== "")) continue;
    console.log(`condition: ${c.label} …`);
    pinSelf(c.self === "" ? allCpus : c.self);
    const hog = c.hog ? startHog() : undefined;
    try {
      if (hog) await new Promise((resolve) => setTimeout(resolve, 200)); // let it get going
      const adaptive = await channelLatency("default", undefined, rounds, c.peer);
      const futex = await channelLatency("futex", undefined, rounds, c.peer);
      const processSend = await processSendLatency(rounds, c.peer);
      const cFutex = cLatency("futex", rounds, c.self === c.peer ? c.self : undefined);
      out[c.key] = { adaptive, futex, processSend, cFutex };
    } finally {
      hog?.kill();
      if (hog) await once(hog, "exit");
    }
  }
  pinSelf(allCpus);
  return out;
}

function reportConditions(results: Record<string, ConditionResult>): Record<string, boolean> {
  const pct = (l: Latency | undefined): string => (l ? `${fmtNs(l.medianNs)} / ${fmtNs(l.p99Ns)} / ${fmtNs(l.p999Ns)}` : "–");
  const met: Record<string, boolean> = {};
  const rows: string[][] = [];
  for (const c of conditions) {
    const r = results[c.key];
    if (!r) continue;
    const vsSend = r.processSend.medianNs / r.adaptive.medianNs;
    met[`${c.label}: default ≥ ${c.goal}× faster than process.send`] = vsSend >= c.goal;
    rows.push([
      c.label,
      pct(r.adaptive),
      pct(r.futex),
      pct(r.processSend),
      pct(r.cFutex),
      fmtRatio(vsSend),
      r.cFutex ? fmtRatio(r.adaptive.medianNs / r.cFutex.medianNs) : "–",
      `≥ ${c.goal}× ${vsSend >= c.goal ? "✓" : "✗"}`,
    ]);
  }
  printTable(
    "Round trip under load, 16-byte message, send + receive with default options (p50 / p99 / p99.9)",
    ["condition", "channel, default (adaptive)", 'channel, "futex" (spin 2,000, sleep)', "process.send", "C futex", "process.send ÷ default", "default ÷ C futex", "goal"],
    rows,
  );
  return met;
}

// ---------------------------------------------------------- throughput runs

/** Throughput runs are repeated (3 times, once with --quick) and the best kept: other load on the machine only ever slows a run. */
async function best(run: () => Promise<Throughput | undefined>): Promise<Throughput | undefined> {
  let top: Throughput | undefined;
  for (let i = 0; i < (quick ? 1 : 3); i++) {
    const t = await run();
    if (t && (!top || t.perSecond > top.perSecond)) top = t;
  }
  return top;
}

/** The C stream over the channel's frame format: "seqcst" publishes as a wake-capable producer must, "release" as only C can. */
function cThroughput(publication: "release" | "seqcst", count: number, batch: number, size: number): Throughput | undefined {
  const bin = buildC("channel-pingpong");
  if (!bin) return undefined;
  const r = JSON.parse(execFileSync(bin, ["stream", publication, String(count), String(batch), String(size)], { encoding: "utf8" })) as { perSecond: number };
  return { messages: count, seconds: count / r.perSecond, perSecond: r.perSecond, bytesPerSecond: r.perSecond * size };
}

interface Throughput {
  messages: number;
  seconds: number;
  perSecond: number;
  bytesPerSecond: number;
  /** Channel runs: times the consumer / producer was woken from sleep. */
  consumerWakes?: number;
  producerWakes?: number;
}

function throughput(messages: number, size: number, ns: number): Throughput {
  const seconds = ns / 1e9;
  return { messages, seconds, perSecond: messages / seconds, bytesPerSecond: (messages * size) / seconds };
}

/** The consumer runs here, the producer in the peer process; timed from the first message to the last. */
async function channelThroughput(
  size: number,
  count: number,
  batch: number,
  consumer: "receive" | "drain" | "async",
  strategy: WaitStrategy,
  spin?: number,
): Promise<Throughput> {
  const dir = fs.mkdtempSync(path.join(shmDir, "memmap-bench-"));
  try {
    const ch = createChannel(path.join(dir, "ch"), { capacity: 1 << 20, strategy, ...(spin === undefined ? {} : { spin }) });
    ch.tryReceive(); // attach as the consumer before the producer starts
    const child = peer("produce", [strategy, String(size), String(count), String(batch), ch.path!]);
    let received = 0;
    let t0 = 0;
    const first = await ch.receiveAsync({ timeoutMs: 30_000 });
    if (first.length !== size) throw new Error("bad message");
    t0 = performance.now();
    received = 1;
    if (consumer === "receive") {
      try {
        for (;;) {
          ch.receive();
          received++;
        }
      } catch (error) {
        if (!isClosed(error)) throw error;
      }
    } else if (consumer === "drain") {
      const count1 = (): void => void received++;
      try {
        for (;;) {
          if (ch.drain(count1) === 0) {
            ch.receive();
            received++;
          }
        }
      } catch (error) {
        if (!isClosed(error)) throw error;
      }
    } else {
      for await (const _m of ch) received++;
    }
    const ns = (performance.now() - t0) * 1e6;
    await exited(child);
    ch.close();
    if (received !== count) throw new Error(`received ${received} of ${count}`);
    // How often a side went to sleep and had to be woken (each doorbell ring bumps its futex word).
    const header = mapFile(path.join(dir, "ch"));
    const words = new Int32Array(header.buffer, 0, 1024);
    const wakes = { consumerWakes: words[DATA_SEQ_OFFSET / 4]!, producerWakes: words[SPACE_SEQ_OFFSET / 4]! };
    header.close();
    return { ...throughput(count - 1, size, ns), ...wakes };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function processSendThroughput(size: number, count: number): Promise<Throughput> {
  const child = peer("ps-produce", [String(size), String(count)], true);
  let received = 0;
  let t0 = 0;
  await new Promise<void>((resolve) => {
    child.on("message", (m) => {
      if (m === "end") return resolve();
      if (received++ === 0) t0 = performance.now();
    });
  });
  const ns = (performance.now() - t0) * 1e6;
  await exited(child);
  if (received !== count) throw new Error(`process.send: received ${received} of ${count}`);
  return throughput(count - 1, size, ns);
}

async function socketThroughput(size: number, count: number, batch: number): Promise<Throughput> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-bench-"));
  const file = path.join(dir, "sock");
  const server = net.createServer();
  server.listen(file);
  await once(server, "listening");
  const child = peer("sock-produce", [file, String(size), String(count), String(batch)]);
  const [socket] = (await once(server, "connection")) as [net.Socket];
  let received = 0;
  let t0 = 0;
  let pending: Buffer = Buffer.alloc(0);
  socket.on("data", (d: Buffer) => {
    if (t0 === 0) t0 = performance.now();
    let buf = pending.length ? Buffer.concat([pending, d]) : d;
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32LE(off);
      if (buf.length - off < 4 + len) break;
      off += 4 + len;
      received++;
    }
    pending = buf.subarray(off);
    buf = pending;
  });
  await once(socket, "end");
  const ns = (performance.now() - t0) * 1e6;
  socket.end();
  await exited(child);
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  if (received !== count) throw new Error(`socket: received ${received} of ${count}`);
  return throughput(count, size, ns);
}

async function workerThroughput(size: number, count: number, batch: number): Promise<Throughput> {
  const worker = new Worker(workerSource, { eval: true, workerData: { role: "produce", size, count, batch } });
  let received = 0;
  let t0 = 0;
  await new Promise<void>((resolve) => {
    worker.on("message", (m: Uint8Array | string) => {
      if (m === "end") return resolve();
      if (t0 === 0) t0 = performance.now();
      const bytes = m as Uint8Array;
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let off = 0; off + 4 <= bytes.length; off += 4 + view.getUint32(off, true)) received++;
    });
  });
  const ns = (performance.now() - t0) * 1e6;
  await worker.terminate();
  if (received !== count) throw new Error(`worker: received ${received} of ${count}`);
  return throughput(count, size, ns);
}

// --------------------------------------------------------- where time goes

/**
 * Per-operation costs in one process with no peer (so no cache line moves
 * between cores): what each side spends on a message, and what a wake-up
 * (a futex system call) costs on this machine.
 */
function breakdown(): [string, number][] {
  const dir = fs.mkdtempSync(path.join(shmDir, "memmap-bench-"));
  try {
    const out: [string, number][] = [];
    const m64 = new Uint8Array(64);
    const list = new Array<Uint8Array>(BATCH).fill(m64);
    const per = 8192; // 64-byte messages (72-byte frames) fit in 1 MiB 14 times over; 8,192 leaves room
    const rounds = quick ? 40 : 200;
    const kinds = [["single", false], ["multi", false], ["single", true], ["multi", true]] as const;
    for (const [producers, checksum] of kinds) {
      const ch = createChannel(path.join(dir, `${producers}-${checksum}`), { capacity: 1 << 20, producers, checksum });
      const suffix = checksum ? " with checksum: true" : "";
      ch.tryReceive();
      const t = { send: [] as number[], receive: [] as number[], batch: [] as number[], drain: [] as number[] };
      for (let r = -5; r < rounds; r++) {
        const t0 = performance.now();
        for (let i = 0; i < per; i++) ch.trySend(m64);
        const t1 = performance.now();
        for (let i = 0; i < per; i++) ch.tryReceive();
        const t2 = performance.now();
        ch.tryReceive();
        for (let i = 0; i < per / BATCH; i++) ch.trySendBatch(list);
        const t3 = performance.now();
        ch.drain(() => {});
        const t4 = performance.now();
        if (r < 0) continue; // warm-up
        t.send.push(t1 - t0);
        t.receive.push(t2 - t1);
        t.batch.push(t3 - t2);
        t.drain.push(t4 - t3);
      }
      const ns = (ms: number[]): number => (median(ms) * 1e6) / per; // the median round: other load only adds
      out.push([`trySend(64 B), ${producers} producer${suffix}`, ns(t.send)]);
      out.push([`tryReceive() of it${suffix}`, ns(t.receive)]);
      out.push([`trySendBatch(1,024 × 64 B), ${producers} producer${suffix}, per message`, ns(t.batch)]);
      out.push([`drain() of them${suffix}, per message`, ns(t.drain)]);
      ch.close();
    }
    const shm = createSharedMemory(4096);
    const map = shm.map();
    const bell = new Doorbell(map.buffer, 0, 4);
    const wakes = 20_000;
    const t0 = performance.now();
    for (let i = 0; i < wakes; i++) bell.ringAlways();
    out.push(["a wake-up: Doorbell.ringAlways() (futex system call, nobody waiting)", ((performance.now() - t0) * 1e6) / wakes]);
    map.close();
    shm.close();
    const clocks = 1_000_000;
    let x = 0;
    const t1 = performance.now();
    for (let i = 0; i < clocks; i++) x += performance.now();
    out.push(["performance.now() (the latency loop's clock)", ((performance.now() - t1) * 1e6) / clocks]);
    if (x === 0.5) console.log(x);
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ----------------------------------------------------------------- the run

async function main(): Promise<void> {
  console.log(`bench:channel${quick ? " (quick)" : ""}; pinned to CPUs 0/1: ${haveTaskset ? "yes" : "no (taskset or a 2nd CPU missing)"}`);
  const latency: Record<string, Latency | undefined> = {};
  const tp: Record<string, Throughput | undefined> = {};

  const underLoad = only === undefined || only === "conditions" ? await conditionLatencies() : {};
  if (only === "conditions") {
    console.log("\ntargets:", reportConditions(underLoad));
    return;
  }
  // In-process reference first, unpinned: worker threads inherit the main thread's CPU.
  if (only !== "throughput") latency.worker = await workerLatency(n(20_000));
  if (only !== "latency") {
    tp.worker64 = await best(() => workerThroughput(64, n(200_000), 1));
    tp.worker64batch = await best(() => workerThroughput(64, n(2_048_000), BATCH));
    tp.worker4k = await best(() => workerThroughput(4096, n(100_000), 1));
  }
  pinSelf("0");

  if (only !== "throughput") await latencies(latency);
  if (only !== "latency") await throughputs(tp);
  pinSelf(os.cpus().map((_, i) => i).join(","));
  report(latency, tp, only ? [] : breakdown(), underLoad);
}

async function latencies(latency: Record<string, Latency | undefined>): Promise<void> {
  console.log("latency …");
  latency.spin = await channelLatency("spin", undefined, n(200_000));
  latency.adaptive = await channelLatency("default", undefined, n(50_000));
  latency.futex = await channelLatency("futex", undefined, n(50_000));
  latency.futexNoSpin = await channelLatency("futex", 0, n(20_000));
  latency.async = await channelLatency("async", undefined, n(20_000));
  latency.processSend = await processSendLatency(n(20_000));
  latency.socket = await socketLatency(n(20_000));
  latency.cSpin = cLatency("spin", n(200_000));
  latency.cFutex = cLatency("futex", n(20_000));
}

async function throughputs(tp: Record<string, Throughput | undefined>): Promise<void> {
  console.log("throughput …");
  tp.spin64 = await best(() => channelThroughput(64, n(2_000_000), 1, "receive", "spin"));
  tp.futex64 = await best(() => channelThroughput(64, n(2_000_000), 1, "receive", "futex"));
  tp.async64 = await best(() => channelThroughput(64, n(1_000_000), 1, "async", "futex"));
  tp.batch64 = await best(() => channelThroughput(64, n(8_192_000), BATCH, "drain", "futex"));
  tp.batch64spin = await best(() => channelThroughput(64, n(8_192_000), BATCH, "drain", "futex", 20_000));
  tp.spin4k = await best(() => channelThroughput(4096, n(500_000), 1, "receive", "spin"));
  tp.futex4k = await best(() => channelThroughput(4096, n(500_000), 1, "receive", "futex"));
  tp.batch4k = await best(() => channelThroughput(4096, n(512_000), 16, "drain", "futex"));
  tp.processSend64 = await best(() => processSendThroughput(64, n(200_000)));
  tp.processSend4k = await best(() => processSendThroughput(4096, n(50_000)));
  tp.socket64 = await best(() => socketThroughput(64, n(300_000), 1));
  tp.socket64batch = await best(() => socketThroughput(64, n(4_096_000), BATCH));
  tp.socket4k = await best(() => socketThroughput(4096, n(100_000), 1));
  tp.cSeqcst64 = await best(async () => cThroughput("seqcst", n(10_000_000), 1, 64));
  tp.cSeqcst4k = await best(async () => cThroughput("seqcst", n(2_000_000), 1, 4096));
  tp.cRelease64 = await best(async () => cThroughput("release", n(10_000_000), 1, 64));
  tp.cRelease4k = await best(async () => cThroughput("release", n(2_000_000), 1, 4096));
  tp.cSeqcst64batch = await best(async () => cThroughput("seqcst", n(40_000_000), BATCH, 64));
  tp.cSeqcst4kbatch = await best(async () => cThroughput("seqcst", n(2_000_000), 16, 4096));
}

function report(
  latency: Record<string, Latency | undefined>,
  tp: Record<string, Throughput | undefined>,
  where: [string, number][],
  underLoad: Record<string, ConditionResult>,
): void {
  const conditionTargets = Object.keys(underLoad).length ? reportConditions(underLoad) : {};
  const L = latency;
  const ratio = (peerNs: number | undefined, ns: number): string => (peerNs ? fmtRatio(peerNs / ns) : "–");
  const cFor = (key: string): Latency | undefined => (key === "spin" || key === "cSpin" ? L.cSpin : L.cFutex);
  const latencyRows: [string, string][] = [
    ["channel, spin", "spin"],
    ["channel, default (adaptive: polls as long as polling pays off, then sleeps)", "adaptive"],
    ["channel, futex (spin 2,000 polls, then sleep)", "futex"],
    ["channel, futex with no spinning", "futexNoSpin"],
    ["channel, receiveAsync on both sides", "async"],
    ["child_process process.send", "processSend"],
    ["Unix domain socket (net)", "socket"],
    ["worker_threads postMessage (in-process)", "worker"],
    ["C over a shared mapping, spin", "cSpin"],
    ["C over a shared mapping, futex", "cFutex"],
  ];
  printTable(
    "Round trip, 16-byte message (ping-pong between two processes)",
    ["transport", "median", "p99", "p99.9", "process.send ÷ this", "socket ÷ this", "worker ÷ this", "this ÷ C (same waiting)"],
    latencyRows
      .filter(([, key]) => L[key])
      .map(([label, key]) => {
        const r = L[key]!;
        const c = cFor(key);
        return [
          label,
          fmtNs(r.medianNs),
          fmtNs(r.p99Ns),
          fmtNs(r.p999Ns),
          ratio(L.processSend?.medianNs, r.medianNs),
          ratio(L.socket?.medianNs, r.medianNs),
          ratio(L.worker?.medianNs, r.medianNs),
          c ? fmtRatio(r.medianNs / c.medianNs) : "–",
        ];
      }),
  );

  const rate = (t: Throughput | undefined): string => (t ? `${(t.perSecond / 1e6).toFixed(2)} M/s` : "–");
  const gbs = (t: Throughput | undefined): string => (t ? `${(t.bytesPerSecond / 1e9).toFixed(2)} GB/s` : "–");
  const vs = (t: Throughput | undefined, peerT: Throughput | undefined): string =>
    t && peerT ? fmtRatio(t.perSecond / peerT.perSecond) : "–";
  const tpRows: [string, Throughput | undefined, Throughput | undefined, number][] = [
    ["channel, spin, one by one", tp.spin64, tp.spin4k, 1],
    ["channel, futex, one by one", tp.futex64, tp.futex4k, 1],
    ["channel, receiveAsync consumer", tp.async64, undefined, 1],
    ["channel, sendBatch + drain (64 B: 1,024 per batch; 4 KiB: 16)", tp.batch64, tp.batch4k, BATCH],
    ["channel, the same with the consumer polling longer (spin: 20,000)", tp.batch64spin, undefined, BATCH],
    ["process.send, one by one", tp.processSend64, tp.processSend4k, 1],
    ["Unix socket, one write per message", tp.socket64, tp.socket4k, 1],
    ["Unix socket, 1,024 messages per write", tp.socket64batch, undefined, BATCH],
    ["worker postMessage, one by one", tp.worker64, tp.worker4k, 1],
    ["worker postMessage, 1,024 messages per post", tp.worker64batch, undefined, BATCH],
    ["C, one by one, seq-cst publication (what waking a sleeper needs)", tp.cSeqcst64, tp.cSeqcst4k, 1],
    ["C, one by one, release publication (a consumer that only polls)", tp.cRelease64, tp.cRelease4k, 1],
    ["C, seq-cst publication per batch (64 B: 1,024; 4 KiB: 16)", tp.cSeqcst64batch, tp.cSeqcst4kbatch, BATCH],
  ];
  printTable(
    "One-way throughput",
    ["transport", "64 B", "4 KiB", "4 KiB bytes", "64 B vs process.send", "64 B vs socket (same batching)", "64 B vs worker (same batching)", "64 B vs C seq-cst (same batching)"],
    tpRows.map(([label, a, b, batch]) => [
      label,
      rate(a),
      rate(b),
      gbs(b),
      vs(a, tp.processSend64),
      vs(a, batch === 1 ? tp.socket64 : tp.socket64batch),
      vs(a, batch === 1 ? tp.worker64 : tp.worker64batch),
      vs(a, batch === 1 ? tp.cSeqcst64 : tp.cSeqcst64batch),
    ]),
  );

  const wakeNotes = Object.entries(tp)
    .filter(([, t]) => t?.consumerWakes !== undefined)
    .map(([key, t]) => `${key} ${t!.consumerWakes}/${t!.producerWakes}`);
  if (wakeNotes.length) console.log(`\nwake-ups during the channel runs (consumer/producer): ${wakeNotes.join(", ")}`);

  printTable(
    "Where the time goes (one process, no peer; per operation)",
    ["operation", "time"],
    where.map(([label, ns]) => [label, fmtNs(ns)]),
  );

  const med = (l: Latency | undefined): number => l?.medianNs ?? NaN;
  const targets: Record<string, boolean | string> = {
    "spin round trip median ≤ 1 µs": med(L.spin) <= 1000,
    "spin ≥ 50× faster than process.send": med(L.processSend) / med(L.spin) >= 50,
    "default (adaptive), pinned, ≥ 20× faster than process.send": med(L.processSend) / med(L.adaptive) >= 20,
    "futex with no spinning within 2× of C futex": L.cFutex ? med(L.futexNoSpin) / med(L.cFutex) <= 2 : "no C compiler",
    "receiveAsync faster than process.send": med(L.async) < med(L.processSend),
    "64 B one by one ≥ 5 M/s": Math.max(tp.futex64?.perSecond ?? 0, tp.spin64?.perSecond ?? 0) >= 5e6,
    "64 B batched ≥ 11 M/s and ≥ the Unix socket's batched rate":
      Math.max(tp.batch64?.perSecond ?? 0, tp.batch64spin?.perSecond ?? 0) >= Math.max(11e6, tp.socket64batch?.perSecond ?? Infinity),
    ...conditionTargets,
  };
  console.log("\ntargets:", targets);
  if (only) return; // a partial run leaves the saved results alone
  console.log(`raw numbers: ${saveResults("channel", { quick, pinned: haveTaskset, latency, underLoad, throughput: tp, breakdownNs: Object.fromEntries(where), targets })}`);
}

if (process.argv[2] === "--peer")
  peerMain(process.argv[3]!, process.argv.slice(4)).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
else
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
