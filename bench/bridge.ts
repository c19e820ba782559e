/**
 * `npm run bench:bridge`: the JetStream bridge against a local nats-server
 * (started here, JetStream on a temporary file store), in one run:
 *
 * - push rate of 64 B and 1 KiB records: the bridge draining a log that
 *   holds N records, against a plain nats.js program publishing the same
 *   payloads with `await js.publish()` one at a time, the same program
 *   with its own pipelining (a window of 1024 publishes, like the bridge),
 *   and the cheapest exactly-once publisher nats.js allows: `nc.publish()`
 *   with a `Nats-Msg-Id` header and one shared reply subject, a window of
 *   1024 (no promise, timer or header object of its own per record): the
 *   ceiling of any bridge on this machine and server;
 * - memory under back-pressure: the bridge draining a backlog of 1,000,000
 *   records while nats-server is stopped (SIGSTOP) for 100 ms in every
 *   200 ms; the process's anonymous RSS and JS heap are sampled throughout;
 * - latency from `log.append` to the stream's ack (the bridge's cursor moves
 *   past it), and to a reader of a `pull` bridge's log: p50 and p99, with one
 *   record every 2 ms. Everything runs in this one process (one event loop).
 *
 * `--quick` (or MEMMAP_BENCH_QUICK=1) runs fewer records.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { connect, headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { openLog } from "../src/log/log.ts";
import { bridgeToJetStream } from "../src/bridge/push.ts";
import { bridgeFromJetStream } from "../src/bridge/pull.ts";
import { decodeBridgedRecord } from "../src/bridge/record.ts";
import { NatsServer, skipNats, tmpDir } from "../test/fixtures/bridge-server.ts";
import { fmtNs, fmtRatio, machineInfo, printTable, quick, saveResults } from "./common.ts";

if (skipNats) {
  console.log(`bench:bridge needs nats-server: ${skipNats}`);
  process.exit(1);
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const WINDOW = 1024;
const server = await NatsServer.start();
const work = tmpDir("bench-bridge");
let streamNo = 0;

function payload(size: number, i: number): Uint8Array {
  const b = new Uint8Array(size);
  b.fill(97 + (i % 26));
  new DataView(b.buffer).setUint32(0, i, true);
  return b;
}

async function pushBridgeRate(size: number, n: number): Promise<number> {
  const name = `PUSH${++streamNo}`;
  const log = openLog(path.join(work, name), { create: true, segmentSize: 256 << 20 });
  for (let i = 0; i < n; i++) log.append(payload(size, i));
  await createStream(name);
  const t0 = performance.now();
  const bridge = await bridgeToJetStream(log, { servers: server.url, stream: name, subject: name.toLowerCase(), maxInFlight: WINDOW, onEvent: () => {} });
  while (bridge.stats().acknowledged < n) await pause(1);
  const ms = performance.now() - t0;
  await bridge.close();
  log.close();
  return n / (ms / 1000);
}

/** Creates a stream `name` taking subject `name` in lower case (so the rates below time publishing only). */
async function createStream(name: string): Promise<void> {
  const nc = await connect({ servers: server.url });
  await (await jetstreamManager(nc)).streams.add({ name, subjects: [name.toLowerCase()], storage: StorageType.File });
  await nc.close();
}

/** The fastest exactly-once publishing nats.js allows: nc.publish() with a Nats-Msg-Id, acks counted on one reply subject. */
async function msgIdRate(size: number, n: number): Promise<number> {
  const name = `RAW${++streamNo}`;
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects: [name.toLowerCase()], storage: StorageType.File });
  const subject = name.toLowerCase();
  const data = Array.from({ length: 26 }, (_, i) => payload(size, i));
  const inbox = `_INBOX.${name}`;
  let acked = 0;
  let wake: (() => void) | undefined;
  nc.subscribe(inbox, {
    callback: () => {
      acked++;
      const w = wake;
      wake = undefined;
      w?.();
    },
  });
  await nc.flush();
  const t0 = performance.now();
  for (let sent = 0; acked < n; ) {
    while (sent < n && sent - acked < WINDOW) {
      const h = headers();
      h.set("Nats-Msg-Id", `raw:${sent}`);
      nc.publish(subject, data[sent % 26]!, { headers: h, reply: inbox });
      sent++;
    }
    await new Promise<void>((r) => (wake = r));
  }
  const ms = performance.now() - t0;
  await jsm.streams.delete(name);
  await nc.close();
  return n / (ms / 1000);
}

/** Anonymous resident memory of this process (the heap, buffers; not the log's mapped file pages), in bytes. */
function rssAnon(): number {
  const m = /RssAnon:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"));
  return m === null ? process.memoryUsage().rss : Number(m[1]) * 1024;
}

interface MemoryRow { backlog: number; maxInFlight: number; seconds: number; baseMiB: number; peakGrowthMiB: number; heapPeakMiB: number; liveHeapAt10pcMiB: number; liveHeapAtEndMiB: number; maxInFlightSeen: number }

/** The JS heap still in use after a full collection (needs --expose-gc; NaN without). */
function liveHeap(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return NaN;
  gc();
  return process.memoryUsage().heapUsed;
}

/** The bridge drains a backlog while the server is stopped half the time: samples memory and the publishes in flight. */
async function memoryUnderBackPressure(backlog: number, maxInFlight: number): Promise<MemoryRow> {
  const name = `MEM${++streamNo}`;
  const log = openLog(path.join(work, name), { create: true, segmentSize: 64 << 20 });
  const b = payload(64, 0);
  for (let i = 0; i < backlog; i++) log.append(b);
  await createStream(name);
  await pause(100);
  const base = rssAnon();
  let peak = base;
  let live10 = NaN;
  let live100 = NaN;
  let heapPeak = 0;
  let maxSeen = 0;
  const t0 = performance.now();
  const bridge = await bridgeToJetStream(log, { servers: server.url, stream: name, subject: name.toLowerCase(), maxInFlight, onEvent: () => {} });
  let stopped = false;
  const throttle = setInterval(() => {
    stopped = !stopped;
    server.signal(stopped ? "SIGSTOP" : "SIGCONT");
  }, 100);
  try {
    for (;;) {
      const s = bridge.stats();
      const rss = rssAnon();
      peak = Math.max(peak, rss);
      heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
      maxSeen = Math.max(maxSeen, s.inFlight);
      if (Number.isNaN(live10) && s.acknowledged >= backlog / 10) live10 = liveHeap();
      if (s.acknowledged >= backlog) {
        live100 = liveHeap(); // before close(): the bridge still holds all it holds while running
        break;
      }
      await pause(50);
    }
  } finally {
    clearInterval(throttle);
    server.signal("SIGCONT");
  }
  const seconds = (performance.now() - t0) / 1000;
  await bridge.close();
  log.close();
  const mib = (x: number): number => x / (1 << 20);
  return { backlog, maxInFlight, seconds, baseMiB: mib(base), peakGrowthMiB: mib(peak - base), heapPeakMiB: mib(heapPeak), liveHeapAt10pcMiB: mib(live10), liveHeapAtEndMiB: mib(live100), maxInFlightSeen: maxSeen };
}

async function plainRate(size: number, n: number, pipelined: boolean): Promise<number> {
  const name = `PLAIN${++streamNo}`;
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects: [name.toLowerCase()], storage: StorageType.File });
  const js = jetstream(nc);
  const subject = name.toLowerCase();
  const data = Array.from({ length: 26 }, (_, i) => payload(size, i));
  const t0 = performance.now();
  if (!pipelined) for (let i = 0; i < n; i++) await js.publish(subject, data[i % 26]!);
  else {
    // A window of WINDOW publishes: a counter and one waiter (racing a set of promises would cost O(window) per publish).
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const done = (): void => {
      inFlight--;
      const w = wake;
      wake = undefined;
      w?.();
    };
    for (let i = 0; i < n; i++) {
      inFlight++;
      js.publish(subject, data[i % 26]!).then(done, done);
      if (inFlight >= WINDOW) await new Promise<void>((r) => (wake = r));
    }
    while (inFlight > 0) await new Promise<void>((r) => (wake = r));
  }
  const ms = performance.now() - t0;
  await jsm.streams.delete(name);
  await nc.close();
  return n / (ms / 1000);
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function latency(count: number): Promise<{ ack: number[]; pull: number[] }> {
  const log = openLog(path.join(work, "LAT"), { create: true, segmentSize: 64 << 20 });
  const mirror = openLog(path.join(work, "LATM"), { create: true, segmentSize: 64 << 20 });
  const push = await bridgeToJetStream(log, { servers: server.url, stream: "LAT", subject: "lat", onEvent: () => {} });
  const pull = await bridgeFromJetStream({ servers: server.url, stream: "LAT", consumer: "lat", onEvent: () => {} }, mirror);
  const appendedAt = new Float64Array(count);
  const ack: number[] = [];
  const pulled: number[] = [];
  const ac = new AbortController();
  const reading = (async () => {
    try {
      for await (const r of mirror.reader({ signal: ac.signal })) {
        const i = new DataView(decodeBridgedRecord(r.data).payload.buffer, decodeBridgedRecord(r.data).payload.byteOffset).getUint32(0, true);
        pulled.push(performance.now() - appendedAt[i]!);
        if (pulled.length === count) break;
      }
    } catch {
      /* aborted */
    }
  })();
  let acked = -1;
  const watching = (async () => {
    // The bridge acks on this event loop: look after every turn of it.
    while (acked < count - 1) {
      const last = push.stats().lastSeq ?? -1;
      const now = performance.now();
      for (let s = acked + 1; s <= last; s++) ack.push(now - appendedAt[s]!);
      acked = last;
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let i = 0; i < count; i++) {
    appendedAt[i] = performance.now();
    log.append(payload(64, i));
    await pause(2);
  }
  await watching;
  await Promise.race([reading, pause(30_000)]);
  ac.abort();
  await push.close();
  await pull.close();
  log.close();
  mirror.close();
  return { ack: ack.sort((a, b) => a - b), pull: pulled.sort((a, b) => a - b) };
}

try {
  const results: Record<string, unknown> = { machine: machineInfo(), server: "nats-server 2.9 (Debian), JetStream file store, 127.0.0.1" };
  const rows: string[][] = [];
  for (const size of [64, 1024]) {
    const n = quick ? 20_000 : size === 64 ? 200_000 : 100_000;
    const nAwait = quick ? 2_000 : 10_000;
    const bridge = await pushBridgeRate(size, n);
    const awaited = await plainRate(size, nAwait, false);
    const piped = await plainRate(size, n, true);
    const raw = await msgIdRate(size, n);
    results[`push-${size}`] = { bridge, awaitEach: awaited, pipelined: piped, msgIdCeiling: raw, n, nAwait };
    const k = (r: number): string => `${(r / 1000).toFixed(1)} k/s`;
    rows.push([`${size} B`, k(bridge), k(awaited), k(piped), k(raw), fmtRatio(bridge / awaited), fmtRatio(bridge / piped), `${Math.round((100 * bridge) / raw)} %`]);
  }
  printTable("push rate (records/s into the stream, acked)", [
    "record", "memmap push bridge", "nats.js await each publish", "nats.js pipelined (1024)", "nc.publish + Nats-Msg-Id (1024)", "vs await", "vs pipelined", "of the nc.publish ceiling",
  ], rows);
  const mem = await memoryUnderBackPressure(quick ? 100_000 : 1_000_000, WINDOW);
  results.memory = mem;
  printTable("memory under back-pressure (64 B records; nats-server stopped 100 ms in every 200 ms)", [
    "backlog", "maxInFlight", "most in flight seen", "drained in", "RSS (anon) at start", "peak RSS growth", "peak JS heap", "live heap after GC: at 10 % → at 100 %",
  ], [[String(mem.backlog), String(mem.maxInFlight), String(mem.maxInFlightSeen), `${mem.seconds.toFixed(1)} s`, `${mem.baseMiB.toFixed(1)} MiB`, `${mem.peakGrowthMiB.toFixed(1)} MiB`, `${mem.heapPeakMiB.toFixed(1)} MiB`, `${mem.liveHeapAt10pcMiB.toFixed(1)} → ${mem.liveHeapAtEndMiB.toFixed(1)} MiB`]]);
  const count = quick ? 500 : 2000;
  const lat = await latency(count);
  results.latency = { count, ackP50Ms: pct(lat.ack, 0.5), ackP99Ms: pct(lat.ack, 0.99), pullP50Ms: pct(lat.pull, 0.5), pullP99Ms: pct(lat.pull, 0.99), pulled: lat.pull.length };
  printTable(`latency, one 64 B record every 2 ms (${count} records)`, ["from log.append to", "p50", "p99"], [
    ["the stream's ack (push cursor moved)", fmtNs(pct(lat.ack, 0.5) * 1e6), fmtNs(pct(lat.ack, 0.99) * 1e6)],
    [`a reader of the pull bridge's log (${lat.pull.length} seen)`, fmtNs(pct(lat.pull, 0.5) * 1e6), fmtNs(pct(lat.pull, 0.99) * 1e6)],
  ]);
  console.log(`saved ${saveResults("bridge", results)}`);
} finally {
  await server.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
