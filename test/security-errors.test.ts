/**
 * Issue 11 items 7 and 8: every error names the path the caller gave (never
 * a descriptor number or a temporary file's name), and mapFile takes the
 * path forms fs takes, refusing files it cannot map faithfully.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { createChannel, createRecordFile, openChannel, inspectChannel, struct } from "../src/index.ts";
import { makeTmpDir, removeTmpDir, throwsCode } from "./fixtures/core-helpers.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

const Row = struct({ x: "u32" });

/** The error names `userPath` (in `path` and the message) and nothing internal. */
function namesOnly(e: Error & { path?: string }, userPath: string): void {
  assert.equal(e.path, userPath, e.message);
  assert.ok(e.message.includes(`'${userPath}'`), e.message);
  assert.doesNotMatch(e.message, /\.tmp|'fd \d+'/, e.message);
}

describe("11.7 errors name the path the caller gave", () => {
  test("openChannel and inspectChannel of a FIFO: ENODEV naming the FIFO, at once", () => {
    const fifo = path.join(dir, "channel.fifo");
    execFileSync("mkfifo", [fifo]);
    namesOnly(throwsCode(() => openChannel(fifo), "ENODEV", /regular file/), fifo);
    namesOnly(throwsCode(() => inspectChannel(fifo), "ENODEV", /regular file/), fifo);
  });

  test("createRecordFile and createChannel into a missing directory: ENOENT naming the path given", () => {
    const rec = path.join(dir, "missing", "x.rec");
    namesOnly(throwsCode(() => createRecordFile(rec, Row), "ENOENT"), rec);
    const ch = path.join(dir, "missing", "ch");
    namesOnly(throwsCode(() => createChannel(ch), "ENOENT"), ch);
  });

  test("createChannel and createRecordFile on a directory: EISDIR naming it, with no advice to replace it", () => {
    const target = path.join(dir, "a-directory");
    fs.mkdirSync(target);
    for (const make of [
      () => createChannel(target),
      () => createChannel(target, { replace: true }),
      () => createRecordFile(target, Row),
      () => createRecordFile(target, Row, { overwrite: true }),
    ]) {
      const e = throwsCode(make, "EISDIR", /is a directory/);
      namesOnly(e, target);
      assert.doesNotMatch(e.message, /replace|overwrite/);
    }
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp")), [], "a temporary file was left behind");
  });

  test('createChannel("/dev/shm") is EISDIR, not advice to pass replace: true', { skip: !fs.existsSync("/dev/shm") }, () => {
    const e = throwsCode(() => createChannel("/dev/shm"), "EISDIR");
    namesOnly(e, "/dev/shm");
    assert.doesNotMatch(e.message, /replace/);
  });

  test("an existing file is still EEXIST with the advice, naming the path", () => {
    const file = path.join(dir, "exists");
    fs.writeFileSync(file, "x");
    namesOnly(throwsCode(() => createChannel(file), "EEXIST", /replace: true/), file);
    namesOnly(throwsCode(() => createRecordFile(file, Row), "EEXIST", /overwrite: true/), file);
  });
});
