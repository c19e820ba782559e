/**
 * Crashes: producers SIGKILLed mid-stream and mid-claim, a consumer killed
 * and replaced, claims abandoned by dead processes, and detecting a peer
 * that is gone.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { setImmediate, setTimeout as sleep } from "node:timers/promises";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { createChannel, mapFile, MmapError, openChannel, type Channel } from "../src/index.ts";
import { FrameType } from "../src/core/framing.ts";
import * as L from "../src/channel/layout.ts";
import { frameCheck } from "../src/channel/file.ts";
import { processStartTime } from "../src/channel/liveness.ts";
import { native } from "../src/core/native.ts";
import { makePool } from "./fixtures/channel-stream.ts";
import { finished, firstLine, killChildren, spawnFixture } from "./helpers/spawn.ts";
import { startWorker } from "./fixtures/core-helpers.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => {
  killChildren();
  removeTmpDir(dir);
});

const pool = makePool(1234);

/** Checks a tagged message (see channel-peer.ts) whole; returns [id, seq]. */
function checkTagged(m: Uint8Array): [number, number] {
  const view = new DataView(m.buffer, m.byteOffset, m.byteLength);
  assert.ok(m.length >= 8, `a ${m.length}-byte message is too short to be whole`);
  const id = view.getUint32(0, true);
  const seq = view.getUint32(4, true);
  const size = m.length - 8;
  const offset = ((id * 2654435761 + seq * 40503) >>> 0) % (pool.length - size);
  assert.ok(Buffer.from(m.buffer, m.byteOffset + 8, size).equals(pool.subarray(offset, offset + size)), `message ${seq} of producer ${id} is not whole`);
  return [id, seq];
}

/**
 * Receives for `ms` milliseconds, checking order per producer id, or until
 * `enough()` holds (then with a 30 s limit).
 */
async function consumeFor(ch: Channel, ms: number, next: Map<number, number>, enough?: () => boolean): Promise<void> {
  const check = (m: Uint8Array): void => {
    const [id, seq] = checkTagged(m);
    assert.equal(seq, next.get(id) ?? 0, `producer ${id}: expected message ${next.get(id) ?? 0}, got ${seq}`);
    next.set(id, seq + 1);
  };
  const until = performance.now() + ms;
  let turns = 0;
  while (enough ? !enough() : performance.now() < until) {
    if (enough && performance.now() > until + 30_000) throw new Error("timed out waiting for messages");
    if (ch.drain(check) > 0) {
      if (++turns % 64 === 0) await setImmediate(); // let child-process events in while messages keep coming
      continue;
    }
    try {
      check(await ch.receiveAsync({ timeout: 20 }));
    } catch (error) {
      if (!(error instanceof MmapError) || (error.code !== "ERR_TIMEOUT" && error.code !== "ERR_PEER_GONE")) throw error;
    }
  }
}

/** A process id that provably belongs to no process any more. */
async function deadPid(): Promise<number> {
  const child = spawnFixture("channel-peer.ts", ["exit-now", "-"]);
  const pid = child.pid!;
  await finished(child);
  assert.equal(processStartTime(pid), undefined);
  return pid;
}

describe("a producer killed mid-stream", () => {
  test("single producer, SIGKILLed 3 times while sending 1 B–16 KiB messages: the consumer sees only whole messages, and each new producer takes over", async () => {
    const file = path.join(dir, "kill-single");
    const ch = createChannel(file, { capacity: 64 * 1024 });
    ch.tryReceive();
    const next = new Map<number, number>();
    for (let run = 0; run < 3; run++) {
      const child = spawnFixture("channel-peer.ts", ["produce-forever", file, String(run), String(16 * 1024)]);
      const done = finished(child);
      await consumeFor(ch, 0, next, () => next.has(run));
      await consumeFor(ch, 60 + Math.random() * 120, next);
      child.kill("SIGKILL");
      const result = await done;
      assert.equal(result.signal, "SIGKILL", result.stderr);
      await consumeFor(ch, 30, next); // whatever it committed before dying
      assert.equal(ch.tryReceive(), null);
      assert.ok((next.get(run) ?? 0) > 0, `run ${run} delivered messages`);
      assert.equal(ch.peerAlive(), false);
    }
    await assert.rejects(ch.receiveAsync({ timeout: 50 }), { code: "ERR_PEER_GONE" });
    assert.equal(ch.stats().used, 0);
    ch.close();
  });

  test("three producers, one SIGKILLed inside a claim 3 times: its claimed frame is sealed as ABORTED and the others' messages keep flowing", async () => {
    const file = path.join(dir, "kill-multi");
    const ch = createChannel(file, { capacity: 128 * 1024, producers: "multi" });
    ch.tryReceive();
    const next = new Map<number, number>();
    // Ids 0 and 1 run throughout; ids 10, 11, … are killed one after the other.
    // (Consuming while they start: a producer waits for room, so its first message may wait for ours.)
    const steady = [0, 1].map((id) => spawnFixture("channel-peer.ts", ["produce-forever", file, String(id), "2000"]));
    await consumeFor(ch, 0, next, () => next.has(0) && next.has(1));
    for (let k = 0; k < 3; k++) {
      const id = 10 + k;
      const victim = spawnFixture("channel-peer.ts", ["produce-forever", file, String(id), String(32 * 1024), "slow"]);
      const done = finished(victim);
      let claimedThird = false; // it has claimed its third message and is filling it (for ~30 ms)
      victim.stdout!.on("data", (d: Buffer) => {
        if (d.toString().includes("claimed 2\n")) {
          claimedThird = true;
          victim.kill("SIGKILL");
        }
      });
      await consumeFor(ch, 0, next, () => claimedThird);
      await done;
      const before = [next.get(0) ?? 0, next.get(1) ?? 0];
      await consumeFor(ch, 150, next);
      assert.equal(next.get(id), 2, `producer ${id}: its two committed messages arrived, whole`);
      assert.equal(ch.abortedFrames, k + 1, "its claimed frame was sealed");
      assert.ok((next.get(0) ?? 0) > before[0]! && (next.get(1) ?? 0) > before[1]!, "the live producers' messages flow past the dead one's claim");
    }
    for (const c of steady) c.kill("SIGKILL");
    await Promise.all(steady.map((c) => finished(c)));
    await consumeFor(ch, 100, next);
    ch.close();
  });
});

// unshare(1) as root: the producer runs in a PID namespace of its own, as in another container sharing /dev/shm.
const unsharePid = ["unshare", "--pid", "--fork", "--kill-child"];
const canUnshare = spawnSync(unsharePid[0]!, [...unsharePid.slice(1), "true"]).status === 0;

test("a producer in another PID namespace, SIGKILLed inside a claim: its frame is sealed, the stream goes on", { skip: !canUnshare && "needs unshare --pid (root)", timeout: 90_000 }, async () => {
  const file = path.join(dir, "other-namespace");
  const ch = createChannel(file, { capacity: 128 * 1024, producers: "multi" });
  ch.tryReceive();
  const next = new Map<number, number>();
  // Its pid (1 in its namespace) means nothing here: only the lock the kernel drops can tell it died.
  const victim = spawnFixture("channel-peer.ts", ["produce-forever", file, "20", String(32 * 1024), "slow"], undefined, unsharePid);
  const done = finished(victim);
  let claimedThird = false;
  victim.stdout!.on("data", (d: Buffer) => {
    if (d.toString().includes("claimed 2\n")) {
      claimedThird = true;
      victim.kill("SIGKILL"); // unshare --kill-child passes it on to the producer
    }
  });
  await consumeFor(ch, 0, next, () => claimedThird);
  await done;
  assert.equal(ch.stats().producerPids.length, 0, "no producer is alive");
  const steady = spawnFixture("channel-peer.ts", ["produce-forever", file, "0", "2000"]);
  await consumeFor(ch, 0, next, () => (next.get(0) ?? 0) > 10);
  assert.equal(next.get(20), 2, "its two committed messages arrived, whole");
  assert.equal(ch.abortedFrames, 1, "its claimed frame was sealed");
  steady.kill("SIGKILL");
  await finished(steady);
  ch.close();
});

test("a worker thread terminated inside a claim: once it is gone its frame is sealed, the stream goes on", async () => {
  const file = path.join(dir, "worker-claim");
  const ch = createChannel(file, { capacity: 8192, producers: "multi" });
  const worker = await startWorker("channel-worker-claim.ts", { file });
  assert.equal(await new Promise((resolve) => worker.once("message", resolve)), "claimed");
  await worker.terminate(); // its process lives on; the thread's open file of the channel must not
  const producer = openChannel(file);
  producer.send("after");
  assert.equal(new TextDecoder().decode(ch.receive({ timeout: 3000 })), "after");
  assert.equal(ch.abortedFrames, 1);
  producer.close();
  ch.close();
});

describe("claims left by dead processes (constructed)", () => {
  /** Claims `bytes` at the tail as producer slot `slot` owned by `pid`, the way a producer does before writing. */
  function fakeClaim(file: string, slot: number, pid: number, bytes: number, header: "none" | "claimed"): number {
    const m = mapFile(file, { access: "write" });
    try {
      const longs = new BigInt64Array(m.buffer, 0, L.HEADER_LENGTH / 8);
      const words = new Int32Array(m.buffer);
      const base = L.slotOffset(slot);
      Atomics.store(words, (base + L.SLOT_PID_OFFSET) >> 2, pid);
      const tail = Atomics.load(longs, L.TAIL_POSITION_OFFSET / 8);
      Atomics.store(words, (base + L.SLOT_CLAIM_LENGTH_OFFSET) >> 2, bytes);
      Atomics.store(longs, (base + L.SLOT_CLAIM_START_OFFSET) / 8, tail);
      Atomics.store(longs, L.TAIL_POSITION_OFFSET / 8, tail + BigInt(bytes));
      const capacity = new DataView(m.buffer).getUint32(L.CAPACITY_OFFSET, true);
      const off = L.HEADER_LENGTH + (Number(tail) % capacity);
      if (header === "claimed") {
        words[(off + 4) >> 2] = FrameType.DATA | (frameCheck(Number(tail), bytes, FrameType.DATA) << 16); // type and check, as a producer writes them
        Atomics.store(words, off >> 2, -bytes);
        new Uint8Array(m.buffer, off + 8, bytes - 8).fill(0xee); // half-written payload
      }
      return Number(tail);
    } finally {
      m.close();
    }
  }

  for (const header of ["none", "claimed"] as const) {
    test(`a claim whose process is gone (${header === "none" ? "killed before its header was written" : "killed mid-payload"}) is sealed; the next message arrives`, async () => {
      const file = path.join(dir, `dead-claim-${header}`);
      const ch = createChannel(file, { capacity: 8192, producers: "multi" });
      const producer = openChannel(file);
      producer.send("before");
      assert.equal(new TextDecoder().decode(ch.receive({ timeout: 1000 })), "before");
      fakeClaim(file, 7, await deadPid(), 256, header);
      producer.send("after");
      const t0 = performance.now();
      assert.equal(new TextDecoder().decode(ch.receive({ timeout: 20_000 })), "after");
      assert.ok(performance.now() - t0 < 10_000, "sealed within a bounded time (a hang guard: busy machines are slow)");
      assert.equal(ch.abortedFrames, 1);
      producer.close();
      ch.close();
    });
  }

  test("a claim whose producer holds its slot's lock is waited for, not sealed", async () => {
    const file = path.join(dir, "live-claim");
    const ch = createChannel(file, { capacity: 8192, producers: "multi" });
    // A live producer: an open file of the channel holding slot 9's lock.
    const holder = fs.openSync(file, "r+");
    assert.equal(native.rangeLock(holder, L.SLOT_LOCK_OFFSET + 9, true), true);
    const start = fakeClaim(file, 9, process.pid, 64, "claimed");
    const producer = openChannel(file);
    producer.send("after");
    await assert.rejects(ch.receiveAsync({ timeout: 150 }), { code: "ERR_TIMEOUT" });
    assert.equal(ch.abortedFrames, 0);
    // Its owner finishes the frame: it arrives, then the next one.
    const m = mapFile(file, { access: "write" });
    const words = new Int32Array(m.buffer);
    const off = L.HEADER_LENGTH + (start % 8192);
    Atomics.store(words, off >> 2, 64);
    m.close();
    assert.equal(ch.receive({ timeout: 1000 }).length, 56);
    assert.equal(new TextDecoder().decode(ch.receive({ timeout: 1000 })), "after");
    fs.closeSync(holder);
    producer.close();
    ch.close();
  });

  test("the same claim, once the lock's open file is closed (its process died), is sealed: the pid proves nothing", async () => {
    const file = path.join(dir, "pid-alive-lock-gone");
    const ch = createChannel(file, { capacity: 8192, producers: "multi" });
    fakeClaim(file, 9, process.pid, 64, "claimed"); // the pid of a live process, but nobody holds the slot
    const producer = openChannel(file);
    producer.send("after");
    assert.equal(new TextDecoder().decode(ch.receive({ timeout: 2000 })), "after");
    assert.equal(ch.abortedFrames, 1);
    producer.close();
    ch.close();
  });
});

describe("a consumer killed mid-stream", () => {
  for (const producers of ["single", "multi"] as const) {
    test(`${producers} producer: a new consumer takes over where the dead one stopped (at most the message in its hands again)`, async () => {
      const file = path.join(dir, `restart-${producers}`);
      const stateFile = path.join(dir, `restart-${producers}.state`);
      fs.writeFileSync(stateFile, Buffer.alloc(8));
      const count = 4000;
      const ch = createChannel(file, { capacity: 64 * 1024, producers });
      const consumer = spawnFixture("channel-peer.ts", ["consume-record", file, stateFile]);
      const consumed = finished(consumer);
      await firstLine(consumer);
      assert.throws(() => ch.tryReceive(), { code: "ERR_BUSY" }, "one consumer at a time");
      const producer = spawnFixture("channel-peer.ts", ["produce-seq", file, String(count)]);
      const produced = finished(producer);
      const state = mapFile(stateFile).view(Int32Array);
      while (Atomics.load(state, 0) < 300) await sleep(5);
      consumer.kill("SIGKILL");
      await consumed;
      const handled = Atomics.load(state, 0); // it handled every message before this one
      let expected = -1;
      for (;;) {
        let m: Uint8Array;
        try {
          m = await ch.receiveAsync({ timeout: 10_000 });
        } catch (error) {
          if (error instanceof MmapError && error.code === "ERR_CLOSED") break;
          throw error;
        }
        const seq = new DataView(m.buffer, m.byteOffset).getUint32(0, true);
        if (expected < 0) {
          assert.ok(seq === handled || seq === handled - 1, `the new consumer starts at ${seq}; the old one had handled up to ${handled - 1}`);
        } else assert.equal(seq, expected);
        expected = seq + 1;
      }
      assert.equal(expected, count, "every message after the takeover arrived");
      assert.equal((await produced).code, 0);
      ch.close();
    });
  }

  test("a consumer that died while zeroing what it had read: the next one finishes the job", () => {
    const file = path.join(dir, "release");
    const ch = createChannel(file, { capacity: 8192, producers: "multi" });
    for (let i = 0; i < 5; i++) ch.send(new Uint8Array(100).fill(i + 1));
    for (let i = 0; i < 2; i++) ch.tryReceive();
    ch.close(); // gives the two back: head = 2 frames
    // Pretend a consumer read the next two and died halfway through zeroing them.
    const m = mapFile(file, { access: "write" });
    const longs = new BigInt64Array(m.buffer, 0, L.HEADER_LENGTH / 8);
    const head = Atomics.load(longs, L.HEAD_POSITION_OFFSET / 8);
    Atomics.store(longs, L.RELEASE_POSITION_OFFSET / 8, head + 2n * 112n);
    new Uint8Array(m.buffer, L.HEADER_LENGTH + Number(head), 112 + 50).fill(0);
    m.close();
    const next = openChannel(file);
    const got = next.receive({ timeout: 1000 });
    assert.equal(got[0], 5, "continues after the released frames");
    assert.equal(next.tryReceive(), null);
    next.close();
  });
});

describe("peer liveness", () => {
  test("a producer SIGKILLed while waiting for room leaves no waiter behind once the next producer attaches", async () => {
    const file = path.join(dir, "dead-waiter");
    const ch = createChannel(file, { capacity: 4096, producers: "multi" });
    ch.tryReceive(); // a consumer is attached, but does not read
    const child = spawnFixture("channel-peer.ts", ["backpressure", file, "512", "1"]);
    const done = finished(child);
    await firstLine(child); // the ring is full; its next send() waits for room
    for (let i = 0; i < 500 && ch.stats().producersWaiting === 0; i++) await sleep(10);
    assert.equal(ch.stats().producersWaiting, 1, "the child is counted as waiting");
    child.kill("SIGKILL");
    await done;
    const raw = mapFile(file);
    assert.equal(new Int32Array(raw.buffer)[L.SPACE_WAITERS_OFFSET / 4], 1, "a dead waiter cannot take itself off the count");
    raw.close();
    assert.equal(ch.stats().producersWaiting, 0, "but with no producer alive, none is reported waiting");
    // The next producer to attach, finding no other producer alive, clears it.
    assert.equal(ch.trySend(new Uint8Array(512)), false, "still full");
    assert.equal(ch.stats().producersWaiting, 0);
    ch.close();
  });

  test("peerAlive() and ERR_PEER_GONE: the consumer watches its producer, a producer watches its consumer", async () => {
    const file = path.join(dir, "peers");
    const ch = createChannel(file, { capacity: 4096 });
    // The producer lives in another process; this handle consumes.
    const producer = spawnFixture("channel-peer.ts", ["hold-producer", file]);
    const p = finished(producer);
    await firstLine(producer);
    assert.equal(new TextDecoder().decode(ch.receive({ timeout: 1000 })), "hello");
    assert.equal(ch.peerAlive(), true);
    await assert.rejects(ch.receiveAsync({ timeout: 50 }), { code: "ERR_TIMEOUT" });
    producer.kill("SIGKILL");
    await p;
    assert.equal(ch.peerAlive(), false);
    assert.throws(() => ch.receive({ timeout: 50 }), { code: "ERR_PEER_GONE" });
    ch.close();

    // The consumer lives in another process; this handle produces.
    const file2 = path.join(dir, "peers2");
    const tx = createChannel(file2, { capacity: 4096 });
    const consumer = spawnFixture("channel-peer.ts", ["hold-consumer", file2]);
    const c = finished(consumer);
    await firstLine(consumer);
    assert.equal(tx.peerAlive(), true, "not a producer yet, but a consumer is attached");
    tx.send("x");
    assert.equal(tx.peerAlive(), true);
    while (tx.trySend(new Uint8Array(1000)));
    assert.throws(() => tx.send(new Uint8Array(1000), { timeout: 50 }), { code: "ERR_TIMEOUT" });
    consumer.kill("SIGKILL");
    await c;
    assert.equal(tx.peerAlive(), false);
    assert.throws(() => tx.send(new Uint8Array(1000), { timeout: 50 }), { code: "ERR_PEER_GONE" });
    assert.equal(tx.stats().consumerAttached, false);
    // The kernel dropped the dead consumer's lock: a new one can attach.
    const rx = openChannel(file2);
    assert.equal(new TextDecoder().decode(rx.receive({ timeout: 1000 })), "x");
    rx.close();
    tx.close();
  });
});
