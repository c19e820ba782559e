/**
 * `memmap log stat|dump|tail` on a real log, written by this process while
 * the command runs in another.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { openLog } from "../src/index.ts";
import { oneLine, runCli, startCli, tempDir, waitForOutput } from "./fixtures/cli-run.ts";
import { fingerprint, makeCrashedLog } from "./fixtures/log-crashed.ts";
import { removeBundles } from "./fixtures/log-helpers.ts";

const { dir, remove } = tempDir();
const logDir = path.join(dir, "events");
const RECORDS = 2000;

before(() => {
  using log = openLog(logDir, { create: true, segmentSize: 64 * 1024 });
  for (let i = 0; i < RECORDS; i++) log.append(JSON.stringify({ id: i }));
  log.append(new Uint8Array([0, 1, 2, 0xff])); // seq 2000: not UTF-8
  log.append("tab\there\nand a newline"); // seq 2001
  using billing = log.reader({ name: "billing" });
  for (let i = 0; i < 1500; i++) billing.next();
  billing.commit();
});
after(remove);
after(() => removeBundles());

interface LogStatJson {
  segmentSize: number;
  segments: { file: string; baseSeq: number; bytes: number; records?: number; sealed?: boolean }[];
  firstSeq: number;
  nextSeq: number;
  cursors: { name: string; seq: number; lag: number }[];
  damage?: unknown;
}

test("log stat: segments, sequence range, cursors and their lag", async () => {
  const [json, text] = await Promise.all([runCli(["log", "stat", "--json", logDir]), runCli(["log", "stat", logDir])]);
  assert.equal(json.code, 0, json.stderr);
  const s = JSON.parse(json.stdout) as LogStatJson;
  assert.equal(s.segmentSize, 64 * 1024);
  assert.equal(s.firstSeq, 0);
  assert.equal(s.nextSeq, RECORDS + 2);
  assert.ok(s.segments.length >= 2, "64 KiB segments: the records span several");
  assert.equal(s.segments.reduce((n, seg) => n + seg.records!, 0), RECORDS + 2);
  assert.deepEqual(s.segments.map((seg) => seg.sealed), [...s.segments.slice(1).map(() => true), false]);
  assert.deepEqual(s.cursors.map(({ name, seq, lag }) => ({ name, seq, lag })), [{ name: "billing", seq: 1500, lag: RECORDS + 2 - 1500 }]);
  assert.equal(s.damage, undefined);

  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`^Log ${logDir} \\(segments of 64\\.0 KiB\\)\\n`));
  assert.match(text.stdout, /^ {2}records +2,002: seq 0 to 2,001; the next append gets 2,002$/m);
  assert.match(text.stdout, /^ {4}billing +1,500 +502 +\d{4}-/m);
  assert.match(text.stdout, /^ {2}damage +none$/m);
});

test("log dump: text, hex and JSON from a sequence number", async () => {
  const [text, hex, json, past] = await Promise.all([
    runCli(["log", "dump", logDir, "--from", "1998"]),
    runCli(["log", "dump", logDir, "--from", "2000", "--count", "1", "--as", "hex"]),
    runCli(["log", "dump", logDir, "--from", "10", "--count", "3", "--json"]),
    runCli(["log", "dump", logDir, "--from", "end"]),
  ]);
  assert.equal(text.code, 0, text.stderr);
  const lines = text.stdout.trimEnd().split("\n");
  assert.equal(lines.length, 4);
  assert.match(lines[0]!, /^#1998 {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}\{"id":1998\}$/);
  assert.match(lines[2]!, /^#2000 .* \(4 bytes, not UTF-8\) 000102ff$/);
  assert.match(lines[3]!, /^#2001 .* tab\\there\\nand a newline$/);
  assert.equal(oneLine(text.stderr), "(4 records; the log's next seq is 2,002)");

  assert.match(hex.stdout, /^#2000 {2}\S+ {2}4 bytes\n {4}000000 {2}00 01 02 ff {38}\|\.\.\.\.\|\n$/);

  const records = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as { seq: number; text: string; length: number; timestamp: number });
  assert.deepEqual(records.map((r) => [r.seq, r.text, r.length]), [[10, '{"id":10}', 9], [11, '{"id":11}', 9], [12, '{"id":12}', 9]]);
  assert.ok(records.every((r) => Math.abs(r.timestamp - Date.now()) < 600_000));
  assert.equal(json.stderr, "");

  assert.equal(past.code, 0);
  assert.equal(past.stdout, "");
});

test("log dump --last n prints the last n records, like tail -n; --from end says how to get them", async () => {
  const [last, lastOne, tooMany, end, both] = await Promise.all([
    runCli(["log", "dump", logDir, "--last", "2"]),
    runCli(["log", "dump", logDir, "--last", "3", "--count", "1", "--json"]),
    runCli(["log", "dump", logDir, "-n", "100000", "--count", "1", "--json"]),
    runCli(["log", "dump", logDir, "--from", "end", "--count", "2"]),
    runCli(["log", "dump", logDir, "--from", "5", "--last", "2"]),
  ]);
  assert.equal(last.code, 0, last.stderr);
  assert.deepEqual(last.stdout.trimEnd().split("\n").map((l) => l.split("  ")[0]), ["#2000", "#2001"]);
  assert.equal(oneLine(last.stderr), "(2 records; the log's next seq is 2,002)");
  assert.equal((JSON.parse(lastOne.stdout) as { seq: number }).seq, 1999);
  assert.equal((JSON.parse(tooMany.stdout) as { seq: number }).seq, 0, "more than the log holds: from the first record");
  assert.equal(end.code, 0);
  assert.equal(end.stdout, "");
  assert.equal(oneLine(end.stderr), "(0 records; the log's next seq is 2,002; --last n prints the last n records)");
  assert.equal(both.code, 2);
  assert.equal(oneLine(both.stderr), "memmap: --from and --last cannot be combined: --last n starts at the last n records");
});

test("log stat on a log damaged in a middle segment: the damage said once, later segments not called unreadable", async () => {
  const damaged = path.join(dir, "damaged");
  {
    using log = openLog(damaged, { create: true, segmentSize: 64 * 1024 });
    for (let i = 0; i < 3000; i++) log.append(`record number ${i}`);
  }
  const segments = fs.readdirSync(damaged).filter((f) => f.endsWith(".seg")).sort();
  assert.ok(segments.length >= 3, segments.join());
  const fd = fs.openSync(path.join(damaged, segments[1]!), "r+");
  fs.writeSync(fd, new Uint8Array([0xee]), 0, 1, 20); // a header byte: its checksum no longer matches
  fs.closeSync(fd);

  const r = await runCli(["log", "stat", damaged]);
  assert.equal(r.code, 1);
  const damageLine = r.stdout.split("\n").find((l) => l.startsWith("  damage"))!;
  assert.match(damageLine, new RegExp(`^ {2}damage {4}at seq [\\d,]+ in \\S+${segments[1]}: .+$`));
  assert.equal(damageLine.split("at seq").length, 2, `the place is said once: ${damageLine}`);
  assert.doesNotMatch(r.stdout, /unreadable/);
  assert.match(r.stdout, new RegExp(`^ +${segments[1]} .* damaged$`, "m"));
  for (const later of segments.slice(2)) assert.match(r.stdout, new RegExp(`^ +${later} .* not checked \\(after the damage\\)$`, "m"));
  assert.equal(oneLine(r.stderr).split("at seq").length, 2, r.stderr);
});

test("log dump on a log a writer crashed in prints the records before its claimed frame and changes no byte", async () => {
  const crashed = path.join(dir, "crashed");
  const stuck = await makeCrashedLog(crashed, 5, 2);
  const before = fingerprint(crashed);
  const r = await runCli(["log", "dump", crashed]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    r.stdout.trimEnd().split("\n").map((l) => l.replace(/^#(\d+) {2}\S+ {2}/, "$1 ")),
    ["0 before 0", "1 before 1", "2 before 2", "3 before 3", "4 before 4"],
  );
  // The stop is said: the records after the claimed frame exist, a dump that just ended would hide them.
  assert.equal(
    oneLine(r.stderr),
    `(5 records; stopped at seq ${stuck}: claimed by a writer that has not committed it (still writing, or killed: the next writable open seals it); the log's next seq is ${stuck + 3})`,
  );
  const json = await runCli(["log", "dump", "--json", crashed]);
  assert.deepEqual(JSON.parse(json.stdout.trimEnd().split("\n").at(-1)!), { seq: stuck, claimed: true });
  assert.deepEqual(fingerprint(crashed), before, "every file byte-identical, no file added or removed");
  using log = openLog(crashed); // the repair is left to the next writer
  assert.equal(log.recovery.abortedFrames, 1);
});

test("log tail follows records appended by another process, and stops on SIGINT", async () => {
  const from = RECORDS + 2;
  const counted = startCli(["log", "tail", logDir, "--from", String(from), "--count", "3", "--json"]);
  const following = startCli(["log", "tail", logDir]);
  try {
    const exited = new Promise<number | null>((resolve) => counted.on("exit", resolve));
    const stopped = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => following.on("exit", (c, s) => resolve([c, s])));
    const announced = new Promise<void>((resolve) => following.stderr!.on("data", (d: Buffer) => /following/.test(String(d)) && resolve()));
    await announced; // the follower reads from the end: start appending once it is there
    using log = openLog(logDir);
    const seen = waitForOutput(counted, /"seq":2004/);
    const followed = waitForOutput(following, /late 2\n/);
    for (const word of ["late 0", "late 1", "late 2"]) {
      log.append(word);
      await new Promise((r) => setTimeout(r, 50));
    }
    const out = await seen;
    assert.deepEqual(
      out.trim().split("\n").map((l) => (JSON.parse(l) as { seq: number; text: string }).seq + " " + (JSON.parse(l) as { text: string }).text),
      ["2002 late 0", "2003 late 1", "2004 late 2"],
    );
    assert.equal(await exited, 0);
    const tailed = await followed;
    assert.match(tailed, /^#2002 {2}\S+ {2}late 0\n#2003 {2}\S+ {2}late 1\n#2004 {2}\S+ {2}late 2\n$/);
    following.kill("SIGINT");
    assert.deepEqual(await stopped, [0, null]);
  } finally {
    counted.kill("SIGKILL");
    following.kill("SIGKILL");
  }
});

test("log: a missing directory, a directory without a log or a file is exit 1 with one whole sentence", async () => {
  const empty = path.join(dir, "not-a-log");
  fs.mkdirSync(empty);
  const file = path.join(dir, "a-file");
  fs.writeFileSync(file, "x");
  const nope = path.join(dir, "nope");
  const [missing, notLog, dump, dumpEmpty, dumpFile, tailFile] = await Promise.all([
    runCli(["log", "stat", nope]),
    runCli(["log", "stat", empty]),
    runCli(["log", "dump", nope]),
    runCli(["log", "dump", empty]),
    runCli(["log", "dump", file]),
    runCli(["log", "tail", file]),
  ]);
  for (const r of [missing, notLog, dump, dumpEmpty, dumpFile, tailFile]) {
    assert.equal(r.code, 1, r.stderr);
    assert.match(oneLine(r.stderr), /^memmap: /);
    assert.doesNotMatch(r.stderr, /pass create: true/, "advice the CLI cannot follow");
    assert.equal(r.stdout, "");
  }
  const noLog = `not a log directory: it has no log.meta (a program makes a log with openLog(dir, { create: true })) (ENOENT)`;
  assert.equal(oneLine(missing.stderr), `memmap: ${nope}: no such directory (ENOENT)`);
  assert.equal(oneLine(dump.stderr), `memmap: ${nope}: no such directory (ENOENT)`);
  assert.equal(oneLine(notLog.stderr), `memmap: ${empty}: ${noLog}`);
  assert.equal(oneLine(dumpEmpty.stderr), `memmap: ${empty}: ${noLog}`);
  assert.match(oneLine(dumpFile.stderr), new RegExp(`^memmap: ${file}: not a log directory: it is a file \\(a log is a directory holding log\\.meta\\) \\(E[A-Z]+\\)$`));
  assert.equal(oneLine(tailFile.stderr), oneLine(dumpFile.stderr));
});

test("log dump and tail say where a crashed writer left a gap; log stat does not count it as a record", async () => {
  const crashed = path.join(dir, "gap");
  const stuck = await makeCrashedLog(crashed, 3, 2);
  openLog(crashed).close(); // the repair seals the dead writer's frame ABORTED: seq `stuck` has no record
  const [dump, json, stat, tail] = await Promise.all([
    runCli(["log", "dump", crashed]),
    runCli(["log", "dump", "--json", crashed]),
    runCli(["log", "stat", crashed]),
    runCli(["log", "tail", crashed, "--from", "0", "--count", "5"]),
  ]);
  assert.equal(dump.code, 0, dump.stderr);
  const lines = dump.stdout.trimEnd().split("\n").map((l) => l.replace(/^#(\d+) {2}\S+Z {2}/, "$1 "));
  assert.deepEqual(lines, ["0 before 0", "1 before 1", "2 before 2", `#${stuck}  aborted: no record (its writer crashed before committing it, or called abort())`, "4 after 0", "5 after 1"]);
  assert.deepEqual(json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { seq: number; aborted?: boolean })[3], { seq: stuck, aborted: true });
  assert.equal(stat.code, 0, stat.stderr);
  assert.match(stat.stdout, /^ {2}records +5: seq 0 to 5 \(1 aborted: no record\); the next append gets 6$/m);
  assert.equal(tail.code, 0, tail.stderr);
  assert.match(tail.stdout, /^#3 {2}aborted: no record/m);
});
