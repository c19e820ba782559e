/**
 * A healthy log never reports damage, whatever other processes do meanwhile
 * (issue 10): while another process appends with small segments, so that
 * segments roll over and retention deletes old ones all the time, this
 * process opens the log again and again — writable, read-only and with
 * onDamage "readPrefix" — reads from its start, appends, and inspects it.
 * Not one open may report damage. (npm run stress:log -- --concurrency does
 * 1,000 opens with 6 writers.)
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { tmpDir } from "./helpers/tmp.ts";
import { MmapError, inspectLog, openLog, type Log, type LogOptions } from "../src/index.ts";
import { delay, makeTmpDir, removeBundles, removeTmpDir, spawnFixture } from "./fixtures/log-helpers.ts";

after(() => removeBundles());

const OPENS = Number(process.env.LOG_RACE_OPENS ?? 500);

test(`${OPENS} opens while another process rolls segments over and retention deletes them: no false damage`, async () => {
  const dir = makeTmpDir();
  const roller = spawnFixture("log-roller.ts", [dir, "1", String(64 * 1024), "2"]);
  try {
    await roller.waitFor((l) => l === "ready", 60_000);
    const modes: LogOptions[] = [{}, { readOnly: true }, { onDamage: "readPrefix" }, { readOnly: true, onDamage: "readPrefix" }, { verify: "full" }];
    const failures: string[] = [];
    const firsts = new Set<number>();
    // At least OPENS opens, and on until the roller has dropped segments under them a few times (however the machine schedules it).
    for (let i = 0; i < OPENS || firsts.size <= 3; i++) {
      if (roller.proc.exitCode !== null) assert.fail(`the roller exited: ${roller.stderr()}`);
      const options = modes[i % modes.length]!;
      let log: Log | undefined;
      try {
        if (i % 10 === 9) {
          const s = inspectLog(dir);
          if (s.damage !== undefined) failures.push(`inspectLog: ${s.damage.reason}`);
          continue;
        }
        log = openLog(dir, options);
        if (log.damage !== undefined) failures.push(`${JSON.stringify(options)}: log.damage ${log.damage.message}`);
        firsts.add(log.firstSeq);
        const r = log.reader({ from: "start" });
        for (let n = 0; n < 20 && r.next() !== null; n++);
        if (!log.readOnly) log.append("from the opener");
      } catch (error) {
        // Retention may drop the segment a reader was about to enter: ERR_OUT_OF_RANGE is no damage report.
        if (!(error instanceof MmapError && error.code === "ERR_OUT_OF_RANGE")) failures.push(`${JSON.stringify(options)}: ${(error as Error).stack}`);
      } finally {
        log?.close();
      }
      if (i % 25 === 0) await delay(1); // let the roller's output be read
    }
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${OPENS} opens reported damage or failed`);
  } finally {
    roller.proc.stdin!.end("stop\n");
    const { code } = await roller.exited;
    removeTmpDir(dir);
    assert.equal(code, 0, roller.stderr());
  }
});

test("a segment retention dropped and a slow appender re-created is no damage, and an exclusive open removes it", async () => {
  const { Segment } = await import("../src/log/segment.ts");
  const fs = await import("node:fs");
  const path = await import("node:path");
  using tmp = tmpDir();
  const dir = tmp.path;
  const log = openLog(dir, { create: true, segmentSize: 64 * 1024 });
  for (let i = 0; i < 800; i++) log.append(`record ${i} ${"x".repeat(300)}`);
  const dropped = log.retain({ maxSegments: 2 });
  assert.ok(dropped.length >= 2);
  const first = log.firstSeq;
  // What a slow appender leaves for a moment: the segment after a dropped one, linked into place again.
  const stale = Number(path.basename(dropped[dropped.length - 1]!).slice(0, 20));
  Segment.create(dir, stale, 64 * 1024, false).close();
  assert.ok(fs.existsSync(dropped[dropped.length - 1]!));
  assert.equal(inspectLog(dir).damage, undefined);
  assert.equal(inspectLog(dir).firstSeq, first);
  const other = openLog(dir, { verify: "full" }); // not exclusive: `log` is open
  assert.equal(other.firstSeq, first);
  const r = other.reader();
  assert.equal(r.next()?.seq, first);
  other.close();
  log.close();
  openLog(dir).close(); // exclusive: removes it
  assert.ok(!fs.existsSync(dropped[dropped.length - 1]!), "the exclusive open removed the re-created file");
});
