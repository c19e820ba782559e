/**
 * The push bridge against a real nats-server: exactly once, in log order,
 * byte-identical — across restarts and 20 SIGKILLs of the bridge while a
 * writer appends, with the default duplicate_window and with one shorter
 * than any outage.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { openLog } from "../src/log/log.ts";
import { bridgeToJetStream } from "../src/bridge/push.ts";
import { NatsServer, skipNats, tmpDir } from "./fixtures/bridge-server.ts";
import { readStream, record, streamCount } from "./fixtures/bridge-stream.ts";
import { killChildren, killLoop, spawnChild } from "./fixtures/bridge-kill.ts";

const RECORDS = Number(process.env.BRIDGE_RECORDS ?? 20_000);
const KILLS = Number(process.env.BRIDGE_KILLS ?? 20);
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean | Promise<boolean>, guardMs = 120_000): Promise<void> {
  const deadline = Date.now() + guardMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`hang guard: ${what}`);
    await pause(50);
  }
}

/** The stream holds record(0..n-1) of one log on `subject`, each once, in order, byte-identical. */
async function checkStream(url: string, stream: string, subject: string, n: number, id?: string): Promise<void> {
  const msgs = await readStream(url, stream, subject);
  assert.equal(msgs.length, n, `the stream holds ${msgs.length} messages, expected ${n}`);
  for (let i = 0; i < n; i++) {
    const m = msgs[i]!;
    assert.equal(m.seq, i, `message ${m.streamSeq} carries Memmap-Seq ${m.seq}, expected ${i}`);
    if (id !== undefined) assert.equal(m.log, id);
    assert.equal(Buffer.from(m.data).toString(), record(i), `record ${i} differs`);
  }
}

test("push: records reach the stream once, in order; a restart resumes from the cursor", { skip: skipNats }, async () => {
  const server = await NatsServer.start();
  const dir = tmpDir("push");
  try {
    const log = openLog(path.join(dir, "log"), { create: true, segmentSize: 1 << 20 });
    for (let i = 0; i < 3000; i++) log.append(record(i));
    const push = await bridgeToJetStream(log, { servers: server.url, stream: "EVENTS", subject: "events.a", maxInFlight: 64, onEvent: () => {} });
    await until("3000 acks", () => push.stats().acknowledged === 3000);
    for (let i = 3000; i < 3500; i++) log.append(record(i));
    await until("3500 acks", () => push.stats().acknowledged === 3500);
    await push.close();
    const s = push.stats();
    assert.equal(s.lastSeq, 3499);
    assert.equal(s.lagRecords, 0);
    assert.equal(log.cursors().find((c) => c.name === "jetstream")?.seq, 3500);
    assert.match(fs.readFileSync(path.join(dir, "log", "bridge.id"), "utf8"), /^[0-9a-f]{32} \d+\n$/);

    // Move the cursor back (as if the bridge died between the acks and the commit): nothing is sent twice.
    log.reader({ name: "jetstream" }).commit(1000);
    for (let i = 3500; i < 4000; i++) log.append(record(i));
    const again = await bridgeToJetStream(log, { servers: server.url, stream: "EVENTS", subject: "events.a", onEvent: () => {} });
    await until("500 more acks", () => again.stats().acknowledged === 500);
    await again.close();
    assert.equal(again.stats().published, 500, "only the new records were published");
    await checkStream(server.url, "EVENTS", "events.a", 4000, push.logId);
    log.close();
  } finally {
    await killChildren();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("push: the window of un-acked publishes is bounded by maxInFlight", { skip: skipNats }, async () => {
  const server = await NatsServer.start();
  const dir = tmpDir("push");
  try {
    const log = openLog(path.join(dir, "log"), { create: true, segmentSize: 1 << 20 });
    for (let i = 0; i < 2000; i++) log.append(record(i));
    const push = await bridgeToJetStream(log, { servers: server.url, stream: "W", subject: "w", maxInFlight: 8, onEvent: () => {} });
    let worst = 0;
    await until("2000 acks", () => {
      const s = push.stats();
      worst = Math.max(worst, s.published - s.acknowledged);
      return s.acknowledged === 2000;
    });
    await push.close();
    assert.ok(worst <= 8, `at most 8 publishes in flight, saw ${worst}`);
    await checkStream(server.url, "W", "w", 2000);
    log.close();
  } finally {
    await killChildren();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

for (const dupMs of [undefined, 100]) {
  const what = dupMs === undefined ? "the default duplicate_window" : `a duplicate_window of ${dupMs} ms (shorter than any outage)`;
  test(`push: ${KILLS} SIGKILLs of the bridge while a writer appends ${RECORDS} records, with ${what}: each record once, in order`, { skip: skipNats, timeout: 600_000 }, async () => {
    const server = await NatsServer.start();
    const dir = tmpDir("push-kill");
    const logDir = path.join(dir, "log");
    try {
      const writer = spawnChild(["writer", logDir, String(RECORDS), String(KILLS * 1200)]);
      await until("the log exists", () => fs.existsSync(path.join(logDir, "log.meta")));
      const args = ["push", logDir, server.url, "KILLS", "kills.a", ...(dupMs === undefined ? [] : [String(dupMs)])];
      const { duringStart } = await killLoop(KILLS, args);
      await writer.waitFor("done");
      const last = spawnChild(args);
      await last.waitFor("started");
      await until(`the stream holds ${RECORDS} messages`, async () => (await streamCount(server.url, "KILLS")) >= RECORDS, 300_000);
      last.proc.kill("SIGTERM");
      await last.exited;
      await checkStream(server.url, "KILLS", "kills.a", RECORDS);
      assert.equal(await streamCount(server.url, "KILLS"), RECORDS);
      console.log(`# ${KILLS} kills (${duringStart} during start-up); final bridge: ${last.out.trim().split("\n").pop()}`);
    } finally {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
