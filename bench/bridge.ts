/**
 * `npm run bench:bridge`: the JetStream bridge against a local nats-server
 * (started here, JetStream on a temporary file store), in one run:
 *
 * - push rate of 64 B and 1 KiB records: the bridge draining a log that
 *   holds N records, against a plain nats.js program publishing the same
 *   payloads with `await js.publish()` one at a time, and the same program
 *   with its own pipelining (a window of 1024 publishes, like the bridge);
 * - latency from `log.append` to the stream's ack (the bridge's cursor moves
 *   past it), and to a reader of a `pull` bridge's log: p50 and p99, with one
 *   record every 2 ms. Everything runs in this one process (one event loop).
 *
 * `--quick` (or MEMMAP_BENCH_QUICK=1) runs fewer records.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { connect } from "@nats-io/transport-node";
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
  const t0 = performance.now();
  const bridge = await bridgeToJetStream(log, { servers: server.url, stream: name, subject: name.toLowerCase(), maxInFlight: WINDOW, onEvent: () => {} });
  while (bridge.stats().acknowledged < n) await pause(1);
  const ms = performance.now() - t0;
  await bridge.close();
  log.close();
  return n / (ms / 1000);
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
    results[`push-${size}`] = { bridge, awaitEach: awaited, pipelined: piped, n, nAwait };
    const k = (r: number): string => `${(r / 1000).toFixed(1)} k/s`;
    rows.push([`${size} B`, k(bridge), k(awaited), k(piped), fmtRatio(bridge / awaited), fmtRatio(bridge / piped)]);
  }
  printTable("push rate (records/s into the stream, acked)", ["record", "memmap push bridge", "nats.js await each publish", "nats.js pipelined (1024)", "vs await", "vs pipelined"], rows);
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
