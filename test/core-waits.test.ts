/**
 * Lifetimes of waits and shared memory: a dropped SharedMemory gives back its
 * memfd; async waits beyond any thread count keep their timeouts and aborts;
 * wrong handles and counts are coded errors.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runChild } from "./fixtures/core-helpers.ts";

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
