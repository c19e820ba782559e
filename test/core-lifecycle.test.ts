/**
 * Lifetime of a mapping: use after close (in a child process that must exit
 * normally), idempotent close and Symbol.dispose, detaching of windows and
 * resized predecessors, 20,000 map/close cycles, and mappings dropped without
 * close() being unmapped by garbage collection.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { mapFile, pageSize } from "../src/index.ts";
import { fdCount, makeTmpDir, mappingCount, removeTmpDir, runChild, throwsCode } from "./fixtures/core-helpers.ts";

let dir: string;
let file: string;
const SIZE = 3 * pageSize + 100;
before(() => {
  dir = makeTmpDir();
  file = path.join(dir, "data.bin");
  fs.writeFileSync(file, randomBytes(SIZE));
});
after(() => removeTmpDir(dir));

describe("use after close", () => {
  test("in a child: every view reads as empty, DataViews throw TypeError, every method throws ERR_CLOSED, and the process exits normally", async () => {
    const { code, signal, messages, stderr } = await runChild("core-lifecycle-child.ts", ["use-after-close", file]);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr);
    const results = (messages[0] as { results: Record<string, unknown>[] }).results;
    assert.equal(results.length, 3);
    const closed = "MmapError:ERR_CLOSED";
    for (const r of results) {
      assert.deepEqual(r, {
        access: r.access,
        closed: true,
        stale: false,
        lengths: [0, 0, 0, 0, 0, 0], // bytes before a resize, bytes, window, Float64 view, Int32Array, subarray
        byteLengths: [0, 0, 0],
        reads: [true, true, true, true, true, true], // every index reads undefined
        writes: "ok:undefined", // writes are dropped: bytes[0] still reads undefined
        dataView: ["TypeError", "TypeError", "TypeError", "TypeError"],
        newViewOnOldBuffer: "TypeError",
        fill: "TypeError",
        atomics: "TypeError",
        bufferFrom: "TypeError",
        methods: {
          buffer: closed, bytes: closed, view: closed, window: closed, flush: closed, flushAsync: closed,
          populateAsync: closed, advise: closed, lock: closed, unlock: closed, residency: closed, resize: closed,
        },
        pendingFlush: "ok", // a flushAsync in flight when close() was called still completes
        pendingPopulate: "ok", // so does a populateAsync: the unmap waits for it
        closeAgain: "ok:undefined",
        dispose: "ok:undefined",
        // each resize shortened its mapping by one; the write mapping's also shortened the file
        byteLength: r.access === "copy" ? SIZE - 2 : SIZE - 1,
      });
    }
    assert.equal(fs.statSync(file).size, SIZE - 1, "the write mapping's resize shrank the file");
    fs.writeFileSync(file, randomBytes(SIZE));
  });
});

describe("close and dispose", () => {
  test("close() is idempotent and detaches the buffer, bytes, windows and views", () => {
    const m = mapFile(file);
    const views = [m.bytes, m.window(0, 10), m.window(10, 10), m.view(Float64Array), new Uint8Array(m.buffer, 5, 5)];
    const buffer = m.buffer;
    m.close();
    m.close();
    assert.equal(m.closed, true);
    assert.deepEqual(views.map((v) => v.length), [0, 0, 0, 0, 0]);
    assert.equal(buffer.byteLength, 0);
    throwsCode(() => m.bytes, "ERR_CLOSED", /closed/);
    assert.equal((throwsCode(() => m.window(0, 1), "ERR_CLOSED") as unknown as { path: string }).path, file);
  });

  test("Symbol.dispose closes the mapping", () => {
    const m = mapFile(file, { access: "write" });
    const bytes = m.bytes;
    const fds = fdCount();
    m[Symbol.dispose]();
    assert.equal(m.closed, true);
    assert.equal(bytes.length, 0);
    assert.equal(fdCount(), fds - 1, "the write mapping's descriptor is closed");
    m[Symbol.dispose]();
  });

  test("resize detaches the views of every earlier size, and close detaches the current ones", () => {
    const m = mapFile(file, { access: "write" });
    const generations: Uint8Array[] = [];
    for (const length of [100, 2 * pageSize, 10, SIZE]) {
      generations.push(m.bytes, m.window(0, 5));
      m.resize(length);
      assert.ok(generations.every((v) => v.length === 0), `after resize(${length})`);
    }
    const current = m.bytes;
    assert.equal(current.length, SIZE);
    m.close();
    assert.equal(current.length, 0);
  });

  test("transferring a mapped buffer copies it: close() still detaches the original, the copy stays valid", () => {
    const m = mapFile(file, { access: "write" });
    const original = m.buffer;
    const moved = structuredClone(original, { transfer: [original] });
    assert.equal(original.byteLength, SIZE, "Node copies external buffers rather than moving them");
    m.bytes[0] = (new Uint8Array(moved)[0]! + 1) & 0xff;
    assert.notEqual(new Uint8Array(moved)[0], m.bytes[0], "the transferred buffer is a copy, not a view of the mapping");
    m.close();
    assert.equal(original.byteLength, 0, "the original is still detached by close()");
    assert.equal(new Uint8Array(moved).length, SIZE, "the copy outlives the mapping");
  });

  test("20,000 map/close cycles neither crash nor leak mappings or descriptors", () => {
    const maps = mappingCount(file);
    const fds = fdCount();
    const modes = ["read", "write", "copy"] as const;
    let checksum = 0;
    for (let i = 0; i < 20_000; i++) {
      const m = mapFile(file, { access: modes[i % 3]!, offset: i % 4097 });
      const bytes = m.bytes;
      const win = m.window(0, 1);
      checksum += bytes[0]! + win[0]!;
      m.close();
      if (bytes.length !== 0 || win.length !== 0) assert.fail(`cycle ${i}: views not detached`);
    }
    assert.ok(checksum > 0);
    assert.equal(mappingCount(file), maps);
    assert.equal(fdCount(), fds);
  });
});

describe("mappings dropped without close()", () => {
  test("thousands of dropped mappings are unmapped, and their descriptors closed, after GC", async () => {
    const { code, signal, messages, stderr } = await runChild("core-lifecycle-child.ts", ["gc-drop", file, "3000"], {
      nodeArgs: ["--expose-gc"],
    });
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr);
    const r = messages[0] as { baseline: { maps: number; fds: number }; peak: typeof r.baseline; after: typeof r.baseline; rounds: number };
    assert.equal(r.peak.maps - r.baseline.maps, 3000, "all 3000 were mapped at once");
    assert.ok(r.peak.fds - r.baseline.fds >= 1000, "the write mappings held descriptors");
    assert.deepEqual(r.after, r.baseline, `after ${r.rounds} GC rounds`);
  });
});
