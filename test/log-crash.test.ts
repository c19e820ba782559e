/**
 * Fault injection: a writer process appends numbered records and reports
 * each sequence number `append` returned; the test SIGKILLs it at random
 * moments — while it opens (and repairs) the log, mid-append, between a
 * claim and its commit, mid-roll-over (segments are small, records of random
 * size) — again and again. After each kill the test reopens the log and
 * checks: the numbered records are contiguous (record n has seq n), every
 * reported record is there, and no record is partial (each one checks its
 * own bytes, and carries a CRC). The loop is in fixtures/log-crash-loop.ts;
 * bench/log-stress.ts runs it 5,000 times.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { killLoop } from "./fixtures/log-crash-loop.ts";
import { removeBundles } from "./fixtures/log-helpers.ts";

// 200 here; the other log suites kill 10 more processes (cursor, concurrency, tail).
const KILLS = Number(process.env.LOG_CRASH_KILLS ?? 200);

after(() => removeBundles());

test(`SIGKILLed writers (${KILLS} kills) leave exactly the committed prefix, with every reported record`, async () => {
  // One lane (on 2 cores, parallel lanes only fight over the CPU), alternating durability "none" and "batch".
  const r = await killLoop(KILLS, ["none", "batch"]);
  assert.ok(r.kills >= KILLS, `${r.kills} kills`);
  assert.ok(r.records > 0, "the writers made progress between kills");
  assert.ok(r.rewound > 0, "some kills landed between a claim and its commit");
  console.log(`kills: ${r.kills} (${r.early} while opening); torn appends cut off on reopen: ${r.rewound}`);
});
