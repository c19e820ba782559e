/**
 * The channel between real processes: ordering and integrity of a million
 * messages, every way of receiving, many producers, back-pressure, and a
 * channel in anonymous shared memory handed to a child.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { createChannel, createSharedMemory, MmapError, type Channel } from "../src/index.ts";
import { StreamPlan, makePool } from "./fixtures/channel-stream.ts";
import { finished, firstLine, killChildren, spawnFixture } from "./helpers/spawn.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => {
  killChildren();
  removeTmpDir(dir);
});

/** Checks each message against the stream plan; throws on the first difference. */
class StreamChecker {
  readonly #pool: Buffer;
  readonly #plan: StreamPlan;
  received = 0;

  constructor(seed: number, maxSize: number) {
    this.#pool = makePool(seed);
    this.#plan = new StreamPlan(seed, maxSize);
  }

  check(message: Uint8Array): void {
    this.#plan.advance();
    const { size, offset } = this.#plan;
    const got = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
    if (got.length !== size || !got.equals(this.#pool.subarray(offset, offset + size)))
      throw new Error(`message ${this.received}: expected ${size} bytes from pool offset ${offset}, got ${got.length} different bytes`);
    this.received++;
  }
}

function isClosed(error: unknown): boolean {
  return error instanceof MmapError && error.code === "ERR_CLOSED";
}

type Mode = "receive" | "tryReceive" | "drain" | "async" | "iterator";

/** Receives a whole stream from a producer process with the given receiving style(s). */
async function receiveStream(ch: Channel, checker: StreamChecker, modes: Mode[]): Promise<void> {
  const check = (m: Uint8Array): void => checker.check(m);
  let chunk = 0;
  for (;;) {
    const mode = modes[chunk++ % modes.length]!;
    try {
      if (mode === "iterator") {
        let switched = false;
        for await (const m of ch) {
          check(m);
          if (checker.received % 5000 === 0) {
            switched = true; // switch style now and then
            break;
          }
        }
        if (!switched) return; // the loop ended: the channel was ended and is drained
        continue;
      }
      for (let i = 0; i < 5000; i++) {
        if (mode === "receive") check(ch.receive({ timeout: 20_000 }));
        else if (mode === "async") check(await ch.receiveAsync({ timeout: 20_000 }));
        else if (mode === "tryReceive") {
          const m = ch.tryReceive();
          if (m) check(m);
          else check(ch.receive({ timeout: 20_000 }));
        } else {
          const n = ch.drain(check);
          if (n === 0) check(ch.receive({ timeout: 20_000 }));
          else i += n - 1;
        }
      }
    } catch (error) {
      if (isClosed(error)) return;
      throw error;
    }
  }
}

describe("two processes", () => {
  test("1,000,000 messages of random sizes (1 B to capacity/4) arrive in order and intact, across thousands of wrap-arounds; received in turn with receive(), drain(), tryReceive(), receiveAsync() and for await", async () => {
    const capacity = 16 * 1024;
    const count = 1_000_000;
    const seed = 42;
    const file = path.join(dir, "million");
    const ch = createChannel(file, { capacity });
    ch.tryReceive(); // attach as the consumer first
    const child = spawnFixture("channel-peer.ts", ["produce-stream", file, String(count), String(seed), String(capacity / 4), "futex"]);
    const done = finished(child);
    const checker = new StreamChecker(seed, capacity / 4);
    await receiveStream(ch, checker, ["receive", "drain", "tryReceive", "async", "iterator"]);
    const result = await done;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(checker.received, count);
    const stats = ch.stats();
    assert.equal(stats.used, 0);
    assert.equal(stats.messages, 0);
    assert.ok(stats.producerPosition / capacity > 10_000, `wrapped ${Math.floor(stats.producerPosition / capacity)} times`);
    ch.close();
  });

  test("a channel in anonymous shared memory, handed to a child as fd 3", async () => {
    const shm = createSharedMemory(4096);
    const ch = createChannel(shm, { capacity: 32 * 1024 }); // grows the memory to fit
    assert.ok(fs.fstatSync(shm.fd).size >= 4096 + 32 * 1024);
    ch.tryReceive();
    const seed = 99;
    const count = 20_000;
    const child = spawnFixture(
      "channel-peer.ts",
      ["produce-stream", "fd:3", String(count), String(seed), "8192", "futex"],
      ["ignore", "pipe", "pipe", shm.fd],
    );
    const done = finished(child);
    const checker = new StreamChecker(seed, 8192);
    await receiveStream(ch, checker, ["iterator", "async", "drain"]);
    const result = await done;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(checker.received, count);
    ch.close();
    shm.close();
  });
});

describe("many producers", () => {
  test("4 producer processes × 1 consumer: every message arrives once, each producer's in its order", async () => {
    const file = path.join(dir, "multi");
    const perProducer = 25_000;
    const ch = createChannel(file, { capacity: 64 * 1024, producers: "multi" });
    ch.tryReceive();
    const children = [0, 1, 2, 3].map((id) => spawnFixture("channel-peer.ts", ["produce-tagged", file, String(id), String(perProducer), "600"]));
    let running = children.length;
    const results = children.map((c) => finished(c).finally(() => running--));
    const pool = makePool(1234);
    const next = [0, 0, 0, 0];
    const check = (m: Uint8Array): void => {
      const view = new DataView(m.buffer, m.byteOffset, m.byteLength);
      const id = view.getUint32(0, true);
      const seq = view.getUint32(4, true);
      assert.ok(id < 4, `producer id ${id}`);
      assert.equal(seq, next[id], `producer ${id}: expected message ${next[id]}, got ${seq}`);
      const size = m.length - 8;
      const offset = ((id * 2654435761 + seq * 40503) >>> 0) % (pool.length - size);
      assert.ok(Buffer.from(m.buffer, m.byteOffset + 8, size).equals(pool.subarray(offset, offset + size)), `producer ${id} message ${seq} is damaged`);
      next[id]!++;
    };
    for (;;) {
      if (ch.drain(check) > 0) continue;
      if (running === 0) {
        // Every producer has exited: all it committed is in the ring.
        ch.drain(check);
        break;
      }
      try {
        check(await ch.receiveAsync({ timeout: 50 }));
      } catch (error) {
        if (!(error instanceof MmapError) || (error.code !== "ERR_TIMEOUT" && error.code !== "ERR_PEER_GONE")) throw error;
      }
    }
    for (const r of await Promise.all(results)) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(next, [perProducer, perProducer, perProducer, perProducer]);
    assert.equal(ch.abortedFrames, 0);
    assert.equal(ch.stats().used, 0);
    ch.close();
  });
});

describe("back-pressure", () => {
  test("a full ring: trySend is false, send times out with ERR_TIMEOUT, then the producer resumes as the consumer reads", async () => {
    const file = path.join(dir, "full");
    const ch = createChannel(file, { capacity: 4096 });
    ch.tryReceive(); // a consumer is attached, but does not read yet
    const child = spawnFixture("channel-peer.ts", ["backpressure", file, "512", "300"]);
    const done = finished(child);
    const first = JSON.parse(await firstLine(child)) as { filled: number; timeoutCode: string; waited: number };
    assert.equal(first.filled, 7, "7 frames of 520 bytes fit in 4,096");
    assert.equal(first.timeoutCode, "ERR_TIMEOUT");
    assert.ok(first.waited >= 95, `send waited ${first.waited} ms`);
    assert.equal(ch.stats().free, 0, "the timed-out send padded the ring to its end, and the frame did not fit at its start");
    for (let i = 0; i < 7; i++) assert.equal(ch.receive({ timeout: 5000 }).length, 512); // the ones that filled it
    for (let i = 0; i < 300; i++) {
      const m = ch.receive({ timeout: 5000 });
      assert.equal(new DataView(m.buffer, m.byteOffset).getUint32(0, true), i, "in order after the wait");
    }
    const result = await done;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /"sent":300/);
    ch.close();
  });
});
