/**
 * worker_threads: the addon loads in workers; workers and the main thread
 * share one mapped file and see each other's writes; closing in one thread
 * leaves the others alone; a terminated worker leaks nothing.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import type { Worker } from "node:worker_threads";
import { Doorbell, mapFile, pageSize } from "../src/index.ts";
import { makeTmpDir, removeTmpDir, runChild, startWorker } from "./fixtures/core-helpers.ts";

let dir: string;
let file: string;
before(() => {
  dir = makeTmpDir();
  file = path.join(dir, "shared.bin");
  fs.writeFileSync(file, new Uint8Array(pageSize));
});
after(() => removeTmpDir(dir));

/** Sends a request to a worker and returns its reply. */
async function ask<T = Record<string, unknown>>(worker: Worker, message: unknown): Promise<T> {
  const reply = once(worker, "message");
  worker.postMessage(message);
  return ((await reply) as [T])[0];
}

const SLOT = 16; // Int32 index of participant 0's slot; the doorbell uses words 0 and 1

describe("worker threads", () => {
  const workers: Worker[] = [];
  after(async () => {
    await Promise.all(workers.map((w) => w.terminate()));
  });

  test("the addon loads in worker threads and maps files there", async () => {
    const started = await Promise.all(
      [0, 1, 2].map(async () => {
        const w = await startWorker("core-workers-thread.ts", { file });
        workers.push(w);
        return ((await once(w, "message")) as [unknown])[0];
      }),
    );
    assert.deepEqual(started, Array(3).fill({ started: true }));
    for (const w of workers) assert.deepEqual(await ask(w, { op: "info" }), { pageSize, byteLength: pageSize });
  });

  test("three workers and the main thread map one file and see each other's writes", async () => {
    assert.equal(workers.length, 3, "needs the workers of the previous test");
    const m = mapFile(file, { access: "write" });
    const words = m.view(Int32Array);
    const bell = new Doorbell(m.buffer, 0, 4);
    try {
      // Each worker writes its slot; the main thread waits for all of them on the doorbell.
      await Promise.all(workers.map((w, i) => ask(w, { op: "write", index: SLOT + 1 + i, value: 1000 + i })));
      const all = await bell.waitUntilAsync(() => workers.every((_, i) => Atomics.load(words, SLOT + 1 + i) === 1000 + i), { timeout: 5000 });
      assert.ok(all);
      // The main thread writes; every worker sees it, and every worker sees every other worker's slot.
      Atomics.store(words, SLOT, 7);
      bell.ring();
      for (const w of workers) {
        assert.deepEqual(await ask(w, { op: "waitFor", index: SLOT, value: 7 }), { ok: true });
        for (let j = 0; j < workers.length; j++)
          assert.deepEqual(await ask(w, { op: "read", index: SLOT + 1 + j }), { value: 1000 + j });
      }
      // A worker blocked in a futex wait is woken by the main thread's ring.
      const waiting = ask(workers[2]!, { op: "waitFor", index: SLOT, value: 8 });
      await new Promise((r) => setTimeout(r, 30));
      Atomics.store(words, SLOT, 8);
      bell.ring();
      assert.deepEqual(await waiting, { ok: true });
    } finally {
      m.close();
    }
  });

  test("closing the mapping in one worker does not disturb the others", async () => {
    const m = mapFile(file, { access: "write" });
    const words = m.view(Int32Array);
    const bell = new Doorbell(m.buffer, 0, 4);
    try {
      assert.deepEqual(await ask(workers[0]!, { op: "close" }), { length: 0, wordsLength: 0 });
      assert.deepEqual(await ask(workers[0]!, { op: "read", index: SLOT }), { error: "TypeError" }, "its own views are detached");
      Atomics.store(words, SLOT, 99);
      bell.ring();
      for (const w of workers.slice(1)) {
        assert.deepEqual(await ask(w, { op: "waitFor", index: SLOT, value: 99 }), { ok: true });
        assert.deepEqual(await ask(w, { op: "write", index: SLOT + 10, value: 5 }), { ok: true });
        assert.equal(Atomics.load(words, SLOT + 10), 5);
        Atomics.store(words, SLOT + 10, 0);
      }
      assert.equal(m.bytes.length, pageSize, "the main thread's mapping is intact");
    } finally {
      m.close();
    }
  });

  test("a worker terminated while holding mappings, a parked async wait and a pending flush: terminate() is prompt and nothing leaks", async () => {
    const { code, signal, messages, stderr } = await runChild("core-workers-child.ts", ["terminate", file, "150"], { timeoutMs: 15_000 });
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `terminate() hung or crashed:\n${stderr}`);
    const r = messages[0] as {
      held: number; terminateMs: number;
      baseline: { maps: number; fds: number }; holding: { maps: number; fds: number }; after: { maps: number; fds: number };
    };
    assert.equal(r.held, 150);
    assert.equal(r.holding.maps - r.baseline.maps, 151, "the worker's mappings (150 held + its own)");
    assert.ok(r.holding.fds - r.baseline.fds >= 51, "the worker's write mappings hold descriptors");
    // Unloaded it takes well under 300 ms; the bound leaves room for a busy machine (a hang never ends).
    assert.ok(r.terminateMs < 2000, `terminate() took ${r.terminateMs.toFixed(0)} ms`);
    assert.deepEqual(r.after.maps, r.baseline.maps, "every mapping of the worker is unmapped");
    // At most the baseline: an unrelated descriptor of the process may close meanwhile; a leak adds.
    assert.ok(r.after.fds <= r.baseline.fds, `every descriptor of the worker is closed (${r.after.fds} open, ${r.baseline.fds} before)`);
  });

  test("terminate() is prompt with a native async wait parked with no timeout", async () => {
      const { code, signal, messages } = await runChild("core-workers-child.ts", ["terminate-native", file], { timeoutMs: 8000 });
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, "terminate() never returned: the child was killed");
      const r = messages[0] as { terminateMs: number };
      assert.ok(r.terminateMs < 2000, `terminate() took ${r.terminateMs} ms`);
  });

  // Hang guards only (a hang never ends): the child is SIGKILLed after 10 s.
  test("terminate() returns while the worker is blocked in a synchronous waitUntil with no timeout", async () => {
    const { code, signal, messages, stderr } = await runChild("core-workers-child.ts", ["terminate-sync", file], { timeoutMs: 10_000 });
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `terminate() never returned: the child was killed\n${stderr}`);
    assert.equal(typeof messages[0]?.terminateMs, "number");
  });

  test("process.exit() ends the process while a worker is blocked in a synchronous waitUntil with no timeout", async () => {
    const { code, signal, messages, stderr } = await runChild("core-workers-child.ts", ["exit-sync", file], { timeoutMs: 10_000 });
    assert.deepEqual(messages[0], { exiting: true });
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `process.exit() never returned: the child was killed\n${stderr}`);
  });
});
