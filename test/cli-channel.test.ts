/**
 * `memmap channel stat`: a live channel's header as text and JSON, with a
 * real consumer process asleep in receive().
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { createChannel, inspectChannel } from "../src/index.ts";
import { oneLine, root, runCli, tempDir, waitForOutput } from "./fixtures/cli-run.ts";

const { dir, remove } = tempDir();
after(remove);

interface StatJson {
  file: string;
  capacity: number;
  producers: string;
  messages: number;
  used: number;
  free: number;
  producerPosition: number;
  consumerPosition: number;
  consumerWaiting: boolean;
  consumerAttached: boolean;
  consumerPid?: number;
  producerPids: number[];
  ended: boolean;
}

test("channel stat shows capacity, fill, positions and a consumer asleep waiting", async () => {
  const file = path.join(dir, "jobs.chan");
  const ch = createChannel(file, { capacity: 64 * 1024 });
  try {
    for (let i = 0; i < 10; i++) ch.send(`job ${i}`); // 8-byte header + 5 bytes, padded to 16 each

    const [text, json] = await Promise.all([runCli(["channel", "stat", file]), runCli(["channel", "stat", "--json", file])]);
    assert.equal(json.code, 0, json.stderr);
    const s = JSON.parse(json.stdout) as StatJson;
    assert.equal(s.file, file);
    assert.equal(s.capacity, 65536);
    assert.equal(s.producers, "single");
    assert.equal(s.messages, 10);
    assert.equal(s.used, 160);
    assert.equal(s.free, 65536 - 160);
    assert.equal(s.producerPosition, 160);
    assert.equal(s.consumerPosition, 0);
    assert.deepEqual(s.producerPids, [process.pid]);
    assert.equal(s.consumerAttached, false);
    assert.equal(s.consumerWaiting, false);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^Channel ${file} \\(format version \\d+\\)\\n`));
    assert.match(text.stdout, /^ {2}capacity +64\.0 KiB \(largest message 65,528 bytes\)$/m);
    assert.match(text.stdout, /^ {2}fill +160 bytes used \(0\.2%\), 65,376 free$/m);
    assert.match(text.stdout, /^ {2}messages +10 waiting to be received$/m);
    assert.match(text.stdout, new RegExp(`^ {2}producers +single; live: pid ${process.pid}$`, "m"));
    assert.match(text.stdout, /^ {2}consumer +none attached$/m);

    // A consumer in another process takes the messages and sleeps in receive().
    const consumer = spawn(process.execPath, ["--import", "tsx", path.join(root, "test", "fixtures", "cli-channel-consumer.ts"), file], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      await waitForOutput(consumer, /drained 10\n/);
      const deadline = Date.now() + 10_000;
      while (!inspectChannel(file).consumerWaiting && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const waiting = await runCli(["channel", "stat", "--json", file]);
      const w = JSON.parse(waiting.stdout) as StatJson;
      assert.equal(w.consumerAttached, true);
      assert.equal(w.consumerPid, consumer.pid);
      assert.equal(w.consumerWaiting, true);
      assert.equal(w.messages, 0);
      assert.equal(w.consumerPosition, 160);
      ch.send("wake up");
      const exited = await new Promise<number | null>((resolve) => consumer.on("exit", resolve));
      assert.equal(exited, 0);
    } finally {
      consumer.kill("SIGKILL");
    }
  } finally {
    ch.close();
  }
});

test("channel stat: not a channel, a missing file, no path", async () => {
  const notChannel = path.join(dir, "plain.bin");
  fs.writeFileSync(notChannel, Buffer.alloc(8192, 1));
  const missing = path.join(dir, "missing.chan");
  const [bad, gone, none] = await Promise.all([
    runCli(["channel", "stat", notChannel]),
    runCli(["channel", "stat", missing]),
    runCli(["channel", "stat"]),
  ]);
  assert.equal(bad.code, 1);
  assert.match(oneLine(bad.stderr), new RegExp(`^memmap: ${notChannel}: not a valid memmap channel`));
  assert.equal(gone.code, 1);
  assert.equal(oneLine(gone.stderr), `memmap: ${missing}: no such file or directory (ENOENT)`);
  assert.equal(none.code, 2);
  assert.match(oneLine(none.stderr), /^memmap: error: missing required argument 'path'/);
});

test("channel stat says when every message carries a CRC32C (checksum: true)", async () => {
  const file = path.join(dir, "summed.chan");
  createChannel(file, { capacity: 64 * 1024, checksum: true }).close();
  const [text, json] = await Promise.all([runCli(["channel", "stat", file]), runCli(["channel", "stat", "--json", file])]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^ {2}capacity +64\.0 KiB \(largest message 65,524 bytes; a CRC32C on each\)$/m);
  assert.equal((JSON.parse(json.stdout) as { checksum: boolean }).checksum, true);
});
