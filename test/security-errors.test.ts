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
import { pathToFileURL } from "node:url";
import { createChannel, createRecordFile, inspectChannel, mapFile, openChannel, struct } from "../src/index.ts";
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
    namesOnly(throwsCode(() => createChannel(file), "EEXIST", /overwrite: true/), file);
    namesOnly(throwsCode(() => createRecordFile(file, Row), "EEXIST", /overwrite: true/), file);
  });
});

describe("11.8 path forms, and files that cannot be mapped faithfully", () => {
  test("mapFile takes a file: URL and a Buffer path, as fs does", () => {
    const file = path.join(dir, "url.bin");
    fs.writeFileSync(file, Buffer.from([1, 2, 3]));
    {
      using m = mapFile(pathToFileURL(file));
      assert.deepEqual([...m.bytes], [1, 2, 3]);
      assert.equal(m.path, file);
    }
    {
      using m = mapFile(Buffer.from(file), { access: "write" });
      m.bytes[0] = 9;
      assert.equal(m.path, file);
    }
    assert.equal(fs.readFileSync(file)[0], 9);
    const created = path.join(dir, "created from url.bin");
    mapFile(pathToFileURL(created), { access: "write", create: true, size: 10 }).close();
    assert.equal(fs.statSync(created).size, 10);
  });

  test("a URL that is not file:, or a Buffer that is not UTF-8, is ERR_INVALID_ARG", () => {
    throwsCode(() => mapFile(new URL("https://example.com/x.bin")), "ERR_INVALID_ARG", /file: URL/);
    throwsCode(() => mapFile(Buffer.from([0x2f, 0xff, 0xfe])), "ERR_INVALID_ARG", /UTF-8/);
  });

  test('mapFile("/proc/self/status") is ERR_UNSUPPORTED naming it, not a silent 0-byte mapping', () => {
    const e = throwsCode(() => mapFile("/proc/self/status"), "ERR_UNSUPPORTED", /size 0/);
    assert.equal((e as { path?: string }).path, "/proc/self/status");
    throwsCode(() => mapFile(pathToFileURL("/proc/self/status")), "ERR_UNSUPPORTED");
  });

  test("an empty regular file still maps as 0 bytes", () => {
    const empty = path.join(dir, "empty.bin");
    fs.writeFileSync(empty, "");
    using m = mapFile(empty);
    assert.equal(m.byteLength, 0);
  });
});
