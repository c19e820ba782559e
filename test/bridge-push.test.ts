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
import { bridgeToJetStream, type PushBridgeStats } from "../src/bridge/push.ts";
import { NatsServer, pause, skipNats, tmpDir, until, withServer } from "./fixtures/bridge-server.ts";
import { readStream, record, streamCount } from "./fixtures/bridge-stream.ts";
import { killChildren, killLoop, spawnChild } from "./fixtures/bridge-kill.ts";

const RECORDS = Number(process.env.BRIDGE_RECORDS ?? 20_000);
const KILLS = Number(process.env.BRIDGE_KILLS ?? 20);
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

test("push: at most maxInFlight publishes are in flight, also while nats-server is frozen (SIGSTOP); the log keeps the rest", { skip: skipNats }, async () => {
  await withServer("push", async (server, dir) => {
    const log = openLog(path.join(dir, "log"), { create: true, segmentSize: 1 << 20 });
    for (let i = 0; i < 2000; i++) log.append(record(i));
    // A publish timeout longer than the test: the frozen server's publishes stay in flight (not failed and retried).
    const push = await bridgeToJetStream(log, { servers: server.url, stream: "W", subject: "w", maxInFlight: 8, publishTimeoutMs: 600_000, onEvent: () => {} });
    let worst = 0;
    const look = (): PushBridgeStats => {
      const s = push.stats();
      worst = Math.max(worst, s.inFlight, s.published - s.acknowledged);
      return s;
    };
    await until("500 acks", () => look().acknowledged >= 500);
    const atFreeze = look();
    server.signal("SIGSTOP");
    let frozen: PushBridgeStats;
    try {
      // 3000 more records while the server cannot answer: the bridge publishes no more than its window.
      for (let i = 2000; i < 5000; i++) {
        log.append(record(i));
        if (i % 100 === 0) {
          look();
          await pause(1);
        }
      }
      for (let i = 0; i < 20; i++) {
        look();
        await pause(10);
      }
      frozen = look();
    } finally {
      server.signal("SIGCONT");
    }
    // Only what was published before the freeze can have been acknowledged; the log holds everything after it.
    assert.ok(frozen.acknowledged <= atFreeze.acknowledged + 8, `acknowledged ${frozen.acknowledged} while frozen, at most ${atFreeze.acknowledged} + 8`);
    assert.ok(frozen.lagRecords >= 5000 - frozen.acknowledged, `the cursor did not pass unacknowledged records (lag ${frozen.lagRecords})`);
    await until("5000 acks", () => look().acknowledged === 5000);
    await push.close();
    assert.ok(worst <= 8, `at most 8 publishes in flight, saw ${worst}`);
    assert.equal(push.stats().published, 5000, "nothing was published twice");
    await checkStream(server.url, "W", "w", 5000);
    log.close();
  });
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
