/**
 * One physical copy shared by many processes, and shared memory without a
 * file handed to a child process through a stdio slot.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { createSharedMemory, mapFile, pageSize } from "../src/index.ts";
import { Child, fdCount, makeTmpDir, removeTmpDir, throwsCode, type SmapsTotals } from "./fixtures/core-helpers.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

describe("many processes mapping one file", () => {
  test("4 processes map a 64 MiB file read-only and touch every page: each one's Pss is a fraction of its Rss (one physical copy)", async () => {
    const SIZE = 64 * 2 ** 20;
    const file = path.join(dir, "shared.bin");
    const content = Buffer.alloc(SIZE);
    for (let i = 0; i < SIZE; i += pageSize) content[i] = (i / pageSize) & 0xff;
    fs.writeFileSync(file, content); // in the page cache now
    const expectedSum = Array.from({ length: SIZE / pageSize }, (_, p) => p & 0xff).reduce((a, b) => a + b, 0);

    const N = 4;
    const children = Array.from({ length: N }, () => new Child("core-sharing-child.ts", ["touch", file]));
    try {
      // All of them hold their mapping, every page touched, while each one measures.
      for (const child of children) assert.deepEqual(await child.next(), { touched: SIZE / pageSize, sum: expectedSum });
      const reports: { smaps: SmapsTotals; resident: number }[] = [];
      for (const child of children) {
        child.send({ op: "measure" });
        reports.push(await child.next());
      }
      for (const child of children) child.send({ op: "exit" });
      await Promise.all(children.map((c) => c.exitsCleanly()));
      const rssKb = SIZE / 1024;
      for (const [i, r] of reports.entries()) {
        assert.equal(r.smaps.mappings, 1, `child ${i}`);
        assert.equal(r.resident, SIZE / pageSize, `child ${i}: every page resident`);
        assert.equal(r.smaps.Rss, rssKb, `child ${i}: every page mapped`);
        assert.equal(r.smaps.Anonymous, 0, `child ${i}: no private copies`);
        // N processes share each page: Pss ≈ Rss / N. Half is a generous bound that one copy per process would break.
        assert.ok(r.smaps.Pss < rssKb / 2, `child ${i}: Pss ${r.smaps.Pss} kB is not well under Rss ${rssKb} kB`);
        assert.ok(r.smaps.Pss >= rssKb / (N + 2), `child ${i}: Pss ${r.smaps.Pss} kB`);
      }
    } finally {
      for (const c of children) c.kill();
    }
  });
});

describe("createSharedMemory", () => {
  test("its fd goes to a child through a stdio slot, is mapped there with mapFile(fd), and writes are visible both ways", async () => {
    const SIZE = 4 * pageSize;
    const shm = createSharedMemory(SIZE);
    const m = shm.map();
    assert.equal(m.byteLength, SIZE);
    assert.equal(m.access, "write");
    assert.equal(m.path, undefined);
    assert.ok(m.bytes.every((b) => b === 0), "shared memory starts zeroed");
    m.bytes.set(new TextEncoder().encode("hello from the parent"));
    const child = new Child("core-sharing-child.ts", ["shm"], { stdio: ["pipe", "pipe", "pipe", shm.fd] });
    try {
      assert.deepEqual(await child.next(), { byteLength: SIZE, path: null, read: "hello from the parent" });
      // The child's write is in this process's mapping, with no flush and no message carrying it.
      const reply = m.bytes.subarray(pageSize, pageSize + 20);
      assert.equal(new TextDecoder().decode(reply), "hello from the child");
      m.view(Float64Array, 2 * pageSize, 1)[0] = 6.5;
      child.send({ op: "check" });
      assert.deepEqual(await child.next(), { second: 6.5 });
      await child.exitsCleanly();
    } finally {
      child.kill();
    }
    // Closing the descriptor leaves existing mappings working.
    shm.close();
    shm.close();
    assert.equal(shm.closed, true);
    throwsCode(() => shm.fd, "ERR_CLOSED");
    throwsCode(() => shm.map(), "ERR_CLOSED");
    m.bytes[0] = 1;
    assert.equal(m.bytes[0], 1);
    m.close();
  });

  test("two mappings of one shared memory in one process alias the same pages", () => {
    const shm = createSharedMemory(pageSize);
    const a = shm.map();
    const b = mapFile(shm.fd, { access: "write", offset: 100, length: 8 });
    a.bytes[100] = 42;
    assert.equal(b.bytes[0], 42);
    a.close();
    b.close();
    shm.close();
  });

  test("sizes: 0 is valid; bad sizes are ERR_INVALID_ARG; more than the memory available is ENOMEM before any allocation, leaking no descriptor", () => {
    const empty = createSharedMemory(0);
    const e = empty.map();
    assert.equal(e.byteLength, 0);
    e.close();
    empty.close();
    const fds = fdCount();
    for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 53, "4096"]) throwsCode(() => createSharedMemory(bad as number), "ERR_INVALID_ARG");
    throwsCode(() => createSharedMemory(2 ** 50), "ENOMEM", /available/);
    const shm = createSharedMemory(pageSize);
    throwsCode(() => shm.map({ size: 2 ** 50 }), "ENOMEM", /in memory/); // growing it later is checked too
    const m = shm.map();
    assert.equal(m.byteLength, pageSize, "the refused growth left the memory as it was");
    m.close();
    shm.close();
    throwsCode(() => createSharedMemory(4096, { name: "a/b" }), "ERR_INVALID_ARG", /name/);
    assert.equal(fdCount(), fds);
  });
});
