/**
 * Lifetimes of waits and shared memory: a dropped SharedMemory gives back its
 * memfd; async waits beyond any thread count keep their timeouts and aborts;
 * wrong handles and counts are coded errors.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createSharedMemory, pageSize } from "../src/index.ts";
import { native, Access } from "../src/core/native.ts";
import { Child, runChild } from "./fixtures/core-helpers.ts";

describe("many parked async waits", () => {
  // Hang guards only: before, waits queued behind 256 waiter threads never settled.
  for (const [name, env] of [
    ["futex_waitv, many waits per thread", {}],
    ["without futex_waitv (older kernels), a thread per wait", { MEMMAP_NO_FUTEX_WAITV: "1" }],
  ] as const) {
    test(`${name}: with 300 waits parked for ever, 1,000 more time out, an AbortSignal aborts one, and a ring wakes one`, async () => {
      const child = new Child("core-waits-child.ts", ["many-waits", "300", "1000"], { timeoutMs: 60_000, env: { ...process.env, ...env } });
      child.process.stdin?.end();
      const { code, signal, stderr } = await child.exited;
      const messages = child.unread();
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, `the waits did not all settle (child killed)\n${stderr}`);
      assert.deepEqual(messages[0], {
        timedOut: 1000,
        aborted: "ERR_ABORTED",
        woken: true,
        foreverWoken: 300,
        waitersAfter: [0, 0, 0],
      });
    });
  }
});

/** The native layer's own coded errors (plain Errors with a code; the TypeScript layer makes MmapErrors). */
function throwsNativeCode(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: Error & { code?: unknown }) => e.code === code && message.test(e.message));
}

describe("wait requests and wakes: bad arguments are coded errors", () => {
  test("cancelWait() with anything but a wait request (a mapping handle, an object) is ERR_INVALID_ARG", () => {
    using shm = createSharedMemory(pageSize);
    const mapping = native.map(shm.fd, 0, pageSize, Access.write, false);
    try {
      throwsNativeCode(() => native.cancelWait(mapping as never), "ERR_INVALID_ARG", /wait request/);
      throwsNativeCode(() => native.cancelWait({} as never), "ERR_INVALID_ARG", /wait request/);
      throwsNativeCode(() => native.cancelWait(undefined as never), "ERR_INVALID_ARG", /wait request/);
    } finally {
      native.unmap(mapping);
    }
  });

  test("futexWake() with a count below 1 is ERR_INVALID_ARG and wakes nobody", () => {
    const buffer = new ArrayBuffer(8);
    for (const count of [0, -1, -2147483648]) throwsNativeCode(() => native.futexWake(buffer, 0, count), "ERR_INVALID_ARG", /count/);
    assert.equal(native.futexWake(buffer, 0, 1), 0);
  });
});

describe("SharedMemory lifetime", () => {
  test("20 dropped 16 MiB shared memories are closed after garbage collection: descriptors back to the baseline", async () => {
    // Hang guard only: without a finalizer the child waits for ever and is killed.
    const { code, signal, messages, stderr } = await runChild("core-waits-child.ts", ["drop-shm", "20", "16"], {
      nodeArgs: ["--expose-gc"],
      timeoutMs: 20_000,
    });
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `the dropped memfds were never closed (child killed)\n${stderr}`);
    const r = messages[0] as Record<"baseline" | "holding" | "after", { fds: number; memfds: number; shmemKb: number }>;
    assert.equal(r.holding.memfds - r.baseline.memfds, 20, "20 memfds while they were referenced");
    assert.equal(r.after.memfds, 0, "every dropped memfd is closed");
    // At most the baseline: an unrelated descriptor may close meanwhile; a leak adds.
    assert.ok(r.after.fds <= r.baseline.fds, `descriptors back to the baseline (${r.after.fds} open, ${r.baseline.fds} before)`);
  });
});
