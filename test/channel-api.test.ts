/**
 * The channel's API in one process: creating and opening, every kind of
 * message, claims, batches, receiving styles, end(), close(), stats() and
 * argument checking.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { Channel, createChannel, createSharedMemory, inspectChannel, MmapError, openChannel } from "../src/index.ts";
import * as L from "../src/channel/layout.ts";

let dir: string;
let n = 0;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

const file = (): string => path.join(dir, `ch-${n++}`);
const text = (m: Uint8Array | null): string => (m === null ? "<none>" : new TextDecoder().decode(m));
const code = (c: string) => (e: unknown) => e instanceof MmapError && e.code === c;

describe("creating and opening", () => {
  test("createChannel makes a 0600 file of header + capacity; openChannel and inspectChannel read it", () => {
    const p = file();
    const ch = createChannel(p, { capacity: 8192 });
    assert.ok(ch instanceof Channel);
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
    assert.equal(fs.statSync(p).size, L.HEADER_LENGTH + 8192);
    assert.equal(ch.capacity, 8192);
    assert.equal(ch.maxMessageLength, 8184);
    assert.equal(ch.producers, "single");
    assert.equal(ch.path, p);
    const other = openChannel(p);
    ch.send("hi");
    assert.equal(text(other.tryReceive()), "hi");
    const stats = inspectChannel(p);
    assert.equal(stats.capacity, 8192);
    assert.equal(stats.producers, "single");
    assert.equal(stats.consumerAttached, true);
    assert.deepEqual(stats.producerPids, [process.pid]);
    other.close();
    ch.close();
    assert.equal(inspectChannel(p).consumerAttached, false);
    assert.deepEqual(inspectChannel(p).producerPids, []);
  });

  test("capacity: 4 KiB to 1 GiB, rounded up to a power of two; default 1 MiB", () => {
    assert.equal(createChannel(file(), { capacity: 5000 }).capacity, 8192);
    assert.equal(createChannel(file(), { capacity: 4096 }).capacity, 4096);
    assert.equal(createChannel(file()).capacity, 1 << 20);
    for (const bad of [4095, 0, 2 ** 30 + 1, -1, 1.5, "4096", NaN])
      assert.throws(() => createChannel(file(), { capacity: bad as number }), code("ERR_INVALID_ARG"), String(bad));
  });

  test("an existing path is EEXIST unless overwrite: true; a missing one is ENOENT for openChannel", () => {
    const p = file();
    createChannel(p).close();
    assert.throws(() => createChannel(p), code("EEXIST"));
    const again = createChannel(p, { overwrite: true, capacity: 4096 });
    assert.equal(again.capacity, 4096);
    again.close();
    assert.throws(() => openChannel(path.join(dir, "missing")), code("ENOENT"));
    assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith(".tmp")).length, 0, "no temporary file left behind");
  });

  test("the deprecated alias replace: true still overwrites; replace and overwrite together are ERR_INVALID_ARG", () => {
    const p = file();
    createChannel(p, { capacity: 8192 }).close();
    const again = createChannel(p, { replace: true, capacity: 4096 });
    assert.equal(again.capacity, 4096);
    again.close();
    assert.throws(() => createChannel(p, { replace: false }), code("EEXIST"));
    assert.throws(() => createChannel(p, { replace: "yes" as unknown as boolean }), (e: unknown) => code("ERR_INVALID_ARG")(e) && /replace must be a boolean/.test((e as Error).message));
    assert.throws(() => createChannel(p, { overwrite: true, replace: true }), code("ERR_INVALID_ARG"));
  });

  test("the deprecated alias timeout still bounds a wait, like timeoutMs; both together are ERR_INVALID_ARG", async () => {
    const ch = createChannel(file(), { capacity: 4096 });
    for (const options of [{ timeoutMs: 1 }, { timeout: 1 }]) {
      assert.throws(() => ch.receive(options), (e: unknown) => code("ERR_TIMEOUT")(e) || code("ERR_PEER_GONE")(e), JSON.stringify(options));
      await assert.rejects(ch.receiveAsync(options), (e: unknown) => code("ERR_TIMEOUT")(e) || code("ERR_PEER_GONE")(e), JSON.stringify(options));
    }
    assert.throws(() => ch.receive({ timeout: -1 }), (e: unknown) => code("ERR_INVALID_ARG")(e) && /^timeout must be/.test((e as Error).message));
    assert.throws(() => ch.receive({ timeoutMs: -1 }), (e: unknown) => code("ERR_INVALID_ARG")(e) && /^timeoutMs must be/.test((e as Error).message));
    assert.throws(() => ch.receive({ timeoutMs: 1, timeout: 1 }), code("ERR_INVALID_ARG"));
    assert.throws(() => ch.messages({ timeoutMs: 1, timeout: 1 }), code("ERR_INVALID_ARG"));
    while (ch.trySend("x"));
    for (const options of [{ timeoutMs: 1 }, { timeout: 1 }]) assert.throws(() => ch.send("y", options), (e: unknown) => code("ERR_TIMEOUT")(e) || code("ERR_PEER_GONE")(e));
    ch.close();
  });

  test("options are checked before anything is created", () => {
    const p = file();
    assert.throws(() => createChannel(p, { producers: "many" as "multi" }), code("ERR_INVALID_ARG"));
    assert.throws(() => createChannel(p, { strategy: "sleep" as "spin" }), code("ERR_INVALID_ARG"));
    assert.throws(() => createChannel(p, { colour: 1 } as object), code("ERR_INVALID_ARG"));
    assert.throws(() => createChannel(p, { mode: 0o10000 }), code("ERR_INVALID_ARG"));
    assert.throws(() => createChannel(42 as unknown as string, {}), (e) => e instanceof MmapError);
    assert.throws(() => createChannel({} as string), code("ERR_INVALID_ARG"));
    assert.throws(() => openChannel(""), code("ERR_INVALID_ARG"));
    assert.equal(fs.existsSync(p), false);
  });

  test("in shared memory and by file descriptor", () => {
    const shm = createSharedMemory(1);
    const a = createChannel(shm, { capacity: 4096, producers: "multi" });
    const b = openChannel(shm.fd);
    assert.equal(b.producers, "multi");
    a.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual([...b.tryReceive()!], [1, 2, 3]);
    assert.equal(inspectChannel(shm.fd).messages, 1, "the one b holds is not given back until its next receive");
    a.close();
    b.close();
    shm.close();
    assert.throws(() => openChannel(987654), code("EBADF"));
  });
});

describe("messages", () => {
  test("strings go in as UTF-8 (multi-byte, lone surrogates, empty); any ArrayBufferView or ArrayBuffer as its bytes", () => {
    const ch = createChannel(file(), { capacity: 4096 });
    for (const s of ["héllo wörld ✓ 𝄞", "\ud800", ""]) {
      ch.send(s);
      assert.deepEqual(ch.tryReceive({ copy: true }), new TextEncoder().encode(s));
    }
    const f64 = new Float64Array([1.5, -2]);
    ch.send(f64);
    assert.deepEqual(new Float64Array(ch.tryReceive({ copy: true })!.buffer), f64);
    const backing = new Uint8Array([9, 8, 7, 6, 5]);
    ch.send(new DataView(backing.buffer, 1, 3));
    assert.deepEqual([...ch.tryReceive()!], [8, 7, 6]);
    ch.send(backing.buffer);
    assert.deepEqual([...ch.tryReceive()!], [9, 8, 7, 6, 5]);
    ch.send(Buffer.from("buf"));
    assert.equal(text(ch.tryReceive()), "buf");
    for (const bad of [42, null, undefined, {}, [1, 2]])
      assert.throws(() => ch.trySend(bad as unknown as string), code("ERR_INVALID_ARG"), String(bad));
    ch.close();
  });

  test("the largest message is capacity − 8, at any ring position; one byte more is ERR_TOO_LARGE", () => {
    const ch = createChannel(file(), { capacity: 4096 });
    const big = new Uint8Array(4088).fill(7);
    for (const lead of [0, 1, 100, 2000]) {
      if (lead) {
        ch.send(new Uint8Array(lead));
        assert.equal(ch.tryReceive()?.length, lead);
        assert.equal(ch.trySend(big), false, "not while the previous message is still out");
        assert.equal(ch.tryReceive(), null); // gives it back, and the padding the failed send left
      }
      ch.send(big, { timeout: 1000 });
      assert.deepEqual(ch.tryReceive(), big);
      assert.equal(ch.tryReceive(), null);
    }
    assert.throws(() => ch.trySend(new Uint8Array(4089)), code("ERR_TOO_LARGE"));
    assert.throws(() => ch.trySend("é".repeat(2045)), code("ERR_TOO_LARGE"));
    ch.close();
  });

  test("received views are valid until the next receive; copies live on; close() empties every view", () => {
    const ch = createChannel(file(), { capacity: 4096 });
    ch.send("one");
    ch.send("two");
    const view = ch.tryReceive()!;
    const copy = ch.tryReceive({ copy: true })!;
    assert.equal(text(view), "one");
    assert.equal(text(copy), "two");
    assert.equal(copy.buffer.byteLength, 3, "a copy has its own buffer");
    ch.close();
    assert.equal(view.length, 0);
    assert.equal(text(copy), "two");
  });
});

for (const producers of ["single", "multi"] as const) {
  describe(`sending (${producers} producer)`, () => {
    test("claim() returns a view into the ring; commit() publishes it, whole or shortened; abortClaim() drops it", () => {
      const ch = createChannel(file(), { capacity: 4096, producers });
      const v = ch.claim(10);
      assert.equal(v.length, 10);
      v.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal(ch.tryReceive(), null, "not visible before commit");
      assert.throws(() => ch.trySend("x"), code("ERR_BUSY"), "one claim at a time");
      ch.commit();
      assert.deepEqual([...ch.tryReceive()!], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const w = ch.claim(100);
      w.set([4, 5, 6]);
      ch.commit(3);
      ch.claim(50);
      ch.abortClaim();
      ch.send("after");
      assert.deepEqual([...ch.tryReceive()!], [4, 5, 6]);
      assert.equal(text(ch.tryReceive()), "after");
      assert.equal(ch.tryReceive(), null);
      assert.throws(() => ch.commit(), code("ERR_INVALID_ARG"), "nothing claimed");
      ch.claim(8);
      assert.throws(() => ch.commit(9), code("ERR_INVALID_ARG"), "longer than the claim");
      ch.commit(0);
      assert.equal(ch.tryReceive()!.length, 0);
      while (ch.tryClaim(1000)) ch.commit();
      assert.equal(ch.tryClaim(1000), null, "full");
      assert.throws(() => ch.claim(1000, { timeout: 20 }), code("ERR_TIMEOUT"));
      ch.close();
    });

    test("trySendBatch sends the prefix that fits, published together; sendBatch waits for room", async () => {
      const ch = createChannel(file(), { capacity: 4096, producers });
      const rx = openChannel(ch.path!);
      rx.tryReceive();
      const list = Array.from({ length: 40 }, (_, i) => new Uint8Array(200).fill(i));
      const sent = ch.trySendBatch(list);
      assert.equal(sent, Math.floor(4096 / 208), "19 frames of 208 bytes");
      const got: number[] = [];
      assert.equal(rx.drain((m) => got.push(m[0]!)), sent);
      assert.deepEqual(got, list.slice(0, sent).map((_, i) => i));
      const rest = list.slice(sent);
      let remaining = rest.length;
      while (remaining > 0) {
        const k = ch.trySendBatch(rest.slice(rest.length - remaining));
        remaining -= k;
        rx.drain((m) => got.push(m[0]!));
      }
      rx.drain((m) => got.push(m[0]!));
      assert.deepEqual(got, list.map((_, i) => i));
      assert.equal(ch.trySendBatch([]), 0);
      assert.throws(() => ch.trySendBatch("abc" as unknown as string[]), code("ERR_INVALID_ARG"));
      assert.throws(() => ch.trySendBatch(["ok", 5 as unknown as string]), code("ERR_INVALID_ARG"));
      ch.sendBatch(["a", "b"], { timeout: 100 });
      assert.equal(text(rx.tryReceive()), "a");
      assert.equal(text(rx.tryReceive()), "b");
      rx.close();
      ch.close();
    });

    test("a full ring: trySend false, send ERR_TIMEOUT (a consumer is attached), sendAsync resolves once there is room", async () => {
      const ch = createChannel(file(), { capacity: 4096, producers });
      const rx = openChannel(ch.path!);
      rx.tryReceive();
      let filled = 0;
      while (ch.trySend(new Uint8Array(500))) filled++;
      assert.equal(filled, 8);
      assert.throws(() => ch.send(new Uint8Array(500), { timeout: 30 }), code("ERR_TIMEOUT"));
      const pending = ch.sendAsync("late", { timeout: 5000 });
      setTimeout(() => rx.drain(() => {}), 20);
      await pending;
      assert.equal(text(rx.tryReceive()), "late");
      const controller = new AbortController();
      while (ch.trySend(new Uint8Array(500)));
      const aborted = ch.sendAsync(new Uint8Array(500), { signal: controller.signal });
      controller.abort();
      await assert.rejects(aborted, code("ERR_ABORTED"));
      await assert.rejects(ch.sendAsync("x", { signal: AbortSignal.abort() }), code("ERR_ABORTED"));
      rx.close();
      assert.throws(() => ch.send(new Uint8Array(500), { timeout: 30 }), code("ERR_PEER_GONE"), "no consumer attached");
      ch.close();
    });
  });
}

describe("producers and consumers", () => {
  test("single producer: a second live producer is ERR_BUSY; after the first closes, it continues from the same tail", () => {
    const p = file();
    const a = createChannel(p, { capacity: 4096 });
    const b = openChannel(p);
    const rx = openChannel(p);
    a.send("from a");
    assert.throws(() => b.send("from b"), code("ERR_BUSY"));
    a.close();
    b.send("from b");
    assert.equal(text(rx.tryReceive()), "from a");
    assert.equal(text(rx.tryReceive()), "from b");
    b.close();
    rx.close();
  });

  test("many producers: several handles send; every message arrives once", () => {
    const p = file();
    const rx = createChannel(p, { capacity: 8192, producers: "multi" });
    const txs = [0, 1, 2].map(() => openChannel(p));
    for (let i = 0; i < 30; i++) txs[i % 3]!.send(`m${i}`);
    const got: string[] = [];
    rx.drain((m) => got.push(text(m)));
    assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => `m${i}`));
    assert.equal(rx.stats().producerPids.length, 3, "three producer handles (the consumer has not sent)");
    for (const t of txs) t.close();
    rx.close();
  });

  test("one consumer at a time: a second handle's receive is ERR_BUSY until the first closes", () => {
    const p = file();
    const a = createChannel(p);
    const b = openChannel(p);
    a.tryReceive();
    assert.throws(() => b.tryReceive(), code("ERR_BUSY"));
    a.send("x");
    a.close();
    assert.equal(text(b.tryReceive()), "x");
    b.close();
  });
});

describe("receiving", () => {
  test("receive() waits and times out with ERR_PEER_GONE (no producer) or ERR_TIMEOUT (a live producer)", () => {
    const ch = createChannel(file());
    assert.throws(() => ch.receive({ timeout: 20 }), code("ERR_PEER_GONE"));
    const tx = openChannel(ch.path!);
    tx.send("x");
    ch.receive();
    assert.throws(() => ch.receive({ timeout: 20 }), code("ERR_TIMEOUT"));
    for (const strategy of ["spin", "yield", "futex", "adaptive"] as const) {
      const s = openChannel(ch.path!, { strategy, spin: 10 });
      assert.equal(s.strategy, strategy);
      s.close();
    }
    const byDefault = openChannel(ch.path!);
    assert.equal(byDefault.strategy, "adaptive", "the default adapts to where it runs");
    byDefault.close();
    tx.close();
    ch.close();
  });

  test("receiveAsync() resolves when a message comes, rejects on abort and on close()", async () => {
    const ch = createChannel(file());
    const tx = openChannel(ch.path!);
    const p = ch.receiveAsync();
    setTimeout(() => tx.send("later"), 10);
    assert.equal(text(await p), "later");
    const controller = new AbortController();
    const q = ch.receiveAsync({ signal: controller.signal });
    controller.abort();
    await assert.rejects(q, code("ERR_ABORTED"));
    const r = ch.receiveAsync();
    ch.close();
    await assert.rejects(r, code("ERR_CLOSED"));
    tx.close();
  });

  test("drain() delivers every waiting message with one release; a throwing callback still releases what it saw", () => {
    const ch = createChannel(file(), { capacity: 4096 });
    for (let i = 0; i < 10; i++) ch.send(`m${i}`);
    const got: string[] = [];
    assert.equal(ch.drain((m) => got.push(text(m)), 4), 4);
    assert.throws(() =>
      ch.drain((m) => {
        got.push(text(m));
        if (got.length === 6) throw new Error("boom");
      }),
    );
    assert.equal(ch.drain((m) => got.push(text(m))), 4);
    assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => `m${i}`));
    assert.equal(ch.stats().used, 0);
    assert.throws(() => ch.drain(5 as unknown as () => void), code("ERR_INVALID_ARG"));
    ch.close();
  });

  test("end(): the consumer gets what is left, then receive() is ERR_CLOSED and for await ends; sends are ERR_CLOSED", async () => {
    const ch = createChannel(file());
    const tx = openChannel(ch.path!);
    tx.send("a");
    tx.send("b");
    tx.end();
    assert.equal(ch.ended, true);
    assert.throws(() => tx.send("c"), code("ERR_CLOSED"));
    const got: string[] = [];
    for await (const m of ch) got.push(text(m));
    assert.deepEqual(got, ["a", "b"]);
    assert.throws(() => ch.receive({ timeout: 1000 }), code("ERR_CLOSED"));
    await assert.rejects(ch.receiveAsync(), code("ERR_CLOSED"));
    assert.equal(ch.tryReceive(), null);
    assert.equal(inspectChannel(ch.path!).ended, true);
    tx.close();
    ch.close();
  });

  test("a pending for await ends when the handle is closed", async () => {
    const ch = createChannel(file());
    const loop = (async () => {
      let count = 0;
      for await (const _ of ch) count++;
      return count;
    })();
    await new Promise((r) => setTimeout(r, 20));
    ch.close();
    assert.equal(await loop, 0);
  });
});

describe("state and lifecycle", () => {
  test("stats(): positions, fill, messages, waiters", () => {
    const ch = createChannel(file(), { capacity: 4096 });
    ch.send("abc"); // frame of 16
    ch.send(new Uint8Array(100)); // frame of 112
    const s = ch.stats();
    assert.equal(s.producerPosition, 128);
    assert.equal(s.consumerPosition, 0);
    assert.equal(s.used, 128);
    assert.equal(s.free, 4096 - 128);
    assert.equal(s.messages, 2);
    assert.equal(s.consumerWaiting, false);
    assert.equal(s.producersWaiting, 0);
    assert.equal(s.consumerAttached, false);
    assert.equal(s.ended, false);
    assert.equal(s.version, L.CHANNEL_VERSION);
    assert.ok(Math.abs(s.createdAt - Date.now()) < 60_000);
    ch.tryReceive();
    assert.equal(ch.stats().messages, 2, "the one out with the caller is not given back yet");
    ch.tryReceive();
    assert.equal(ch.stats().consumerPosition, 16);
    assert.equal(ch.stats().messages, 1);
    ch.close();
  });

  test("close() is idempotent; every method after it is ERR_CLOSED", async () => {
    const ch = createChannel(file());
    ch.close();
    ch.close();
    assert.equal(ch.closed, true);
    for (const call of [
      () => ch.trySend("x"),
      () => ch.send("x"),
      () => ch.tryReceive(),
      () => ch.receive(),
      () => ch.drain(() => {}),
      () => ch.stats(),
      () => ch.peerAlive(),
      () => ch.claim(1),
      () => ch.end(),
    ])
      assert.throws(call, code("ERR_CLOSED"));
    await assert.rejects(ch.receiveAsync(), code("ERR_CLOSED"));
    await assert.rejects(ch.sendAsync("x"), code("ERR_CLOSED"));
  });

  test("using: [Symbol.dispose] closes", () => {
    const p = file();
    {
      using ch = createChannel(p);
      ch.tryReceive();
    }
    const again = openChannel(p);
    again.tryReceive(); // the lock was released
    again.close();
  });
});
