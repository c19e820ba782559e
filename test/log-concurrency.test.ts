/**
 * Concurrent appends from 4 processes, read by 2 more: appends are atomic
 * and totally ordered (both readers see the very same sequence, seqs only
 * grow, each writer's records arrive in its order), and complete. Then the
 * same with one writer SIGKILLed mid-run: its half-written record (if the
 * kill caught one) is sealed ABORTED by a reader once the writer is provably
 * dead, and everything else arrives.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { tmpDir } from "./helpers/tmp.ts";
import { openLog } from "../src/index.ts";
import { makeTmpDir, removeBundles, removeTmpDir, spawnFixture, taggedRecord, type Child } from "./fixtures/log-helpers.ts";

const WRITERS = 4;
const PER_WRITER = 2500;
const END = 0xffffffff;

after(() => removeBundles());

interface Summary {
  count: number;
  gaps: number;
  perWriter: Record<string, number>;
  firstSeq: number;
  lastSeq: number;
  digest: string;
}

async function summary(child: Child): Promise<Summary> {
  const { code } = await child.exited;
  assert.equal(code, 0, `reader failed: ${child.stderr()}`);
  const line = child.lines.find((l) => l.startsWith("{"));
  assert.ok(line !== undefined, "reader printed its summary");
  return JSON.parse(line) as Summary;
}

async function run(killOne: boolean): Promise<void> {
  using tmp = tmpDir();
  const dir = tmp.path;
  // Small segments: writers race through many roll-overs.
  const log = openLog(dir, { create: true, segmentSize: 256 * 1024, crc: true, abandonTimeoutMs: 100 });
  const readers = [spawnFixture("log-tailer.ts", [dir]), spawnFixture("log-tailer.ts", [dir, "durable-tailer"])];
  const writers = Array.from({ length: WRITERS }, (_, id) =>
    spawnFixture("log-appender.ts", [dir, String(id), String(PER_WRITER), killOne && id === 0 ? "1" : "0", "1"]),
  );
  await Promise.all([...readers, ...writers].map((c) => c.waitFor((l) => l === "ready" || l === "standby")));
  for (const w of writers) w.proc.stdin!.write("go\n"); // all start together
  if (killOne) {
    await writers[0]!.waitFor((l) => /^\d+ 300$/.test(l));
    writers[0]!.proc.kill("SIGKILL");
  }
  for (const [id, w] of writers.entries()) {
    const { code, signal } = await w.exited;
    if (killOne && id === 0) assert.equal(signal, "SIGKILL");
    else assert.equal(code, 0, `writer ${id} failed: ${w.stderr()}`);
  }
  const end = new Uint8Array(8);
  new DataView(end.buffer).setUint32(0, END, true);
  log.append(end);
  const [a, b] = await Promise.all(readers.map(summary));

  assert.equal(a!.digest, b!.digest, "both readers saw the same records in the same order");
  assert.equal(a!.firstSeq, 0);
  const live = killOne ? WRITERS - 1 : WRITERS;
  for (let id = killOne ? 1 : 0; id < WRITERS; id++) assert.equal(a!.perWriter[id], PER_WRITER, `all of writer ${id}'s records arrived`);
  if (killOne) {
    const reported = writers[0]!.lines.filter((l) => /^\d+ \d+$/.test(l)).map((l) => l.split(" ").map(Number) as [number, number]);
    const got = a!.perWriter[0] ?? 0;
    assert.ok(got >= reported.length, `every record writer 0 reported is there (${got} >= ${reported.length})`);
    assert.ok(a!.gaps <= 1, `at most the killed writer's one in-flight record is ABORTED (gaps: ${a!.gaps})`);
    assert.equal(a!.count, live * PER_WRITER + got);
  } else {
    assert.equal(a!.gaps, 0, "no gaps in the sequence numbers");
    assert.equal(a!.count, WRITERS * PER_WRITER);
  }
  assert.equal(a!.lastSeq, a!.count + a!.gaps, "the end marker comes last");

  // The log itself, read in this process, agrees.
  const r = log.reader();
  let n = 0;
  for (let rec = r.next(); rec !== null; rec = r.next()) n++;
  assert.equal(n, a!.count + 1);
  log.close();
}

test("4 writer processes, 2 reader processes: total order and completeness", async () => {
  await run(false);
});

test("a writer SIGKILLed mid-run does not block the readers; everything it reported is there", async () => {
  await run(true);
});

// Keeps the helper import honest (taggedRecord is what the fixtures write).
test("tagged records check themselves", () => {
  assert.equal(taggedRecord(3, 7)[0], 3);
});
