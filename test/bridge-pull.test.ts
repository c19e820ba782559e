/**
 * The pull bridge against a real nats-server: each stream message appended
 * to the local log once, in stream order — across restarts and 20 SIGKILLs
 * of the bridge while messages flow.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { openLog, type Log } from "../src/log/log.ts";
import { bridgeFromJetStream, lastApplied } from "../src/bridge/pull.ts";
import { decodeBridgedRecord } from "../src/bridge/record.ts";
import { NatsServer, pause, skipNats, tmpDir, until } from "./fixtures/bridge-server.ts";
import { record } from "./fixtures/bridge-stream.ts";
import { killChildren, killLoop, spawnChild } from "./fixtures/bridge-kill.ts";

const RECORDS = Number(process.env.BRIDGE_RECORDS ?? 20_000);
const KILLS = Number(process.env.BRIDGE_KILLS ?? 20);
/** The log holds stream messages 1..n (published as record(0..n-1)), each once, in order. */
function checkMirror(log: Log, n: number): void {
  const reader = log.reader();
  let i = 0;
  for (let r = reader.next(); r !== null; r = reader.next(), i++) {
    const b = decodeBridgedRecord(r.data);
    assert.equal(b.streamSeq, i + 1, `log record ${r.seq} holds stream message ${b.streamSeq}, expected ${i + 1}`);
    assert.equal(Buffer.from(b.payload).toString(), record(i), `message ${i + 1} differs`);
  }
  reader.close();
  assert.equal(i, n, `the log holds ${i} messages, expected ${n}`);
}

test("pull: messages are appended once, in stream order; a restart resumes after the last applied", { skip: skipNats }, async () => {
  const server = await NatsServer.start();
  const dir = tmpDir("pull");
  try {
    const publisher = spawnChild(["publish", server.url, "SRC", "src.a", "3000", "0"]);
    await publisher.waitFor("done");
    const log = openLog(path.join(dir, "mirror"), { create: true, segmentSize: 1 << 20 });
    const pull = await bridgeFromJetStream({ servers: server.url, stream: "SRC", consumer: "host-b", onEvent: () => {} }, log);
    await until("3000 appended", () => pull.stats().appended === 3000);
    await pull.close();
    assert.equal(pull.stats().lastSeq, 3000);
    checkMirror(log, 3000);
    // A restart appends nothing twice.
    const again = await bridgeFromJetStream({ servers: server.url, stream: "SRC", consumer: "host-b", onEvent: () => {} }, log);
    await pause(500);
    assert.equal(again.stats().appended, 0);
    await again.close();
    checkMirror(log, 3000);
    log.close();
  } finally {
    await killChildren();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(`pull: ${KILLS} SIGKILLs of the bridge while ${RECORDS} messages flow: each message once, in stream order`, { skip: skipNats, timeout: 600_000 }, async () => {
  const server = await NatsServer.start();
  const dir = tmpDir("pull-kill");
  const logDir = path.join(dir, "mirror");
  try {
    const publisher = spawnChild(["publish", server.url, "FLOW", "flow.a", String(RECORDS), String(KILLS * 1200)]);
    const args = ["pull", logDir, server.url, "FLOW", "host-b"];
    await publisher.waitFor("created");
    const { duringStart } = await killLoop(KILLS, args);
    await publisher.waitFor("done");
    const last = spawnChild(args);
    await last.waitFor("started");
    await until(`the log holds ${RECORDS} records`, () => {
      let log: Log | undefined;
      try {
        log = openLog(logDir, { readOnly: true });
        return lastApplied(log) >= RECORDS;
      } catch {
        return false; // not created yet
      } finally {
        log?.close();
      }
    }, 300_000);
    last.proc.kill("SIGTERM");
    await last.exited;
    const log = openLog(logDir, { readOnly: true });
    checkMirror(log, RECORDS);
    log.close();
    console.log(`# ${KILLS} kills (${duringStart} during start-up); final bridge: ${last.out.trim().split("\n").pop()}`);
  } finally {
    await killChildren();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
