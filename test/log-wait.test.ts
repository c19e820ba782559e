/**
 * Log readers' wait strategies ("spin", "yield", "futex", "adaptive", as the
 * channel's): each delivers every record in order across processes, through
 * `for await` and through the blocking `waitNext()`; a waiting reader wakes
 * on an append and ends on close or abort; bad options are coded errors.
 * No timing is asserted (bench:log measures the latencies).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { tmpDir } from "./helpers/tmp.ts";
import { MmapError, openLog, type LogRecord, type WaitStrategy } from "../src/index.ts";
import { delay, removeBundles, spawnFixture } from "./fixtures/log-helpers.ts";

after(() => removeBundles());

const STRATEGIES: WaitStrategy[] = ["spin", "yield", "futex", "adaptive"];
const COUNT = 3000;

for (const mode of ["async", "sync"] as const) {
  for (const strategy of STRATEGIES) {
    test(`${mode === "async" ? "for await" : "waitNext()"} with "${strategy}" reads every record another process appends, in order`, async () => {
      using tmp = tmpDir();
      openLog(tmp.path, { create: true }).close();
      const reader = spawnFixture("log-wait-reader.ts", [tmp.path, strategy, mode, String(COUNT)]);
      await reader.waitFor((l) => l === "ready");
      const appender = spawnFixture("log-wait-appender.ts", [tmp.path, String(COUNT)]);
      assert.equal((await appender.exited).code, 0, appender.stderr());
      assert.equal((await reader.exited).code, 0, reader.stderr());
      assert.deepEqual(JSON.parse(reader.lines.at(-1)!), { read: COUNT, last: COUNT - 1 });
    });
  }
}

test("an unknown strategy or a bad spin is ERR_INVALID_ARG", () => {
  using tmp = tmpDir();
  const log = openLog(tmp.path, { create: true });
  for (const strategy of ["busy", "", 1, null])
    assert.throws(() => log.reader({ strategy: strategy as WaitStrategy }), (e: MmapError) => e instanceof MmapError && e.code === "ERR_INVALID_ARG" && /strategy/.test(e.message));
  for (const spin of [-1, 1.5, "10", 2e9])
    assert.throws(() => log.reader({ spin: spin as number }), (e: MmapError) => e instanceof MmapError && e.code === "ERR_INVALID_ARG" && /spin/.test(e.message));
  const reader = log.reader();
  assert.equal(reader.strategy, "adaptive");
  assert.throws(() => reader.waitNext({ timeoutMs: -1 }), (e: MmapError) => e.code === "ERR_INVALID_ARG");
  assert.throws(() => reader.waitNext({ wait: 1 } as never), (e: MmapError) => e.code === "ERR_INVALID_ARG");
  log.close();
});

for (const strategy of STRATEGIES) {
  test(`a "${strategy}" reader waiting in for await wakes on an append, and ends on abort and on close`, async () => {
    using tmp = tmpDir();
    const log = openLog(tmp.path, { create: true });
    // Wakes on an append (made while it waits, or before: either way it must yield it).
    const it = log.reader({ strategy, from: "end" })[Symbol.asyncIterator]();
    const first = it.next();
    await delay(20);
    log.append("woken");
    const got = await first;
    assert.equal(Buffer.from(got.value!.data).toString(), "woken");
    await it.return(undefined);

    const controller = new AbortController();
    const aborted = (async () => {
      for await (const _ of log.reader({ strategy, from: "end", signal: controller.signal })) assert.fail("nothing was appended");
    })();
    await delay(20);
    controller.abort();
    await assert.rejects(aborted, (e: MmapError) => e.code === "ERR_ABORTED");

    const ended = (async () => {
      let n = 0;
      for await (const _ of log.reader({ strategy })) n++;
      return n;
    })();
    await delay(20);
    log.close();
    assert.equal(await ended, 1);
  });

  test(`waitNext() with "${strategy}" returns null on timeout and refuses a closed reader`, () => {
    using tmp = tmpDir();
    const log = openLog(tmp.path, { create: true });
    const reader = log.reader({ strategy, from: "end" });
    assert.equal(reader.waitNext({ timeoutMs: 5 }), null);
    log.append("here");
    assert.equal(Buffer.from(reader.waitNext({ timeoutMs: 5 })!.data).toString(), "here");
    reader.close();
    assert.throws(() => reader.waitNext(), (e: MmapError) => e.code === "ERR_CLOSED");
    log.close();
  });
}

for (const [api, strategy] of [["waitNext", "futex"], ["waitNext", "spin"], ["for await", "spin"], ["for await", "adaptive"]] as const) {
  test(`${api} with "${strategy}" skips a record claimed by a writer that died, and waits for one held by a live writer`, async () => {
    using tmp = tmpDir();
    const log = openLog(tmp.path, { create: true, abandonTimeoutMs: 50 });
    const reader = log.reader({ strategy });
    const records = reader.tail();
    const next = async (): Promise<LogRecord> => (api === "waitNext" ? reader.waitNext({ timeoutMs: 20_000 })! : (await records.next()).value!);
    // A live writer holds seq 0 for 500 ms (10 timeouts): it is delivered when it commits.
    const holder = spawnFixture("log-claimer.ts", [tmp.path, "500"]);
    await holder.waitFor((l) => l.startsWith("claimed"));
    log.append("second");
    assert.equal((await next()).data.length, 16, "the held record, once committed");
    assert.equal(Buffer.from((await next()).data).toString(), "second");
    assert.equal((await holder.exited).code, 0);
    // A writer killed while holding seq 2: its frame is sealed ABORTED and skipped.
    const claimer = spawnFixture("log-claimer.ts", [tmp.path, "600000"]);
    assert.equal((await claimer.waitFor((l) => l.startsWith("claimed"))).split(" ")[1], "2");
    claimer.proc.kill("SIGKILL");
    await claimer.exited;
    log.append("after");
    const rec = await next();
    assert.deepEqual([rec.seq, Buffer.from(rec.data).toString(), reader.skipped], [3, "after", 1]);
    log.close();
  });
}
