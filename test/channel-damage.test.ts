/**
 * Damaged channel files and hostile special files (issue 10 items 14–17):
 * the consumer never delivers a message that was not sent, inspection of a
 * FIFO does not hang, a 4 GiB channel file works, and a waiter count left by
 * killed producers is repaired.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { createChannel, inspectChannel, mapFile, MmapError, openChannel } from "../src/index.ts";
import * as L from "../src/channel/layout.ts";
import { finished, firstLine, killChildren, spawnFixture } from "./helpers/spawn.ts";

let dir: string;
before(() => (dir = makeTmpDir("memmap-chdmg-")));
after(() => {
  killChildren();
  removeTmpDir(dir);
});

/** Damages the file with an ordinary write, as a stray process or a bad disk would. */
function writeAt(file: string, position: number, bytes: Uint8Array): void {
  const fd = fs.openSync(file, "r+");
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, position);
  } finally {
    fs.closeSync(fd);
  }
}

describe("a damaged multi-producer ring (item 16)", () => {
  test("a zeroed length word: the payload behind it is never delivered as a message", () => {
    const file = path.join(dir, "zeroed-length");
    const ch = createChannel(file, { capacity: 4096, producers: "multi" });
    const producer = openChannel(file);
    producer.send("first");
    // A legitimate message whose payload happens to look like a frame: length 16, type DATA, 8 bytes.
    const inner = new Uint8Array(16);
    const view = new DataView(inner.buffer);
    view.setInt32(0, 16, true);
    view.setUint16(4, 1, true);
    inner.set(new TextEncoder().encode("PHANTOM!"), 8);
    producer.send(inner);
    producer.send("third");
    producer.close(); // no producer alive: nothing accounts for a hole in the ring
    const firstFrame = (8 + 5 + 7) & -8;
    writeAt(file, L.HEADER_LENGTH + firstFrame, new Uint8Array(4)); // the second frame's length word
    assert.equal(new TextDecoder().decode(ch.receive({ timeout: 1000 })), "first");
    let delivered: string | undefined;
    try {
      delivered = new TextDecoder().decode(ch.receive({ timeout: 2000 }));
    } catch (error) {
      assert.ok(error instanceof MmapError, String(error));
      assert.equal(error.code, "ERR_CORRUPT");
      assert.match(error.message, /frame length 0 at position 16/);
    }
    assert.equal(delivered, undefined, `delivered a message that was never sent: ${JSON.stringify(delivered)}`);
    ch.close();
  });

  test("a claim abandoned before its header was written is still sealed when the ring past it is known", () => {
    const file = path.join(dir, "dead-claim-zeros");
    const ch = createChannel(file, { capacity: 4096, producers: "multi" });
    const producer = openChannel(file);
    producer.send("first");
    producer.send("second");
    producer.close();
    // Zero the whole second frame, as a producer killed between taking its claim and writing its header leaves it.
    writeAt(file, L.HEADER_LENGTH + 16, new Uint8Array(16));
    assert.equal(new TextDecoder().decode(ch.receive({ timeout: 1000 })), "first");
    // The zeros reach the tail: a dead claim, sealed, and the channel goes on.
    assert.equal(ch.tryReceive(), null);
    const deadline = performance.now() + 5000;
    while (ch.abortedFrames === 0 && performance.now() < deadline) {
      assert.equal(ch.tryReceive(), null);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
    assert.equal(ch.abortedFrames, 1);
    const again = openChannel(file);
    again.send("after");
    assert.equal(new TextDecoder().decode(ch.receive({ timeout: 1000 })), "after");
    again.close();
    ch.close();
  });
});

/** A message whose first 16 payload bytes look like a frame: length 16, type DATA, "PHANTOM!". */
function decoyMessage(length: number): Uint8Array {
  const inner = new Uint8Array(length);
  const view = new DataView(inner.buffer);
  view.setInt32(0, 16, true);
  view.setUint16(4, 1, true);
  inner.set(new TextEncoder().encode("PHANTOM!"), 8);
  return inner;
}

/** Every receive until the ring is empty or throws: what was delivered, and the error. */
function receiveAll(ch: ReturnType<typeof openChannel>): { delivered: string[]; error: unknown } {
  const delivered: string[] = [];
  try {
    for (let m = ch.tryReceive(); m; m = ch.tryReceive()) delivered.push(new TextDecoder().decode(m));
  } catch (error) {
    return { delivered, error };
  }
  return { delivered, error: undefined };
}

describe("every frame carries a check of its length (issue 10, stress trial #2206)", () => {
  for (const producers of ["single", "multi"] as const) {
    test(`${producers} producer: a length word flipped to a smaller plausible value, with a frame header inside the payload: ERR_CORRUPT, nothing invented`, () => {
      const file = path.join(dir, `flipped-length-${producers}`);
      const ch = createChannel(file, { capacity: 4096, producers });
      ch.send("first");
      ch.send(decoyMessage(100));
      ch.send("third");
      const firstFrame = (8 + 5 + 7) & -8;
      // 108 → 8: the frame now ends where the decoy header starts (and is an empty message itself).
      writeAt(file, L.HEADER_LENGTH + firstFrame, new Uint8Array(new Int32Array([8]).buffer));
      // Inspection walks the frames too: with one producer nothing else moves them, so a failed check is damage.
      if (producers === "single") assert.throws(() => inspectChannel(file), { code: "ERR_CORRUPT" });
      const { delivered, error } = receiveAll(ch);
      assert.deepEqual(delivered, ["first"], "only the message before the damage");
      assert.ok(error instanceof MmapError, `a coded error, not ${String(error)}`);
      assert.equal(error.code, "ERR_CORRUPT");
      assert.match(error.message, new RegExp(`${file}.*position ${firstFrame}\\b`));
      // It stays there: the next receive reports the same, and still delivers nothing.
      assert.throws(() => ch.tryReceive(), { code: "ERR_CORRUPT" });
      ch.close();
    });

    test(`${producers} producer, checksum: true: a flipped bit inside a message is ERR_CORRUPT, not delivered (without it, it is delivered as it is)`, () => {
      for (const checksum of [true, false]) {
        const file = path.join(dir, `flipped-payload-${producers}-${checksum}`);
        const ch = createChannel(file, { capacity: 4096, producers, checksum });
        assert.equal(ch.checksum, checksum);
        assert.equal(ch.maxMessageLength, checksum ? 4096 - 12 : 4096 - 8);
        ch.send("first");
        ch.send("second");
        ch.send("third");
        const secondPayload = ((ch.stats().used / 3) | 0) + (checksum ? 12 : 8); // three frames of 24 (32 with the CRC)
        const bytes = fs.readFileSync(file).subarray(L.HEADER_LENGTH + secondPayload, L.HEADER_LENGTH + secondPayload + 1);
        writeAt(file, L.HEADER_LENGTH + secondPayload, new Uint8Array([bytes[0]! ^ 0x04]));
        const { delivered, error } = receiveAll(ch);
        if (checksum) {
          assert.deepEqual(delivered, ["first"]);
          assert.ok(error instanceof MmapError && error.code === "ERR_CORRUPT", String(error));
          assert.match(error.message, /fails its checksum/);
        } else assert.deepEqual(delivered, ["first", "wecond", "third"]);
        ch.close();
      }
    });

    test(`${producers} producer, checksum: true: messages of every size, batches, claims committed shorter and aborted, across many laps`, () => {
      const file = path.join(dir, `checksum-laps-${producers}`);
      const ch = createChannel(file, { capacity: 4096, producers, checksum: true });
      const message = (i: number): Uint8Array => new Uint8Array((i * 37) % 600).fill(i & 0xff);
      let sent = 0;
      let received = 0;
      const expectNext = (m: Uint8Array): void => {
        assert.deepEqual(m, message(received), `message ${received}`);
        received++;
      };
      while (sent < 2000) {
        const step = sent % 4;
        if (step === 0) {
          const batch = [message(sent), message(sent + 1), message(sent + 2)];
          sent += ch.trySendBatch(batch);
        } else if (step === 1) {
          const view = ch.tryClaim(700);
          if (view) {
            view.set(message(sent));
            ch.commit(message(sent).length);
            sent++;
          }
        } else if (step === 2) {
          if (ch.tryClaim(100)) ch.abortClaim();
          if (ch.trySend(message(sent))) sent++;
        } else if (ch.trySend(message(sent))) sent++;
        ch.drain(expectNext, 2);
      }
      for (let m = ch.tryReceive(); m; m = ch.tryReceive()) expectNext(m);
      assert.equal(received, sent);
      assert.equal(inspectChannel(file).checksum, true);
      ch.close();
    });
  }
});

describe("special files (item 14)", () => {
  const hangGuard = { timeout: 30_000 };
  test("inspectChannel() and openChannel() of a FIFO: ENODEV at once, no hang", hangGuard, () => {
    const fifo = path.join(dir, "fifo");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
    // In a child process: the old code blocked in open(2) forever, which the parent's timeout turns into a failure.
    const script = `
      import { inspectChannel, openChannel } from ${JSON.stringify(path.resolve("src/index.ts"))};
      const codes = [];
      for (const f of [() => inspectChannel(${JSON.stringify(fifo)}), () => openChannel(${JSON.stringify(fifo)})])
        try { f(); codes.push("opened"); } catch (e) { codes.push(e.code + " " + e.path); }
      console.log(JSON.stringify(codes));`;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { timeout: 20_000, encoding: "utf8" });
    assert.equal(run.signal, null, `the child hung (killed by ${run.signal}): ${run.stderr}`);
    assert.deepEqual(JSON.parse(run.stdout), [`ENODEV ${fifo}`, `ENODEV ${fifo}`]);
  });

  test("memmap channel stat <fifo> exits with ENODEV, no hang", hangGuard, () => {
    const fifo = path.join(dir, "fifo-cli");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
    const run = spawnSync(process.execPath, ["--import", "tsx", path.resolve("src/cli/main.ts"), "channel", "stat", fifo], {
      timeout: 20_000,
      encoding: "utf8",
    });
    assert.equal(run.signal, null, `the CLI hung (killed by ${run.signal})`);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr + run.stdout, /ENODEV/);
  });

  test("a directory and /dev/null are refused the same way", () => {
    for (const p of [dir, "/dev/null"]) {
      assert.throws(() => inspectChannel(p), (e) => e instanceof MmapError && (e.code === "ENODEV" || e.code === "EISDIR"));
      assert.throws(() => openChannel(p), (e) => e instanceof MmapError && (e.code === "ENODEV" || e.code === "EISDIR"));
    }
  });
});

describe("a channel file of 4 GiB (item 15)", () => {
  for (const extra of [0, 4096]) {
    test(`a ring in a sparse file of 4 GiB${extra ? ` + ${extra} B` : ""}: send, receive, inspect`, () => {
      const file = path.join(dir, `big-${extra}`);
      createChannel(file, { capacity: 4096, producers: "multi" }).close();
      fs.truncateSync(file, 2 ** 32 + extra); // sparse: no disk space used
      const ch = openChannel(file);
      try {
        ch.send("hello");
        assert.equal(new TextDecoder().decode(ch.receive({ timeout: 1000 })), "hello");
        assert.equal(inspectChannel(file).capacity, 4096);
        assert.equal(ch.stats().producersWaiting, 0);
      } finally {
        ch.close();
        fs.rmSync(file);
      }
    });
  }
});

describe("producers SIGKILLed while waiting for room (item 17)", () => {
  /** The raw space-waiter count in the file (stats() reports 0 when no producer is alive). */
  function rawWaiters(file: string): number {
    const m = mapFile(file);
    try {
      return new Int32Array(m.buffer)[L.SPACE_WAITERS_OFFSET / 4]!;
    } finally {
      m.close();
    }
  }

  async function waitingProducers(file: string, n: number) {
    const children = [];
    for (let i = 0; i < n; i++) {
      // Fills the ring (the first one does), then waits for room in a send that never gets any.
      const child = spawnFixture("channel-peer.ts", ["backpressure", file, "512", "1"]);
      children.push({ child, done: finished(child) });
      await firstLine(child);
    }
    for (let i = 0; i < 1000 && rawWaiters(file) !== n; i++) await sleep(10);
    assert.equal(rawWaiters(file), n, `all ${n} producers counted as waiting`);
    return children;
  }

  test("three waiters killed, no producer alive: stats() says 0 at once, and the consumer's next release clears the count", async () => {
    const file = path.join(dir, "dead-waiters");
    const ch = createChannel(file, { capacity: 4096, producers: "multi" });
    assert.equal(ch.tryReceive(), null); // the consumer is attached, and reads nothing yet
    const children = await waitingProducers(file, 3);
    for (const { child } of children) child.kill("SIGKILL");
    for (const { done } of children) await done;
    assert.equal(rawWaiters(file), 3, "dead waiters cannot take themselves off the count");
    assert.equal(ch.stats().producersWaiting, 0, "no producer alive: none waiting");
    assert.equal(inspectChannel(file).producersWaiting, 0);
    assert.ok(ch.drain(() => {}) > 0);
    assert.equal(rawWaiters(file), 0, "the consumer repaired the count (it would ring on every release otherwise)");
    ch.close();
  });

  test("three waiters killed while another producer lives on: stats() says 0, and the consumer's releases clear the count", async () => {
    const file = path.join(dir, "dead-waiters-live-producer");
    const ch = createChannel(file, { capacity: 4096, producers: "multi" });
    assert.equal(ch.tryReceive(), null);
    assert.equal(ch.trySend("x"), true); // this handle is a producer too, alive and never waiting
    const children = await waitingProducers(file, 3);
    for (const { child } of children) child.kill("SIGKILL");
    for (const { done } of children) await done;
    assert.equal(ch.stats().producersWaiting, 0, "a live producer, none waiting");
    assert.equal(inspectChannel(file).producersWaiting, 0);
    const deadline = performance.now() + 30_000; // a hang guard only: the consumer checks the count now and then
    while (rawWaiters(file) !== 0 && performance.now() < deadline) {
      ch.drain(() => {});
      ch.trySend("y");
      await sleep(5);
    }
    assert.equal(rawWaiters(file), 0, "the consumer repaired the count (it would ring on every release otherwise)");
    ch.close();
  });

  test("two of three waiters killed: the live one is still woken and finishes its send", async () => {
    const file = path.join(dir, "dead-and-live-waiters");
    const ch = createChannel(file, { capacity: 4096, producers: "multi" });
    assert.equal(ch.tryReceive(), null);
    const children = await waitingProducers(file, 3);
    for (const { child } of children.slice(0, 2)) child.kill("SIGKILL");
    for (const { done } of children.slice(0, 2)) await done;
    const live = children[2]!;
    const deadline = performance.now() + 30_000; // a hang guard only
    let exited = false;
    void live.done.then(() => (exited = true));
    while (!exited && performance.now() < deadline) {
      ch.drain(() => {});
      await sleep(5);
    }
    const result = await live.done;
    assert.equal(result.code, 0, `the live producer finished: ${result.stderr}`);
    assert.match(result.stdout, /"sent":1/);
    ch.close();
  });
});
