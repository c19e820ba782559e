/**
 * The bridges when the server goes away, is not there, or the input is
 * wrong: nothing lost across a server SIGKILL and restart; a visible retry
 * and then ERR_TIMEOUT; coded errors for a bad URL, a stream that does not
 * take the subject, a missing stream; ERR_MISSING_DEPENDENCY without the
 * NATS client, while `import "memmap"` still works.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { openLog } from "../src/log/log.ts";
import { bridgeToJetStream } from "../src/bridge/push.ts";
import { bridgeFromJetStream } from "../src/bridge/pull.ts";
import { decodeBridgedRecord } from "../src/bridge/record.ts";
import { MmapError } from "../src/core/errors.ts";
import { NatsServer, freePort, pause, skipNats, tmpDir, until } from "./fixtures/bridge-server.ts";
import { readStream, record } from "./fixtures/bridge-stream.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
function code(expected: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof MmapError, `an MmapError, got ${String(error)}`);
    assert.equal(error.code, expected, error.message);
    return true;
  };
}

test("server SIGKILLed and restarted mid-run: both bridges reconnect and lose nothing", { skip: skipNats, timeout: 600_000 }, async () => {
  const server = await NatsServer.start();
  const dir = tmpDir("bridge-outage");
  const N = 6000;
  try {
    const log = openLog(path.join(dir, "log"), { create: true, segmentSize: 1 << 20 });
    const mirror = openLog(path.join(dir, "mirror"), { create: true, segmentSize: 1 << 20 });
    const events: string[] = [];
    const onEvent = (m: string): void => void events.push(m);
    const push = await bridgeToJetStream(log, { servers: server.url, stream: "OUT", subject: "out.a", publishTimeoutMs: 1000, onEvent });
    const pull = await bridgeFromJetStream({ servers: server.url, stream: "OUT", consumer: "mirror", onEvent }, mirror);
    let n = 0;
    const append = async (to: number): Promise<void> => {
      for (; n < to; n++) {
        log.append(record(n));
        if (n % 100 === 99) await pause(5);
      }
    };
    await append(2000);
    await until("some records pushed", () => push.stats().acknowledged > 500);
    await server.kill();
    await append(4000); // while the server is down: the log keeps them
    await pause(500);
    await server.start();
    await append(N);
    await until("everything pushed", () => push.stats().lastSeq === N - 1);
    await until("everything pulled", () => pull.stats().lastSeq !== null && pull.stats().lastSeq! >= N);
    await push.close();
    await pull.close();
    assert.ok(push.stats().reconnects >= 1 && pull.stats().reconnects >= 1, `reconnects: push ${push.stats().reconnects}, pull ${pull.stats().reconnects}`);
    assert.ok(events.some((e) => /disconnected/.test(e)), "the outage was reported");
    console.log(`# push ${JSON.stringify(push.stats())}; pull ${JSON.stringify(pull.stats())}; notices: ${events.join(" | ")}`);

    const msgs = await readStream(server.url, "OUT", "out.a");
    assert.equal(msgs.length, N);
    msgs.forEach((m, i) => {
      assert.equal(m.seq, i);
      assert.equal(Buffer.from(m.data).toString(), record(i));
    });
    const reader = mirror.reader();
    let i = 0;
    for (let r = reader.next(); r !== null; r = reader.next(), i++) {
      const b = decodeBridgedRecord(r.data);
      assert.equal(Buffer.from(b.payload).toString(), record(i), `mirror record ${i}`);
      assert.equal(b.streamSeq, msgs[i]!.streamSeq);
    }
    assert.equal(i, N);
    log.close();
    mirror.close();
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("server down at start: a visible retry, then ERR_TIMEOUT after connectTimeoutMs", { skip: skipNats }, async () => {
  const dir = tmpDir("bridge-down");
  const url = `nats://127.0.0.1:${await freePort()}`; // nobody listens there
  try {
    const log = openLog(path.join(dir, "log"), { create: true, segmentSize: 1 << 20 });
    const events: string[] = [];
    await assert.rejects(bridgeToJetStream(log, { servers: url, stream: "S", subject: "s", connectTimeoutMs: 2500, onEvent: (m) => void events.push(m) }), code("ERR_TIMEOUT"));
    assert.ok(events.length >= 1 && events.every((e) => /cannot reach NATS .* retrying/.test(e)), events.join("\n"));
    events.length = 0;
    await assert.rejects(bridgeFromJetStream({ servers: url, stream: "S", consumer: "c", connectTimeoutMs: 2500, onEvent: (m) => void events.push(m) }, log), code("ERR_TIMEOUT"));
    assert.ok(events.length >= 1);
    log.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("bad input: a wrong URL, a stream that does not take the subject, a subject of another log, a missing stream", { skip: skipNats }, async () => {
  const server = await NatsServer.start();
  const dir = tmpDir("bridge-bad");
  try {
    const log = openLog(path.join(dir, "log"), { create: true, segmentSize: 1 << 20 });
    const quiet = (): void => {};
    for (const servers of ["http://127.0.0.1:4222", "nats://127.0.0.1:notaport", "nats://", ""])
      await assert.rejects(bridgeToJetStream(log, { servers, stream: "S", subject: "s", onEvent: quiet }), code("ERR_INVALID_ARG"), servers);
    await assert.rejects(bridgeToJetStream(log, { servers: server.url, stream: "bad.name", subject: "s", onEvent: quiet }), code("ERR_INVALID_ARG"));
    await assert.rejects(bridgeToJetStream(log, { servers: server.url, stream: "S", subject: "s.*", onEvent: quiet }), code("ERR_INVALID_ARG"));

    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "OTHER", subjects: ["other.>"] });
    await nc.close();
    await assert.rejects(bridgeToJetStream(log, { servers: server.url, stream: "OTHER", subject: "events.a", onEvent: quiet }), code("ERR_SUBJECT_MISMATCH"));
    await assert.rejects(bridgeToJetStream(log, { servers: server.url, stream: "NEW", subject: "other.x", onEvent: quiet }), code("ERR_SUBJECT_MISMATCH"), "another stream takes the subject");
    await assert.rejects(bridgeToJetStream(log, { servers: server.url, stream: "NOPE", subject: "n", createStream: false, onEvent: quiet }), code("ERR_NO_STREAM"));

    // A subject that already holds another log's messages.
    log.append("one");
    const a = await bridgeToJetStream(log, { servers: server.url, stream: "OTHER", subject: "other.shared", onEvent: quiet });
    await until("pushed", () => a.stats().acknowledged === 1);
    await a.close();
    const log2 = openLog(path.join(dir, "log2"), { create: true, segmentSize: 1 << 20 });
    await assert.rejects(bridgeToJetStream(log2, { servers: server.url, stream: "OTHER", subject: "other.shared", onEvent: quiet }), code("ERR_SUBJECT_MISMATCH"));

    await assert.rejects(bridgeFromJetStream({ servers: server.url, stream: "MISSING", consumer: "c", onEvent: quiet }, log2), code("ERR_NO_STREAM"));
    const ro = openLog(path.join(dir, "log"), { readOnly: true });
    await assert.rejects(bridgeToJetStream(ro, { servers: server.url, stream: "S", subject: "s", onEvent: quiet }), code("ERR_READ_ONLY"));
    ro.close();
    log2.close();
    log.close();
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("without the NATS client installed: ERR_MISSING_DEPENDENCY naming what to install; import of memmap needs no NATS", () => {
  // A resolve hook in a child process hides @nats-io/* as if it were not installed.
  const hook = `data:text/javascript,${encodeURIComponent(`
    import { register } from "node:module";
    register("data:text/javascript,${encodeURIComponent(`export async function resolve(s, c, next) {
      if (s.startsWith("@nats-io/")) { const e = new Error("Cannot find package " + s); e.code = "ERR_MODULE_NOT_FOUND"; throw e; }
      return next(s, c);
    }`)}");`)}`;
  const script = `
    import { mapFile, openLog, bridgeToJetStream, bridgeFromJetStream } from "./src/index.ts";
    const log = openLog(process.argv[1], { create: true, segmentSize: 1 << 20 });
    for (const start of [() => bridgeToJetStream(log, { servers: "nats://127.0.0.1:1", stream: "S", subject: "s" }),
                         () => bridgeFromJetStream({ servers: "nats://127.0.0.1:1", stream: "S", consumer: "c" }, log)]) {
      try { await start(); console.log("no error"); } catch (e) { console.log(e.code + " " + e.message); }
    }
    console.log(typeof mapFile);
    log.close();`;
  const dir = tmpDir("bridge-nodeps");
  try {
    const r = spawnSync(process.execPath, ["--import", hook, "--import", "tsx", "--input-type=module", "-e", script, path.join(dir, "log")], { cwd: root, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 3, r.stdout);
    for (const line of lines.slice(0, 2)) assert.match(line, /^ERR_MISSING_DEPENDENCY .*npm install @nats-io\/transport-node @nats-io\/jetstream/);
    assert.equal(lines[2], "function");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
