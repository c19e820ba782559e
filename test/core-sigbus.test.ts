/**
 * The SIGBUS guard: a file truncated under a mapping must not kill the
 * process (the mapping turns stale), while a SIGBUS that is not about one of
 * memmap's mappings must still kill it, as it would without memmap.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { mapFile, pageSize } from "../src/index.ts";
import { Child, makeTmpDir, removeTmpDir, runChild, throwsCode, withTmpfs } from "./fixtures/core-helpers.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

const PAGES = 8;

describe("a file truncated while mapped", () => {
  test("by another process: the reader touches the lost pages, survives, and its mappings turn stale", async () => {
    const file = path.join(dir, "shrinks.bin");
    fs.writeFileSync(file, Buffer.alloc(PAGES * pageSize, 0x5a));
    const child = new Child("core-sigbus-child.ts", ["truncated", file]);
    try {
      const ready = await child.next<{ mapped: boolean; before: Record<string, boolean> }>();
      assert.deepEqual(ready, { mapped: true, before: { read: false, write: false, copy: false, head: false } });
      fs.truncateSync(file, pageSize); // this process is the "other process"
      child.send({ op: "touch" });
      const r = await child.next();
      await child.exitsCleanly();
      assert.deepEqual(r, {
        lost: { read: 0, write: 0, copy: 0 }, // the lost pages read as zeros
        firstByteAfter: { read: 0x5a, write: 0x5a }, // only the lost pages were replaced: the first still reads the file
        stale: { read: true, write: true, copy: true, head: false },
        head: { byte: 0x5a, length: pageSize, window: "ok" }, // a mapping of the surviving page is untouched
        methods: {
          flush: "ERR_STALE", window: "ERR_STALE", view: "ERR_STALE", advise: "ERR_STALE",
          lock: "ERR_STALE", residency: "ERR_STALE", resize: "ERR_STALE", flushAsync: "ERR_STALE",
        },
        close: { read: "ok", write: "ok", copy: "ok", head: "ok" },
        detached: true,
      });
      const after = fs.readFileSync(file);
      assert.equal(after.length, pageSize, "the stale mapping wrote nothing back");
      assert.ok(after.every((b) => b === 0x5a));
    } finally {
      child.kill();
    }
  });

  test("in this process: stale stays false until a lost page is touched, then the process goes on", () => {
    const file = path.join(dir, "shrinks-here.bin");
    fs.writeFileSync(file, Buffer.alloc(PAGES * pageSize, 1));
    const m = mapFile(file, { access: "write" });
    const bytes = m.bytes;
    fs.truncateSync(file, 2 * pageSize);
    assert.equal(m.stale, false, "nothing has faulted yet");
    assert.equal(bytes[pageSize], 1, "surviving pages still read the file");
    assert.equal(bytes[5 * pageSize], 0, "a lost page reads as zero");
    assert.equal(m.stale, true);
    throwsCode(() => m.flush(), "ERR_STALE", /shrank/);
    assert.equal(bytes[pageSize], 1, "after the fault, the surviving prefix still reads the file");
    bytes[pageSize + 7] = 42;
    assert.equal(fs.readFileSync(file)[pageSize + 7], 42, "and writes to it still reach the file");
    bytes[6 * pageSize] = 9;
    assert.equal(bytes[6 * pageSize], 9, "the replacement pages are ordinary memory");
    m.close();
    assert.equal(m.stale, false, "a closed mapping is not reported stale");
    assert.equal(bytes.length, 0);
    assert.equal(fs.statSync(file).size, 2 * pageSize);
    const again = mapFile(file); // mapping the file again works normally
    assert.equal(again.bytes[pageSize], 1);
    assert.equal(again.stale, false);
    again.close();
  });
});

describe("a write that finds no space on a full disk", () => {
  test("a sparse mapping larger than a 1 MiB tmpfs: the faulting write turns the mapping stale, the process goes on", (t) =>
    withTmpfs(t, dir, "1m", async (mnt) => {
      const file = path.join(mnt, "sparse.bin");
      const size = 4 * 2 ** 20;
      const { code, signal, messages, stderr } = await runChild("core-sigbus-child.ts", ["fill-sparse", file, String(size)]);
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr);
      assert.deepEqual(messages[0], { pages: size / pageSize, stale: true, flush: "ERR_STALE" });
      assert.ok(fs.statSync(file).blocks * 512 <= 2 ** 20, "no more than the file system holds was written");
    }));
});

describe("a process.on(\"SIGBUS\") listener", () => {
  test(
    "added before mapping does not disable the guard: a truncated file still turns the mapping stale",
    {},
    async () => {
      const file = path.join(dir, "listener.bin");
      const { code, signal, messages } = await runChild("core-sigbus-child.ts", ["listener", file], { timeoutMs: 20_000 });
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, "the process hung in a SIGBUS loop and was killed");
      assert.deepEqual(messages[0], { lost: 0, stale: true });
    },
  );
});

describe("SIGBUS listeners added and removed around mappings", () => {
  // Each run: the steps in order; every touch must turn the mapping stale with the
  // surviving page intact, every kill must reach the listener, and the child exits normally.
  const cases: [string, unknown[]][] = [
    ["map,add,touch,kill", [{ first: 1, lost: 0, stale: true }, { heard: 1 }]],
    ["add,map,remove,touch", [{ first: 1, lost: 0, stale: true }]],
    ["map,add,remove,touch", [{ first: 1, lost: 0, stale: true }]],
    ["add,map,kill,remove,add,touch,kill", [{ heard: 1 }, { first: 1, lost: 0, stale: true }, { heard: 1 }]],
  ];
  for (const [steps, expected] of cases) {
    test(`${steps}: the guard keeps working and the listener hears signals that are not about a mapping`, async () => {
      const file = path.join(dir, `steps-${steps.replaceAll(",", "-")}.bin`);
      const { code, signal, messages, stderr } = await runChild("core-sigbus-child.ts", ["listener-steps", file, steps], { timeoutMs: 20_000 });
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, `the child died or hung in a SIGBUS loop:\n${stderr}`);
      assert.deepEqual(messages[0], expected);
    });
  }
});

describe("a SIGBUS that is not about memmap's mappings", () => {
  test("a SIGBUS sent with kill() still kills the process by SIGBUS", async () => {
    const file = path.join(dir, "plain.bin");
    fs.writeFileSync(file, Buffer.alloc(pageSize, 2));
    const { signal, code, messages } = await runChild("core-sigbus-child.ts", ["self-sigbus", file]);
    assert.deepEqual(messages, [{ mapped: true }], "the child must not report surviving");
    assert.deepEqual({ code, signal }, { code: null, signal: "SIGBUS" });
  });

  const hasSqlite = (() => {
    try {
      createRequire(path.join(import.meta.dirname, "..", "bench", "package.json"))("better-sqlite3"); // bench/'s own dependency (npm run bench:setup)
      return true;
    } catch {
      return false;
    }
  })();

  test(
    "a real fault in another library's mapping (SQLite's mmap) still kills the process by SIGBUS",
    { skip: hasSqlite ? false : "better-sqlite3 is not installed (npm run bench:setup)" },
    async () => {
      const file = path.join(dir, "foreign.db");
      const { signal, code, messages, stderr } = await runChild("core-sigbus-child.ts", ["foreign-sigbus", file]);
      assert.equal(messages.length, 2, `expected "mapped" and "truncated", got ${JSON.stringify(messages)}\n${stderr}`);
      assert.deepEqual(messages[1], { truncated: true });
      assert.deepEqual({ code, signal }, { code: null, signal: "SIGBUS" }, "the fault must not be swallowed");
    },
  );
});
