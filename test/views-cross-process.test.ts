import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { createRecordFile, openRecordFile } from "../src/index.ts";
import { Tick, tick, tickProblem } from "./fixtures/views-rows.ts";
import { spawnFixture } from "./helpers/spawn.ts";

/** Resolves with the first stdout line that satisfies `match`. */
function line(proc: ChildProcess, match: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    let stderr = "";
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const l of lines) {
        if (match(l)) {
          proc.stdout!.off("data", onData);
          resolve(l);
          return;
        }
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    proc.once("exit", (code, signal) => reject(new Error(`child exited (${code ?? signal}) before the expected output; stderr: ${stderr}`)));
  });
}

function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = makeTmpDir();
  return fn(dir).finally(() => removeTmpDir(dir));
}

test("a reader process sees rows as another process appends them, never a partial row", { timeout: 60_000 }, () =>
  withDir(async (dir) => {
    const file = path.join(dir, "ticks.rec");
    const want = 20_000;
    using out = createRecordFile(file, Tick, { capacity: 4 }); // small: the file grows many times while the reader follows
    const reader = spawnFixture("views-reader.ts", [file, String(want), "45000"]);
    // One listener for the whole run, so that no line is lost between waits.
    let started = false;
    let seenSoFar = 0;
    let result: string | undefined;
    let wake: () => void = () => {};
    const ready = line(reader, (l) => {
      if (l === "ready") started = true;
      else if (l.startsWith("seen ")) seenSoFar = Number(l.slice(5));
      else if (l.startsWith("{")) result = l;
      wake();
      return result !== undefined;
    });
    const until = (ok: () => boolean): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => (ok() ? resolve() : void (wake = check));
        check();
      });
    // Ten steps of 2,000 rows; each waits until the reader has seen it, so the reader sees the
    // count grow in steps and the file grow under it however the machine schedules the two processes.
    const steps = 10;
    await Promise.race([until(() => started), ready]);
    for (let step = 1; step <= steps; step++) {
      for (let i = ((step - 1) * want) / steps; i < (step * want) / steps; i++) out.append(tick(i));
      if (step < steps) await Promise.race([until(() => seenSoFar >= (step * want) / steps), ready]);
    }
    await ready;
    const seen = JSON.parse(result!) as { seen: number; lengths: number; capacities: number; problems: string[] };
    assert.deepEqual(seen.problems, []);
    assert.equal(seen.seen, want);
    assert.ok(seen.lengths > 5, `the reader saw the count grow in steps (${seen.lengths} distinct lengths)`);
    assert.ok(seen.capacities > 3, `the reader remapped as the file grew (${seen.capacities} capacities)`);
  }),
);

test("a writer killed with SIGKILL mid-append leaves only complete rows, and its lock is gone", { timeout: 60_000 }, () =>
  withDir(async (dir) => {
    const file = path.join(dir, "killed.rec");
    createRecordFile(file, Tick, { capacity: 8 }).close();
    for (let round = 0; round < 3; round++) {
      const writer = spawnFixture("views-writer.ts", [file, String(2_000 + round * 50_000)]);
      await line(writer, (l) => l === "appending");
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80));
      const exited = new Promise((resolve) => writer.once("exit", resolve));
      writer.kill("SIGKILL");
      await exited;

      using back = openRecordFile(file, Tick);
      const rows = back.rows;
      assert.ok(rows.length > 2_000 + round * 50_000, `round ${round}: rows survived (${rows.length})`);
      for (let i = 0; i < rows.length; i++) {
        const problem = tickProblem(i, rows.read(i));
        if (problem !== undefined) assert.fail(`round ${round}: ${problem}`);
      }
      // The kernel dropped the dead writer's lock: a new writer can continue where it stopped.
      using again = openRecordFile(file, Tick, { access: "write" });
      assert.equal(again.length, rows.length);
    }
  }),
);
