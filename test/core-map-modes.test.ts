/**
 * Access modes ("read", "write", "copy") end to end with real files and real
 * processes; flush / flushAsync / advise / lock / residency; resize.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { mapFile, pageSize } from "../src/index.ts";
import { native, Access, FADV_DONTNEED } from "../src/core/native.ts";
import {
  dirtyKb, fileMaker, makeTmpDir, rejectsCode, removeTmpDir, runChild, smapsFor, throwsCode, type SmapsTotals,
} from "./fixtures/core-helpers.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

/** A new file in the test directory holding `content`. */
const fileWith = fileMaker(() => dir);

/** Writes dirty pages back and drops the file from the page cache (clean, unmapped pages only). */
function evict(file: string): void {
  const fd = fs.openSync(file, "r");
  try {
    fs.fsyncSync(fd);
    native.fadvise(fd, 0, 0, FADV_DONTNEED);
  } finally {
    fs.closeSync(fd);
  }
}

/** The smaps totals of a file of `pages` random pages while `map(file)` holds it mapped (it returns the unmapping). */
function smapsWhileMapped(pages: number, map: (file: string) => () => void): SmapsTotals {
  const file = fileWith(randomBytes(pages * pageSize));
  const unmap = map(file);
  try {
    return smapsFor(file);
  } finally {
    unmap();
  }
}

const PAGES = 4;
const SIZE = PAGES * pageSize + 123; // ends mid-page

describe("access modes", () => {
  test('"read" maps exactly the file\'s bytes and reports its properties', () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file);
    assert.equal(m.access, "read");
    assert.equal(m.path, file);
    assert.equal(m.offset, 0);
    assert.equal(m.byteLength, SIZE);
    assert.equal(m.closed, false);
    assert.equal(m.stale, false);
    assert.equal(m.buffer.byteLength, SIZE);
    assert.ok(Buffer.from(m.buffer).equals(content));
    const dv = new DataView(m.buffer);
    assert.equal(dv.getUint32(SIZE - 4, true), content.readUInt32LE(SIZE - 4));
    m.close();
    assert.equal(m.closed, true);
  });

  test('"write" round trip: typed views, DataView and bytes all write through to the file, with no flush', () => {
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write" });
    const f64 = m.view(Float64Array, 8, 2);
    f64[0] = Math.PI;
    f64[1] = -0.5;
    new DataView(m.buffer).setBigUint64(pageSize * 2, 0x0123456789abcdefn, true);
    m.bytes[SIZE - 1] = 0x7e;
    const onDisk = fs.readFileSync(file); // read(2) sees the page cache the mapping writes to
    assert.equal(onDisk.readDoubleLE(8), Math.PI);
    assert.equal(onDisk.readDoubleLE(16), -0.5);
    assert.equal(onDisk.readBigUInt64LE(pageSize * 2), 0x0123456789abcdefn);
    assert.equal(onDisk[SIZE - 1], 0x7e);
    assert.equal(onDisk.length, SIZE, "writing through a mapping never changes the file size");
    m.close();
  });

  test('"write": what one process writes is visible to another process mapping the file, with no flush', async () => {
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write" });
    const offsets = [0, 1, pageSize - 1, pageSize, 3 * pageSize + 7, SIZE - 1];
    offsets.forEach((o, i) => (m.bytes[o] = 0xa0 + i));
    const { code, signal, messages } = await runChild("core-map-child.ts", ["read", file, offsets.join(",")]);
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
    assert.deepEqual(messages[0], { bytes: offsets.map((_, i) => 0xa0 + i), byteLength: SIZE });

    // The other way: a child writes and exits; this process's existing view sees it.
    const view = m.bytes;
    const child = await runChild("core-map-child.ts", ["write", file, String(pageSize * 2 + 5), "c0ffee"]);
    assert.equal(child.code, 0, child.stderr);
    assert.deepEqual([...view.subarray(pageSize * 2 + 5, pageSize * 2 + 8)], [0xc0, 0xff, 0xee]);
    m.close();
  });

  test('"write": the data persists after close and reaches a new mapping and plain reads', () => {
    const content = randomBytes(SIZE);
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write" });
    m.bytes.set(content);
    m.close();
    assert.ok(fs.readFileSync(file).equals(content));
    const again = mapFile(file);
    assert.ok(Buffer.from(again.buffer).equals(content));
    again.close();
  });

  test('"copy": writes are seen by the mapping itself, never by the file or another process', async () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file, { access: "copy" });
    assert.equal(m.access, "copy");
    m.bytes.fill(0x55, 0, pageSize + 10);
    m.bytes[SIZE - 1] = content[SIZE - 1]! ^ 0xff;
    assert.equal(m.bytes[0], 0x55, "the copy sees its own writes");
    assert.equal(m.bytes[SIZE - 1], content[SIZE - 1]! ^ 0xff);
    assert.ok(fs.readFileSync(file).equals(content), "the file is unchanged");
    const other = mapFile(file);
    assert.equal(other.bytes[0], content[0], "another mapping in this process sees the file");
    other.close();
    const { code, messages } = await runChild("core-map-child.ts", ["read", file, `0,${pageSize},${SIZE - 1}`]);
    assert.equal(code, 0);
    assert.deepEqual(messages[0], { bytes: [content[0], content[pageSize], content[SIZE - 1]], byteLength: SIZE });
    m.flush(); // msync of a private mapping writes nothing back
    m.close();
    assert.ok(fs.readFileSync(file).equals(content), "the file is unchanged after flush and close");
  });

  test('"read": a stray write neither faults nor reaches the file', () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file);
    m.bytes[10] = content[10]! ^ 0xff; // JavaScript has no read-only typed arrays
    new DataView(m.buffer).setUint32(pageSize, 0xdeadbeef);
    assert.ok(fs.readFileSync(file).equals(content), "the file is unchanged");
    const other = mapFile(file);
    assert.equal(other.bytes[10], content[10]);
    other.close();
    m.close();
    assert.ok(fs.readFileSync(file).equals(content), "the file is unchanged after close");
  });

  test('"read": a stray write in a child process: the child exits normally, the file is unchanged', async () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const { code, signal, messages, stderr } = await runChild("core-map-child.ts", ["stray", file]);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr);
    const expected: number[] = [];
    for (let i = 0; i < SIZE; i += 4096) expected.push(content[i]! ^ 0xff);
    assert.deepEqual(messages[0], { wroteTo: expected.length, readBack: expected });
    assert.ok(fs.readFileSync(file).equals(content));
  });
});

describe("flush, flushAsync, advise, lock, residency", () => {
  test("flush() writes the dirty pages back: the mapping has no dirty pages afterwards", () => {
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write" });
    m.bytes.fill(1);
    assert.ok(dirtyKb(file) > 0, "pages are dirty after writing");
    m.flush();
    assert.equal(dirtyKb(file), 0);
    m.bytes[pageSize * 2 + 1] = 2;
    assert.ok(dirtyKb(file) > 0);
    m.flush(pageSize * 2, 10); // a range: msync of the pages covering it
    assert.equal(dirtyKb(file), 0);
    m.flush(SIZE, 0); // empty range at the end
    m.close();
  });

  test("flushAsync() resolves once the pages are written back", async () => {
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write" });
    m.bytes.fill(3);
    assert.ok(dirtyKb(file) > 0);
    const pending = m.flushAsync();
    assert.ok(pending instanceof Promise);
    await pending;
    assert.equal(dirtyKb(file), 0);
    m.bytes[5] = 4;
    await m.flushAsync(1, 10);
    assert.equal(dirtyKb(file), 0);
    m.close();
  });

  test("populateAsync() maps every page in ahead of use: writable for a shared map, never a private copy", async () => {
    const content = randomBytes(64 * pageSize);
    const file = fileWith(content);
    const kb = content.length / 1024;
    for (const access of ["write", "read", "copy"] as const) {
      evict(file); // clean, and read back from the disk by the populate
      const m = mapFile(file, { access });
      assert.equal(smapsFor(file).Rss, 0, `${access}: nothing is mapped in before`);
      const pending = m.populateAsync();
      assert.ok(pending instanceof Promise);
      await pending;
      const after = smapsFor(file);
      assert.equal(after.Rss, kb, `${access}: every page is mapped in`);
      assert.equal(after.Anonymous, 0, `${access}: no private copies`);
      // A shared map is faulted for writing (the pages are dirtied), others only for reading.
      assert.equal(dirtyKb(file) > 0, access === "write", `${access}: dirty ${dirtyKb(file)} kB`);
      await m.populateAsync(pageSize + 1, 10); // a range
      await rejectsCode(() => m.populateAsync(10, content.length), "ERR_OUT_OF_RANGE");
      m.close();
    }
    assert.ok(fs.readFileSync(file).equals(content), "populating changed no byte");
  });

  test("flush ranges outside the mapping are ERR_OUT_OF_RANGE; bad numbers ERR_INVALID_ARG", async () => {
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write" });
    throwsCode(() => m.flush(0, SIZE + 1), "ERR_OUT_OF_RANGE", /outside the mapping/);
    throwsCode(() => m.flush(SIZE + 1), "ERR_OUT_OF_RANGE");
    throwsCode(() => m.flush(-1), "ERR_INVALID_ARG", /must not be negative/);
    throwsCode(() => m.flush(0.5), "ERR_INVALID_ARG", /integer/);
    await rejectsCode(() => m.flushAsync(10, SIZE), "ERR_OUT_OF_RANGE");
    m.close();
  });

  test("advise() accepts every advice on the whole mapping and on a range; rejects others", () => {
    const file = fileWith(randomBytes(SIZE));
    const m = mapFile(file);
    for (const advice of ["normal", "sequential", "random", "willneed"] as const) {
      m.advise(advice);
      m.advise(advice, 1, pageSize);
    }
    throwsCode(() => m.advise("dontneed" as never), "ERR_INVALID_ARG", /advice must be one of/);
    throwsCode(() => m.advise("random", 0, SIZE + 1), "ERR_OUT_OF_RANGE");
    m.close();
  });

  test("residency() reports which pages are in memory", () => {
    const pages = 16;
    const file = fileWith(randomBytes(pages * pageSize));
    evict(file);
    const m = mapFile(file, { advice: "random" }); // no readahead: a fault reads just its page
    const cold = m.residency();
    assert.equal(cold.totalPages, pages);
    assert.equal(cold.pageSize, pageSize);
    assert.equal(cold.residentPages, 0, "an evicted file has no pages in memory");
    void m.bytes[5 * pageSize + 100];
    const warm = m.residency();
    assert.equal(warm.pages[5], 1, "the page just read is resident");
    assert.ok(warm.residentPages >= 1 && warm.residentPages < pages, `resident ${warm.residentPages}`);
    const range = m.residency(5 * pageSize - 1, 2); // straddles pages 4 and 5
    assert.equal(range.totalPages, 2);
    assert.equal(range.pages[1], 1);
    m.close();
  });

  test("populate pre-faults every page, and a populated \"read\" mapping stays shared (no private copies)", () => {
    const pages = 64;
    const file = fileWith(randomBytes(pages * pageSize));
    evict(file);
    const m = mapFile(file, { populate: true });
    assert.equal(m.residency().residentPages, pages);
    const s = smapsFor(file);
    assert.equal(s.Rss, (pages * pageSize) / 1024, "every page is mapped into this process");
    assert.equal(s.Anonymous, 0, "populating must not copy the file into anonymous memory");
    m.close();
    evict(file);
    const w = mapFile(file, { access: "write", populate: true, offset: 100 });
    assert.equal(w.residency().residentPages, pages);
    w.close();
  });

  test("the native populate flag on a private mapping pre-faults without copying pages", () => {
    const pages = 16;
    const s = smapsWhileMapped(pages, (file) => {
      const fd = fs.openSync(file, "r");
      const handle = native.map(fd, 0, pages * pageSize, Access.read, true);
      fs.closeSync(fd);
      return () => native.unmap(handle);
    });
    assert.equal(s.Rss, (pages * pageSize) / 1024);
    assert.equal(s.Anonymous, 0, "MAP_POPULATE broke copy-on-write on every page");
  });

  // AddressSanitizer (npm run test:asan) replaces mlock/munlock with no-ops.
  const asan = process.env.MEMMAP_ASAN === "1" && "mlock is a no-op under AddressSanitizer";
  test("lock() keeps every page of the range resident; unlock() releases them", { skip: asan }, () => {
    const pages = 32;
    const file = fileWith(randomBytes(pages * pageSize));
    evict(file);
    const m = mapFile(file, { access: "write" });
    m.lock();
    assert.equal(m.residency().residentPages, pages);
    assert.equal(smapsFor(file).Locked, (pages * pageSize) / 1024);
    m.unlock();
    assert.equal(smapsFor(file).Locked, 0);
    m.lock(pageSize, pageSize);
    assert.equal(smapsFor(file).Locked, pageSize / 1024);
    m.unlock(pageSize, pageSize);
    throwsCode(() => m.lock(0, pages * pageSize + 1), "ERR_OUT_OF_RANGE");
    m.close();
  });

  test('lock() on a "read" mapping keeps its pages shared with the page cache (no private copies)', () => {
    const pages = 32;
    const s = smapsWhileMapped(pages, (file) => {
      const m = mapFile(file);
      m.lock();
      return () => m.close();
    });
    assert.equal(s.Locked, (pages * pageSize) / 1024);
    assert.equal(s.Anonymous, 0, "mlock broke copy-on-write on every page");
  });
});

describe("resize", () => {
  test('"write": growing grows the file (allocated) and the mapping; old views are detached, data kept', () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file, { access: "write" });
    const oldBytes = m.bytes;
    const oldWindow = m.window(10, 10);
    const oldView = m.view(Uint16Array, 0, 8);
    const newLength = 64 * pageSize + 5;
    m.resize(newLength);
    assert.equal(m.byteLength, newLength);
    assert.equal(oldBytes.length, 0, "old bytes detached");
    assert.equal(oldWindow.length, 0, "old window detached");
    assert.equal(oldView.length, 0, "old typed view detached");
    const st = fs.statSync(file);
    assert.equal(st.size, newLength, "the file follows the mapping");
    assert.ok(st.blocks * 512 >= newLength, `space is allocated (blocks ${st.blocks})`);
    assert.ok(Buffer.from(m.buffer, 0, SIZE).equals(content), "data kept");
    assert.ok(m.bytes.subarray(SIZE).every((b) => b === 0), "the new part reads as zeros");
    m.bytes[newLength - 1] = 0x99;
    assert.equal(fs.readFileSync(file)[newLength - 1], 0x99, "the grown part reaches the file");
    m.close();
  });

  test('"write" with sparse: growing keeps the file sparse', () => {
    const file = path.join(dir, "sparse.bin");
    const m = mapFile(file, { access: "write", create: true, size: pageSize, sparse: true });
    m.resize(256 * pageSize);
    const st = fs.statSync(file);
    assert.equal(st.size, 256 * pageSize);
    assert.ok(st.blocks * 512 < 16 * pageSize, `a sparse file allocates nothing (blocks ${st.blocks})`);
    m.close();
  });

  test('"write": shrinking a mapping that reaches the end of the file shrinks the file; data before is kept', () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file, { access: "write" });
    const old = m.bytes;
    m.resize(pageSize + 10);
    assert.equal(old.length, 0);
    assert.equal(fs.statSync(file).size, pageSize + 10);
    assert.ok(Buffer.from(m.buffer).equals(content.subarray(0, pageSize + 10)));
    m.close();
  });

  test('"write": shrinking a mapping that ends before the end of the file leaves the file alone', () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file, { access: "write", offset: 100, length: pageSize });
    m.resize(50);
    assert.equal(fs.statSync(file).size, SIZE);
    assert.ok(Buffer.from(m.buffer).equals(content.subarray(100, 150)));
    m.resize(SIZE + pageSize); // from offset 100: grows the file to 100 + SIZE + pageSize
    assert.equal(fs.statSync(file).size, 100 + SIZE + pageSize);
    m.close();
  });

  test('"write": resize to 0 and back', () => {
    const file = fileWith(randomBytes(SIZE));
    const m = mapFile(file, { access: "write" });
    m.resize(0);
    assert.equal(m.byteLength, 0);
    assert.equal(m.bytes.length, 0);
    assert.equal(fs.statSync(file).size, 0, "the mapping covered the whole file");
    m.resize(pageSize);
    assert.equal(fs.statSync(file).size, pageSize);
    m.bytes[pageSize - 1] = 1;
    assert.equal(fs.readFileSync(file)[pageSize - 1], 1);
    m.close();
  });

  test('"read": resize is limited to the file; a refused resize changes nothing', () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file, { length: pageSize });
    const before = m.bytes;
    throwsCode(() => m.resize(SIZE + 1), "ERR_OUT_OF_RANGE", /the file has/);
    assert.equal(before.length, pageSize, "views survive a refused resize");
    assert.equal(fs.statSync(file).size, SIZE);
    m.resize(SIZE);
    assert.equal(before.length, 0);
    assert.ok(Buffer.from(m.buffer).equals(content));
    m.resize(10);
    assert.ok(Buffer.from(m.buffer).equals(content.subarray(0, 10)));
    assert.equal(fs.statSync(file).size, SIZE, "a read mapping never changes the file");
    m.close();
  });

  test('"copy": resize keeps the private changes', () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file, { access: "copy", length: pageSize });
    m.bytes[7] = content[7]! ^ 1;
    m.resize(SIZE);
    assert.equal(m.bytes[7], content[7]! ^ 1);
    assert.equal(m.bytes[SIZE - 1], content[SIZE - 1]);
    throwsCode(() => m.resize(SIZE + 1), "ERR_OUT_OF_RANGE");
    assert.ok(fs.readFileSync(file).equals(content));
    m.close();
  });

  test("resize while a populateAsync() runs is refused with ERR_BUSY", async () => {
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write" });
    const pending = m.populateAsync();
    throwsCode(() => m.resize(SIZE * 2), "ERR_BUSY", /populateAsync/);
    await pending;
    m.resize(SIZE * 2);
    m.close();
  });

  test("resize while a flushAsync() runs is refused with ERR_BUSY and changes nothing", async () => {
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write" });
    const view = m.bytes;
    view.fill(9);
    const pending = m.flushAsync();
    throwsCode(() => m.resize(SIZE * 2), "ERR_BUSY", /flushAsync/);
    assert.equal(view.length, SIZE, "views stay attached");
    assert.equal(fs.statSync(file).size, SIZE, "the file did not grow");
    await pending;
    m.resize(SIZE * 2);
    assert.equal(fs.statSync(file).size, SIZE * 2);
    m.close();
  });

  test("resize through a path that now names another file is refused with ERR_STALE", () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file, { length: 10 });
    const replacement = fileWith(randomBytes(3 * SIZE));
    fs.renameSync(replacement, file);
    throwsCode(() => m.resize(2 * SIZE), "ERR_STALE", /replaced/);
    assert.ok(Buffer.from(m.buffer).equals(content.subarray(0, 10)), "the mapping still shows the original file");
    m.close();
  });

  test("bad lengths are ERR_INVALID_ARG", () => {
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write" });
    for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 53, "10"]) throwsCode(() => m.resize(bad as number), "ERR_INVALID_ARG");
    assert.equal(fs.statSync(file).size, SIZE);
    m.close();
  });
});
