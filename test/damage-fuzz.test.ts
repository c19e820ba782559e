/**
 * A few hundred trials of the damage fuzz (bench/damage-stress.ts; run
 * `npm run stress:damage` for thousands): fresh copies of logs, channels and
 * record files are damaged at random and opened in every mode in worker
 * processes. Asserted for every target: no crash, no hang, no error without
 * a string code, no record returned that was never written, no silent loss
 * (an intact record not returned while no damage is reported) and no open
 * that changed the files and then threw — logs without CRCs included.
 * MEMMAP_DAMAGE_SEED=n replays a run; the seed is printed on failure.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatTable, runTrials, type Trial } from "../bench/damage-stress.ts";

const seed = Number(process.env.MEMMAP_DAMAGE_SEED ?? 20261208);
const trials = Number(process.env.MEMMAP_DAMAGE_TRIALS ?? 300);

test(`damage fuzz: ${trials} trials (seed ${seed}): no crash, hang, uncoded error, phantom record, silent loss or changed-then-threw`, { timeout: 600_000 }, async () => {
  // The timeout per trial is a hang guard only: a trial takes milliseconds.
  const { trials: all, table } = await runTrials({ trials, seed, timeoutMs: 60_000, workers: 2 });
  const forbidden = (t: Trial): boolean =>
    t.cls === "crash" ||
    t.cls === "hang" ||
    t.cls === "uncoded error" ||
    t.cls === "phantom" ||
    t.cls === "silent loss" ||
    t.cls === "changed-then-threw";
  const bad = all.filter(forbidden);
  const report = `seed ${seed} (replay: MEMMAP_DAMAGE_SEED=${seed})\n${formatTable(table)}\n${bad
    .slice(0, 10)
    .map((t) => `  ${t.cls}: #${t.n} ${t.kind} ${t.mode} [${t.damage}] ${t.detail}`)
    .join("\n")}`;
  assert.equal(all.length, trials);
  assert.equal(bad.length, 0, report);
});
