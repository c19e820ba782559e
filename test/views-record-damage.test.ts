/**
 * Record files under another writer and under damage (issue 10 items 18, 19):
 * overwriting a file a live writer appends to is ERR_BUSY, and a damaged row
 * count never returns rows that were never written.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { createRecordFile, MmapError, openRecordFile } from "../src/index.ts";
import { Tick, tick, tickProblem } from "./fixtures/views-rows.ts";

let dir: string;
before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-recdmg-"))));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function isCode(code: string): (e: unknown) => boolean {
  return (e) => e instanceof MmapError && e.code === code;
}

describe("overwrite while another process writes (item 18)", () => {
  test("createRecordFile(p, layout, { overwrite: true }) is ERR_BUSY while a writer in another process holds p", async () => {
    const file = path.join(dir, "busy.rec");
    createRecordFile(file, Tick, { capacity: 16 }).close();
    // A real writer process: opens p for writing, says so, and waits for stdin to close.
    const script = `
      import { openRecordFile } from ${JSON.stringify(path.resolve("src/index.ts"))};
      import { tick } from ${JSON.stringify(path.resolve("test/fixtures/views-rows.ts"))};
      const out = openRecordFile(${JSON.stringify(file)}, { access: "write" });
      out.append(tick(0));
      process.stdout.write("ready\\n");
      process.stdin.on("end", () => { out.append(tick(1)); out.close(); });
      process.stdin.resume();`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["pipe", "pipe", "inherit"] });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
      child.on("exit", () => reject(new Error("the writer exited early")));
    });
    try {
      assert.throws(() => createRecordFile(file, Tick, { overwrite: true }), isCode("ERR_BUSY"));
      assert.throws(() => openRecordFile(file, { access: "write" }), isCode("ERR_BUSY"));
    } finally {
      child.stdin.end();
      await exited;
    }
    // The writer's rows are all there: nothing went to an unlinked file.
    const r = openRecordFile(file, Tick);
    assert.equal(r.length, 2);
    assert.equal(tickProblem(1, r.rows.get(1)), undefined);
    r.close();
    // With the writer gone, overwrite works.
    const fresh = createRecordFile(file, Tick, { overwrite: true });
    assert.equal(fresh.length, 0);
    fresh.close();
  });

  test("overwrite while a reader has the file open is fine (readers keep the old file)", () => {
    const file = path.join(dir, "reader.rec");
    const w = createRecordFile(file, Tick, { capacity: 4 });
    w.append(tick(0));
    w.close();
    const r = openRecordFile(file, Tick);
    const fresh = createRecordFile(file, Tick, { overwrite: true });
    assert.equal(r.length, 1);
    assert.equal(fresh.length, 0);
    fresh.close();
    r.close();
  });
});
