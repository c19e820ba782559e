/**
 * The adaptive wait strategy's learned budget (SpinBudget): its rules, step
 * by step, with no clock involved; and that an adaptive wait behaves like the
 * other strategies (wakes, times out, validates).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createSharedMemory, Doorbell } from "../src/index.ts";
import { SpinBudget, checkStrategy } from "../src/core/wait.ts";

describe("SpinBudget", () => {
  test("a hit after i polls raises the budget to 4·i (up to the most); a miss halves it (down to the least)", () => {
    const b = new SpinBudget();
    assert.equal(b.next(10_000, 10), 1000, "starts at 1,000 polls");
    b.hit(600);
    assert.equal(b.next(10_000, 10), 2400);
    b.hit(5000);
    assert.equal(b.next(10_000, 10), 10_000, "never above the most");
    b.miss();
    assert.equal(b.next(10_000, 10), 5000);
    for (let i = 0; i < 20; i++) {
      b.next(10_000, 10);
      b.miss();
    }
    // Every call above also counted towards the next probe; skip past probes to see the floor.
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      seen.add(b.next(10_000, 10));
      b.miss();
    }
    assert.ok(seen.has(10), `the budget floors at the least (saw ${[...seen].join(", ")})`);
  });

  test("a thread on one CPU (least 0) ends up not polling, except for probes that back off while they miss", () => {
    const b = new SpinBudget();
    const budgets: number[] = [];
    for (let i = 0; i < 3000; i++) {
      budgets.push(b.next(5000, 0));
      b.miss();
    }
    const probes = budgets.map((n, i) => (n === 5000 ? i : -1)).filter((i) => i >= 0);
    assert.ok(budgets.slice(100).every((n) => n === 5000 || n < 1), "between probes it polls (next to) nothing");
    const gaps = probes.slice(1).map((p, i) => p - probes[i]!);
    assert.ok(gaps.length >= 2, `probes happen (${probes.length})`);
    assert.ok(gaps.every((g, i) => i === 0 || g >= gaps[i - 1]!), `probe gaps grow while probes miss: ${gaps.join(", ")}`);
    assert.equal(gaps.at(-1), 256, "up to one probe in 256 waits");
  });

  test("a probe that hits brings polling back and resets the probe interval", () => {
    const b = new SpinBudget();
    for (let i = 0; i < 600; i++) {
      b.next(5000, 0);
      b.miss();
    }
    let n = 0;
    let waits = 0;
    while ((n = b.next(5000, 0)) !== 5000) {
      b.miss();
      waits++;
      assert.ok(waits <= 256, "a probe within 256 waits");
    }
    b.hit(300); // the peer answered after 300 polls
    assert.equal(b.next(5000, 0), 1200, "the budget covers 4× what the probe needed");
    b.hit(100);
    let gap = 1;
    while (b.next(5000, 0) !== 5000) {
      b.miss();
      gap++;
    }
    assert.ok(gap <= 32, `the next probe comes within 32 waits again (after ${gap})`);
  });
});

describe('the "adaptive" strategy', () => {
  test("is accepted by name; unknown names list it", () => {
    assert.equal(checkStrategy("adaptive"), "adaptive");
    assert.equal(checkStrategy(undefined), "futex", "a doorbell's own default is unchanged");
    assert.equal(checkStrategy(undefined, "adaptive"), "adaptive");
    assert.throws(() => checkStrategy("fast"), (e: Error & { code?: string }) => e.code === "ERR_INVALID_ARG" && /"adaptive"/.test(e.message));
  });

  test("returns at once when the condition holds; timed-out waits return false and deregister", () => {
    const shm = createSharedMemory(4096);
    const map = shm.map();
    try {
      const bell = new Doorbell(map.buffer, 0, 4);
      const words = new Int32Array(map.buffer, 0, 4);
      assert.equal(bell.waitUntil(() => true, { strategy: "adaptive" }), true);
      // Many short waits that time out teach the budget to stop polling; a wait must still end on time and return false.
      for (let i = 0; i < 50; i++) assert.equal(bell.waitUntil(() => Atomics.load(words, 2) !== 0, { strategy: "adaptive", timeout: 1 }), false);
      assert.equal(bell.waiters, 0, "every timed-out waiter deregistered");
    } finally {
      map.close();
      shm.close();
    }
  });
});
