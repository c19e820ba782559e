/**
 * `memmap bridge push|pull` against a real nats-server: they run until
 * SIGTERM and print a final line of counts (or --json stats); bad input is
 * one line on stderr and exit 1.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { openLog } from "../src/log/log.ts";
import { decodeBridgedRecord } from "../src/bridge/record.ts";
import { runCli, startCli } from "./fixtures/cli-run.ts";
import { NatsServer, freePort, pause, skipNats, tmpDir, until } from "./fixtures/bridge-server.ts";
import { readStream, record } from "./fixtures/bridge-stream.ts";

function collect(child: ReturnType<typeof startCli>): { out: string; err: string; exited: Promise<number | null> } {
  const c = { out: "", err: "", exited: new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code))) };
  child.stdout!.on("data", (d: Buffer) => (c.out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (c.err += d.toString()));
  return c;
}

test("memmap bridge push and pull: run until SIGTERM, then one line of counts (pull: --json stats)", { skip: skipNats, timeout: 300_000 }, async () => {
  const server = await NatsServer.start();
  const dir = tmpDir("bridge-cli");
  const children: ReturnType<typeof startCli>[] = [];
  try {
    const logDir = path.join(dir, "log");
    const log = openLog(logDir, { create: true, segmentSize: 1 << 20 });
    for (let i = 0; i < 1000; i++) log.append(record(i));
    log.close();
    const push = startCli(["bridge", "push", logDir, "--server", server.url, "--stream", "CLI", "--subject", "cli.a"]);
    children.push(push);
    const p = collect(push);
    await until("pushed", async () => (await readStream(server.url, "CLI", "cli.a").catch(() => [])).length === 1000);
    push.kill("SIGTERM");
    assert.equal(await p.exited, 0, p.err);
    assert.match(p.out, /^pushed: 1,?000 records acknowledged \(1,?000 publishes\), last seq 999, lag 0, 0 reconnects\n$/);

    const mirrorDir = path.join(dir, "mirror");
    const pull = startCli(["bridge", "pull", mirrorDir, "--server", server.url, "--stream", "CLI", "--consumer", "b", "--json"]);
    children.push(pull);
    const q = collect(pull);
    await until("pulled", () => {
      try {
        const m = openLog(mirrorDir, { readOnly: true });
        try {
          return m.nextSeq === 1000;
        } finally {
          m.close();
        }
      } catch {
        return false;
      }
    });
    pull.kill("SIGTERM");
    assert.equal(await q.exited, 0, q.err);
    const stats = JSON.parse(q.out) as { appended: number; lastSeq: number };
    assert.equal(stats.appended, 1000);
    assert.equal(stats.lastSeq, 1000);
    const mirror = openLog(mirrorDir, { readOnly: true });
    const reader = mirror.reader();
    for (let i = 0; i < 1000; i++) assert.equal(Buffer.from(decodeBridgedRecord(reader.next()!.data).payload).toString(), record(i));
    mirror.close();
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("memmap bridge: a missing log, a wrong URL, a stream that does not take the subject, no server: one line, exit 1", { skip: skipNats, timeout: 120_000 }, async () => {
  const server = await NatsServer.start();
  const dir = tmpDir("bridge-cli-bad");
  try {
    const logDir = path.join(dir, "log");
    openLog(logDir, { create: true, segmentSize: 1 << 20 }).close();
    const cases: [string[], RegExp][] = [
      [["bridge", "push", path.join(dir, "nope"), "--server", server.url, "--stream", "S", "--subject", "s"], /no such directory/],
      [["bridge", "push", logDir, "--server", "http://localhost:1", "--stream", "S", "--subject", "s"], /must use nats:\/\/ or tls:\/\//],
      [["bridge", "pull", path.join(dir, "m"), "--server", server.url, "--stream", "MISSING", "--consumer", "c"], /no JetStream stream 'MISSING'/],
      [["bridge", "push", logDir, "--server", `nats://127.0.0.1:${await freePort()}`, "--stream", "S", "--subject", "s", "--connect-timeout", "1500"], /could not reach NATS/],
    ];
    // A stream that takes other subjects.
    const nc = await connect({ servers: server.url });
    await (await jetstreamManager(nc)).streams.add({ name: "OTHER", subjects: ["other.>"] });
    await nc.close();
    cases.push([["bridge", "push", logDir, "--server", server.url, "--stream", "OTHER", "--subject", "events.a"], /does not take subject 'events.a'/]);
    for (const [args, pattern] of cases) {
      const r = await runCli(args, { timeout: 60_000 });
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      const lines = r.stderr.trim().split("\n").filter((l) => !l.includes("cannot reach NATS"));
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^memmap: /);
      assert.match(lines[0]!, pattern);
    }
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
