/**
 * Doorbell: cross-process wait/notify over a shared futex. Waits woken from
 * another process (sync and async), timeouts, AbortSignal, ring() without
 * waiters staying out of the kernel, and async waits not starving libuv's pool.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import { tmpDir } from "./helpers/tmp.ts";
import { Doorbell, createSharedMemory, mapFile, pageSize, type MappedFile, type SharedMemory } from "../src/index.ts";
import { native } from "../src/core/native.ts";
import { Child, makeTmpDir, rejectsCode, removeTmpDir, throwsCode } from "./fixtures/core-helpers.ts";

const SEQ = 0; // Int32 word indexes, as core-doorbell-child.ts uses them
const WAITERS = 1;
const VALUE = 4;
const REPLY = 5;

let shm: SharedMemory;
let m: MappedFile;
let words: Int32Array;
let bell: Doorbell;
beforeEach(() => {
  shm = createSharedMemory(pageSize);
  m = shm.map();
  words = m.view(Int32Array);
  bell = new Doorbell(m.buffer, SEQ * 4, WAITERS * 4);
});
afterEach(() => {
  m.close();
  shm.close();
});

/** Counts calls into the kernel's futex wake while fn runs. */
async function countWakes<T>(fn: () => T | Promise<T>): Promise<{ result: T; wakes: number }> {
  const original = native.futexWake;
  let wakes = 0;
  native.futexWake = (...args) => {
    wakes++;
    return original(...args);
  };
  try {
    return { result: await fn(), wakes };
  } finally {
    native.futexWake = original;
  }
}

async function until(condition: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function childWith(mode: string, arg?: string): Child {
  return new Child("core-doorbell-child.ts", arg === undefined ? [mode] : [mode, arg], {
    stdio: ["pipe", "pipe", "pipe", shm.fd],
  });
}

describe("across processes", () => {
  for (const strategy of ["futex", "yield", "adaptive"] as const) {
    test(`a synchronous wait ("${strategy}") in another process is woken by this one`, async () => {
      const child = childWith("wait-sync", strategy);
      try {
        assert.deepEqual(await child.next(), { waiting: true });
        if (strategy !== "yield") await until(() => bell.waiters === 1, "the child to park");
        else await new Promise((r) => setTimeout(r, 100)); // a yielding waiter does not announce itself
        const { wakes } = await countWakes(() => {
          Atomics.store(words, VALUE, 123);
          bell.ring();
        });
        assert.equal(wakes, strategy === "yield" ? 0 : 1, "ring() enters the kernel only for a parked waiter");
        const r = await child.next<{ woke: boolean; value: number }>();
        assert.equal(r.woke, true);
        assert.equal(r.value, 123);
        await child.exitsCleanly();
        assert.equal(bell.waiters, 0, "the waiter deregistered");
      } finally {
        child.kill();
      }
    });
  }

  test("an asynchronous wait in another process is woken by this one", async () => {
    const child = childWith("wait-async");
    try {
      assert.deepEqual(await child.next(), { waiting: true });
      await until(() => bell.waiters === 1, "the child to park");
      const seq = Atomics.load(words, SEQ);
      Atomics.store(words, VALUE, 456);
      bell.ring();
      assert.equal(Atomics.load(words, SEQ), seq + 1, "ring() bumped seq");
      assert.deepEqual(await child.next().then((r) => [r.woke, r.value]), [true, 456]);
      await child.exitsCleanly();
      assert.equal(bell.waiters, 0);
    } finally {
      child.kill();
    }
  });

  test("an asynchronous wait here is woken by another process", async () => {
    const child = childWith("ring", "100");
    try {
      const woke = await bell.waitUntilAsync(() => Atomics.load(words, REPLY) === 77, { timeout: 15_000 });
      assert.equal(woke, true);
      assert.deepEqual(await child.next(), { rang: true });
      await child.exitsCleanly();
    } finally {
      child.kill();
    }
  });

  test("two processes mapping one file (not shared memory) share the futex too", async () => {
    using tmp = tmpDir();
    const dir = tmp.path;
    const file = path.join(dir, "bell.bin");
    fs.writeFileSync(file, new Uint8Array(pageSize));
    const fileMapping = mapFile(file, { access: "write" });
    const fileWords = fileMapping.view(Int32Array);
    const fileBell = new Doorbell(fileMapping.buffer, 0, 4);
    const fd = fs.openSync(file, "r+");
    const child = new Child("core-doorbell-child.ts", ["wait-sync", "futex"], { stdio: ["pipe", "pipe", "pipe", fd] });
    fs.closeSync(fd);
    try {
      assert.deepEqual(await child.next(), { waiting: true });
      await until(() => fileBell.waiters === 1, "the child to park");
      Atomics.store(fileWords, VALUE, 9);
      fileBell.ring();
      assert.deepEqual(await child.next().then((r) => [r.woke, r.value]), [true, 9]);
      await child.exitsCleanly();
    } finally {
      child.kill();
      fileMapping.close();
    }
  });
});

describe("timeouts and aborts", () => {
  test("a timed-out wait returns false after about the timeout, for every strategy", async () => {
    for (const strategy of ["spin", "yield", "futex", "adaptive"] as const) {
      const start = performance.now();
      const woke = bell.waitUntil(() => false, { strategy, timeout: 40, spin: 10 });
      const ms = performance.now() - start;
      assert.equal(woke, false, strategy);
      assert.ok(ms >= 39 && ms < 2000, `${strategy}: ${ms} ms`);
    }
    const start = performance.now();
    assert.equal(await bell.waitUntilAsync(() => false, { timeout: 40 }), false);
    const ms = performance.now() - start;
    assert.ok(ms >= 39 && ms < 2000, `async: ${ms} ms`);
    assert.equal(bell.waiters, 0);
  });

  test("a wait whose condition already holds returns true without parking", async () => {
    const { wakes, result } = await countWakes(() => bell.waitUntil(() => true, { timeout: 0 }));
    assert.equal(result, true);
    assert.equal(wakes, 0);
    assert.equal(await bell.waitUntilAsync(() => true), true);
  });

  test("an AbortSignal rejects a parked async wait with ERR_ABORTED, carrying the reason", async () => {
    const controller = new AbortController();
    const waiting = bell.waitUntilAsync(() => false, { signal: controller.signal });
    await until(() => bell.waiters === 1, "the wait to park");
    const reason = new Error("stop");
    controller.abort(reason);
    const e = await rejectsCode(waiting, "ERR_ABORTED", /aborted/);
    assert.equal((e as { cause?: unknown }).cause, reason);
    assert.equal(bell.waiters, 0, "the aborted waiter deregistered");
    await rejectsCode(bell.waitUntilAsync(() => false, { signal: AbortSignal.abort() }), "ERR_ABORTED");
    await rejectsCode(bell.waitUntilAsync(() => false, { signal: AbortSignal.timeout(30) }), "ERR_ABORTED");
  });

  test("a wait on memory whose mapping is closed meanwhile ends with ERR_CLOSED", async () => {
    const waiting = bell.waitUntilAsync(() => false);
    await until(() => bell.waiters === 1, "the wait to park");
    m.close();
    await rejectsCode(waiting, "ERR_CLOSED", /unmapped/);
    throwsCode(() => bell.ring(), "ERR_CLOSED");
    throwsCode(() => bell.waitUntil(() => false, { timeout: 10 }), "ERR_CLOSED");
    m = shm.map(); // for afterEach
  });

  test("bad options and constructor arguments are coded errors", () => {
    throwsCode(() => bell.waitUntil(() => false, { strategy: "sleep" as never }), "ERR_INVALID_ARG", /strategy must be/);
    throwsCode(() => bell.waitUntil(() => false, { timeout: -1 }), "ERR_INVALID_ARG", /timeout must be/);
    throwsCode(() => bell.waitUntil(() => false, { timeout: Number.NaN }), "ERR_INVALID_ARG");
    throwsCode(() => new Doorbell(m.buffer, 2, 8), "ERR_MISALIGNED");
    throwsCode(() => new Doorbell(m.buffer, 0, pageSize), "ERR_OUT_OF_RANGE", /no room/);
    throwsCode(() => new Doorbell(m.buffer, -4, 0), "ERR_INVALID_ARG");
    throwsCode(() => new Doorbell(new Uint8Array(8) as never, 0, 4), "ERR_INVALID_ARG", /ArrayBuffer/);
  });
});

describe("ring()", () => {
  test("with no waiters (waiters word 0) does not call into the kernel and leaves seq alone", async () => {
    assert.equal(Atomics.load(words, WAITERS), 0);
    const seq = Atomics.load(words, SEQ);
    const { wakes } = await countWakes(() => {
      for (let i = 0; i < 1000; i++) bell.ring();
    });
    assert.equal(wakes, 0);
    assert.equal(Atomics.load(words, SEQ), seq);
  });

  test("with a parked waiter bumps seq and wakes it with one kernel call", async () => {
    let ready = false;
    const waiting = bell.waitUntilAsync(() => ready, { timeout: 10_000 });
    await until(() => bell.waiters === 1, "the wait to park");
    const seq = Atomics.load(words, SEQ);
    const { wakes } = await countWakes(() => {
      ready = true;
      bell.ring();
    });
    assert.equal(wakes, 1);
    assert.equal(Atomics.load(words, SEQ), seq + 1);
    assert.equal(await waiting, true);
    assert.equal(bell.waiters, 0);
  });
});

describe("async waits and the libuv pool", () => {
  let dir: string;
  before(() => (dir = makeTmpDir()));
  after(() => removeTmpDir(dir));

  test("8 parked waitUntilAsync calls do not starve fs.promises.readFile", async () => {
    const file = path.join(dir, "read-me.bin");
    fs.writeFileSync(file, Buffer.alloc(2 ** 20, 5));
    let ready = false;
    const waits = Array.from({ length: 8 }, () => bell.waitUntilAsync(() => ready, { timeout: 20_000 }));
    await until(() => bell.waiters === 8, "8 waits to park");
    // libuv's pool has 4 threads: 8 reads need them all, several times over.
    const start = performance.now();
    const contents = await Promise.all(Array.from({ length: 8 }, () => fs.promises.readFile(file)));
    const ms = performance.now() - start;
    assert.ok(contents.every((c) => c.length === 2 ** 20 && c[0] === 5));
    // Were the waits holding pool threads, the reads would wait for the waits' 20 s timeout.
    assert.ok(ms < 5000, `reads took ${ms} ms while 8 waits were parked`);
    assert.equal(bell.waiters, 8, "the waits are still parked");
    ready = true;
    bell.ring();
    assert.deepEqual(await Promise.all(waits), Array(8).fill(true));
    assert.equal(bell.waiters, 0);
  });
});

test("Doorbell waits take timeoutMs, and the deprecated alias timeout still works; both together are ERR_INVALID_ARG", async () => {
  for (const options of [{ timeoutMs: 1 }, { timeout: 1 }]) {
    assert.equal(bell.waitUntil(() => false, options), false, JSON.stringify(options));
    assert.equal(await bell.waitUntilAsync(() => false, options), false, JSON.stringify(options));
  }
  throwsCode(() => bell.waitUntil(() => false, { timeoutMs: 1, timeout: 1 }), "ERR_INVALID_ARG");
  await rejectsCode(bell.waitUntilAsync(() => false, { timeoutMs: 1, timeout: 1 }), "ERR_INVALID_ARG");
});
