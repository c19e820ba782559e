/**
 * The tour (`npm start`) runs to completion, shows real figures for each
 * part, and leaves no files or processes behind. Part 5 mirrors the log
 * through a private nats-server when one is installed (as in CI, where
 * MEMMAP_REQUIRE_NATS=1 insists on it), and otherwise says how to get one. How long it takes is not
 * asserted (a busy machine stretches it); the kill timer is a hang guard.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { root, tourArgs } from "./fixtures/cli-run.ts";
import { findNatsServer } from "../examples/tour/bridge.ts";

test("the tour runs to completion and cleans up", { timeout: 300_000 }, async () => {
  const child = spawn(process.execPath, tourArgs, {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  clearTimeout(timer);
  assert.equal(code, 0, `tour failed:\n${stdout}\n${stderr}`);
  assert.equal(stderr, "");

  // Part 1: four processes, each with the whole 64 MiB file resident but a quarter of it as its share.
  assert.match(stdout, /^1\/5 {2}One copy in memory, shared by many processes$/m);
  const rows = [...stdout.matchAll(/^ +process (\d+) +([\d.]+) MiB +([\d.]+) MiB +([\d.]+) MiB$/gm)];
  assert.equal(rows.length, 4, stdout);
  for (const [, , rss, pss] of rows) {
    assert.equal(Number(rss), 64);
    assert.ok(Math.abs(Number(pss) - 16) < 0.5, `Pss ${pss} MiB is a quarter of the file`);
  }
  assert.match(stdout, /the shares add up to 64\.0 MiB/);

  // Part 2: random access into a file of records.
  assert.match(stdout, /^2\/5 {2}A file of records is an array you index$/m);
  assert.match(stdout, /Order #654,321, read from the mapped page: \{"id":654321,"quantity":22,"price":680\.98\}/);
  assert.match(stdout, /random lookups: (the mapping is \d+× faster|on this machine right now the two were about as fast)/);

  // Part 3: a ping-pong over a channel with the default options and with "yield", next to process.send, taking turns.
  assert.match(stdout, /^3\/5 {2}Fast IPC: a ping-pong between two processes$/m);
  const time = "[\\d.]+ (?:ns|µs|ms)";
  assert.match(stdout, new RegExp(`^ +channel, default options +${time} +${time}$`, "m"));
  assert.match(stdout, new RegExp(`^ +channel, strategy "yield" +${time} +${time}$`, "m"));
  assert.match(stdout, new RegExp(`^ +process\\.send \\(pipe \\+ JSON\\) +${time} +${time}$`, "m"));
  // Whichever won on this machine, the tour says so, and says what the strategies do.
  assert.match(stdout, /With the default options, process\.send takes [\d.]+× as long as the channel\.|process\.send was [\d.]+× faster than the channel with default options\./);
  assert.match(stdout, /Wait strategies: the default, "adaptive", polls only while polling has been paying off/);

  // Part 4: the producer and consumer are killed; a new consumer resumes at the durable cursor and reads the rest.
  assert.match(stdout, /^4\/5 {2}Persistent IPC: a log that survives a crash$/m);
  const killed = /Killed after appending about [\d,]+ records; "billing" was saved at seq ([\d,]+)\./.exec(stdout);
  assert.ok(killed, stdout);
  const num = (s: string): number => Number(s.replaceAll(",", ""));
  const resumed = /A new consumer resumed at seq ([\d,]+) and read the ([\d,]+) records after it, to seq ([\d,]+),\n +each checked/.exec(stdout);
  assert.ok(resumed, stdout);
  const [cursor, read, last] = [num(resumed[1]!), num(resumed[2]!), num(resumed[3]!)];
  assert.equal(cursor, num(killed[1]!), "the new consumer starts at the saved cursor");
  assert.ok(cursor > 0 && read > 0, "the consumer had saved a position, and the producer had gone on past it");
  assert.equal(cursor + read, last + 1);
  assert.match(stdout, new RegExp(`the next append gets seq ${(last + 1).toLocaleString("en-US")}: the log carries on`));

  // Part 5: the log into JetStream and back, exactly once; or how to install nats-server.
  assert.match(stdout, /^5\/5 {2}Scale-out: the log into NATS JetStream and back$/m);
  const nats = findNatsServer();
  if (process.env.MEMMAP_REQUIRE_NATS === "1") assert.ok(nats !== undefined, "MEMMAP_REQUIRE_NATS=1 but nats-server is not installed");
  if (nats === undefined) assert.match(stdout, /needs nats-server .*\n.*apt-get install -y nats-server/);
  else {
    const pushed = /Pushed ([\d,]+) records \(seq ([\d,]+) to ([\d,]+)\) in \d+ ms, each acknowledged by JetStream/.exec(stdout);
    assert.ok(pushed, stdout);
    assert.equal(num(pushed[1]!), 1000);
    assert.equal(num(pushed[3]!), last + 1, "the pushed records end with the one appended after the crash");
    assert.match(stdout, /The pull bridge appended the 1,000 messages to the mirror log in \d+ ms/);
    assert.match(stdout, /bridge found those records in the stream and published 0: nothing is sent twice/);
  }

  assert.match(stdout, /^Tour done in [\d.]+ s\./m);

  // Nothing left behind: the working directory and the child processes are gone.
  const workDir = /\(working in (\S+);/.exec(stdout)?.[1];
  assert.ok(workDir !== undefined && workDir.includes("memmap-tour-"), stdout);
  assert.equal(fs.existsSync(workDir), false, `${workDir} was removed`);
  for (const [, pid] of rows) assert.equal(fs.existsSync(`/proc/${pid}`), false, `child ${pid} has exited`);
  const leftovers = fs.readdirSync(path.dirname(workDir)).filter((f) => f === path.basename(workDir));
  assert.deepEqual(leftovers, []);
});
