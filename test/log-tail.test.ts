/**
 * Tailing readers: `for await` wakes on appends made by another process,
 * sleeps (no polling) while nothing is appended, honours an AbortSignal and
 * ends when the log closes; a record claimed by a writer that then dies is
 * sealed ABORTED after a bounded wait so the readers carry on, while one
 * held by a live writer is waited for.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { tmpDir } from "./helpers/tmp.ts";
import { MmapError, openLog, type LogRecord } from "../src/index.ts";
import { startWorker } from "./fixtures/core-helpers.ts";
import { delay, makeTmpDir, removeBundles, removeTmpDir, spawnFixture } from "./fixtures/log-helpers.ts";

after(() => removeBundles());

function text(rec: LogRecord): string {
  return Buffer.from(rec.data).toString("utf8");
}

test("a tailing reader wakes on each append from another process", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true });
  const reader = log.reader({ from: "end" });
  const COUNT = 20;
  const ticker = spawnFixture("log-ticker.ts", [dir, String(COUNT), "15"]);
  const latencies: number[] = [];
  let i = 0;
  for await (const rec of reader) {
    const now = performance.timeOrigin + performance.now();
    assert.equal(text(rec), `tick ${i}`);
    const sent = await ticker.waitFor((l) => l.startsWith(`sent ${rec.seq} `));
    latencies.push(now - Number(sent.split(" ")[2]));
    if (++i === COUNT) break;
  }
  assert.equal((await ticker.exited).code, 0, ticker.stderr());
  latencies.sort((a, b) => a - b);
  // Generous bound (a loaded 2-core machine); the benchmark measures it properly.
  assert.ok(latencies[latencies.length >> 1]! < 100, `median wake-up ${latencies[latencies.length >> 1]} ms`);
  log.close();
});

test("waiting for appends sleeps on the futex instead of polling", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true });
  const controller = new AbortController();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  setTimeout(() => controller.abort(), 400);
  await assert.rejects(
    (async () => {
      for await (const _ of log.reader({ signal: controller.signal })) assert.fail("no records were appended");
    })(),
    (e: MmapError) => e.code === "ERR_ABORTED",
  );
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  assert.ok(elapsed >= 390 && elapsed < 2000, `aborted after ${elapsed} ms`);
  assert.ok((cpu.user + cpu.system) / 1000 < 100, `the wait used ${(cpu.user + cpu.system) / 1000} ms of CPU in 400 ms`);
  log.close();
});

test("closing the log ends a tailing iteration", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true });
  log.append("one");
  const seen: string[] = [];
  const done = (async () => {
    for await (const rec of log.reader()) seen.push(text(rec));
  })();
  await delay(50);
  log.close();
  await done;
  assert.deepEqual(seen, ["one"]);
});

test("a record claimed by a writer that dies is sealed ABORTED and readers in other processes carry on", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true, abandonTimeoutMs: 100 });
  log.append("before");
  const claimer = spawnFixture("log-claimer.ts", [dir, "600000"]);
  const claimed = Number((await claimer.waitFor((l) => l.startsWith("claimed"))).split(" ")[1]);
  assert.equal(claimed, 1);
  const tailer = spawnFixture("log-tailer.ts", [dir]); // another process tailing
  await tailer.waitFor((l) => l === "ready");
  const after = log.append("after"); // lands behind the claimed frame
  assert.equal(after, 2);
  await delay(300);
  const reader = log.reader({ from: 1 });
  assert.equal(reader.next(), null, "a live writer's claim is waited for (not sealed)");
  claimer.proc.kill("SIGKILL");
  await claimer.exited;
  const t0 = performance.now();
  const got: [number, string][] = [];
  for await (const rec of reader) {
    got.push([rec.seq, text(rec)]);
    if (got.length === 1) break;
  }
  assert.deepEqual(got, [[2, "after"]], "the dead writer's seq 1 is skipped (ABORTED)");
  assert.ok(performance.now() - t0 < 3000);
  const end = new Uint8Array(8);
  new DataView(end.buffer).setUint32(0, 0xffffffff, true);
  log.append(end);
  assert.equal((await tailer.exited).code, 0, tailer.stderr());
  const summary = JSON.parse(tailer.lines.find((l) => l.startsWith("{"))!) as { other: number; gaps: number };
  assert.deepEqual([summary.other, summary.gaps], [2, 1], "the other process skipped the ABORTED seq too");
  log.close();
});

test("a record claimed by a worker thread that is terminated is sealed ABORTED; readers carry on", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true, abandonTimeoutMs: 100 });
  log.append("before");
  const worker = await startWorker("log-worker-claim.ts", { dir });
  assert.equal(await new Promise((resolve) => worker.once("message", resolve)), "claimed 1");
  await worker.terminate(); // the process lives on; the thread's writer-slot lock must not
  assert.equal(log.append("after"), 2);
  const reader = log.reader({ from: 1, signal: AbortSignal.timeout(10_000) }); // a hang is a failure
  const got: [number, string][] = [];
  for await (const rec of reader) {
    got.push([rec.seq, text(rec)]);
    break;
  }
  assert.deepEqual(got, [[2, "after"]], "seq 1 is skipped (ABORTED)");
  log.close();
});

test("a record held by a live writer past the timeout is delivered when it commits", async () => {
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true, abandonTimeoutMs: 50 });
  const claimer = spawnFixture("log-claimer.ts", [dir, "500"]);
  await claimer.waitFor((l) => l.startsWith("claimed"));
  log.append("second");
  const got: string[] = [];
  for await (const rec of log.reader()) {
    got.push(text(rec));
    if (got.length === 2) break;
  }
  assert.equal(got[0]!.length, 16, "the held record, committed after 500 ms (10 timeouts)");
  assert.equal(got[1], "second");
  assert.equal((await claimer.exited).code, 0);
  log.close();
});
