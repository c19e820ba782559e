/**
 * Offsets and lengths: unaligned offsets, lengths ending mid-page, empty
 * files, a single page, offset at the end of the file, a sparse file over
 * 4 GiB reached through window(), and view() alignment and bounds.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { MAX_BUFFER_LENGTH, mapFile, pageSize } from "../src/index.ts";
import { dirtyKb, fileMaker, makeTmpDir, removeTmpDir, throwsCode } from "./fixtures/core-helpers.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

/** A new file in the test directory holding `content`. */
const fileWith = fileMaker(() => dir);

const SIZE = 5 * pageSize + 77;

describe("offsets and lengths", () => {
  const offsets = [1, 100, pageSize - 1, pageSize, pageSize + 1, 3 * pageSize + 17];

  test("any byte offset: byte 0 of the mapping is exactly the file's byte at `offset`, in every mode", () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    for (const access of ["read", "write", "copy"] as const) {
      for (const offset of offsets) {
        for (const length of [1, pageSize - 1, 2 * pageSize + 5, SIZE - offset]) {
          if (offset + length > SIZE) continue;
          const m = mapFile(file, { access, offset, length });
          assert.equal(m.offset, offset);
          assert.equal(m.byteLength, length);
          assert.ok(
            Buffer.from(m.buffer).equals(content.subarray(offset, offset + length)),
            `${access} offset ${offset} length ${length}`,
          );
          assert.equal(m.view(Uint8Array, length - 1, 1)[0], content[offset + length - 1]);
          m.close();
        }
      }
    }
  });

  test("writes through an unaligned mapping land at offset + index in the file", () => {
    const file = fileWith(new Uint8Array(SIZE));
    for (const offset of offsets) {
      const m = mapFile(file, { access: "write", offset, length: pageSize + 3 });
      m.bytes[0] = offset & 0xff || 1;
      m.bytes[pageSize + 2] = 0xee; // the last byte, in a page the offset alignment added
      m.close();
      const disk = fs.readFileSync(file);
      assert.equal(disk[offset], offset & 0xff || 1, `offset ${offset}`);
      assert.equal(disk[offset + pageSize + 2], 0xee);
      fs.writeFileSync(file, new Uint8Array(SIZE));
    }
  });

  test("no length given: the mapping runs from offset to the end of the file", () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file, { offset: 3 * pageSize + 17 });
    assert.equal(m.byteLength, SIZE - 3 * pageSize - 17);
    assert.equal(m.bytes[m.byteLength - 1], content[SIZE - 1]);
    m.close();
  });

  test("flush, advise, lock and residency on unaligned ranges cover the right pages", () => {
    const file = fileWith(new Uint8Array(SIZE));
    const m = mapFile(file, { access: "write", offset: pageSize - 1, length: 2 });
    assert.equal(m.residency().totalPages, 2, "two bytes straddling a page boundary cover two pages");
    m.bytes[0] = 1;
    m.bytes[1] = 2;
    assert.ok(dirtyKb(file) > 0);
    m.flush(1, 1); // only the second byte, in the second page
    m.flush(0, 1);
    assert.equal(dirtyKb(file), 0);
    m.advise("willneed", 1, 1);
    m.lock(0, 2);
    assert.equal(m.residency().residentPages, 2);
    m.unlock(0, 2);
    m.close();
    const disk = fs.readFileSync(file);
    assert.deepEqual([disk[pageSize - 1], disk[pageSize]], [1, 2]);
  });

  test("an empty file maps to length 0 in every mode, and every method works on it", async () => {
    const file = fileWith(new Uint8Array(0));
    for (const access of ["read", "write", "copy"] as const) {
      const m = mapFile(file, { access });
      assert.equal(m.byteLength, 0);
      assert.equal(m.bytes.length, 0);
      assert.equal(m.buffer.byteLength, 0);
      assert.equal(m.view(Float64Array).length, 0);
      assert.equal(m.window(0, 0).length, 0);
      m.flush();
      await m.flushAsync();
      m.advise("sequential");
      m.lock();
      m.unlock();
      assert.deepEqual({ ...m.residency(), pages: [...m.residency().pages] }, { residentPages: 0, totalPages: 0, pageSize, pages: [] });
      assert.equal(m.stale, false);
      m.resize(0);
      throwsCode(() => m.window(0, 1), "ERR_OUT_OF_RANGE");
      m.close();
      m.close();
    }
    const w = mapFile(file, { access: "write" });
    w.resize(100); // an empty mapping can grow
    w.bytes[99] = 7;
    w.close();
    assert.equal(fs.readFileSync(file)[99], 7);
  });

  test("exactly one page", () => {
    const content = randomBytes(pageSize);
    const file = fileWith(content);
    const m = mapFile(file);
    assert.equal(m.byteLength, pageSize);
    assert.equal(m.bytes[pageSize - 1], content[pageSize - 1]);
    assert.equal(m.residency().totalPages, 1);
    throwsCode(() => m.window(pageSize, 1), "ERR_OUT_OF_RANGE");
    m.close();
    const last = mapFile(file, { offset: pageSize - 1 });
    assert.deepEqual([...last.bytes], [content[pageSize - 1]]);
    last.close();
  });

  test("offset == file size gives an empty mapping; a length 0 mapping mid-file too", () => {
    const file = fileWith(randomBytes(SIZE));
    for (const options of [{ offset: SIZE }, { offset: SIZE, length: 0 }, { offset: 10, length: 0 }, { offset: pageSize, length: 0 }]) {
      const m = mapFile(file, options);
      assert.equal(m.byteLength, 0);
      assert.equal(m.bytes.length, 0);
      m.close();
    }
    throwsCode(() => mapFile(file, { offset: SIZE + 1 }), "ERR_OUT_OF_RANGE", /beyond the end of the file/);
    throwsCode(() => mapFile(file, { offset: SIZE, length: 1 }), "ERR_OUT_OF_RANGE");
  });
});

describe("a sparse file larger than 4 GiB", () => {
  const BIG = 5 * 2 ** 30 + 123;

  test("is created with size + sparse, reached at its last byte through window(), and detaches its windows on close", () => {
    const file = path.join(dir, "big.bin");
    const m = mapFile(file, { access: "write", create: true, size: BIG, sparse: true });
    const st = fs.statSync(file);
    assert.equal(st.size, BIG);
    assert.ok(st.blocks * 512 < 2 ** 20, `sparse: nothing allocated (blocks ${st.blocks})`);
    assert.equal(m.byteLength, BIG);

    const last = m.window(BIG - 1, 1);
    last[0] = 0xab;
    const straddle = m.window(2 ** 32 - 2, 4); // across the 4 GiB line
    straddle.set([1, 2, 3, 4]);
    const f64 = m.view(Float64Array, BIG - 123 - 8, 1);
    f64[0] = 1.25;

    const e1 = throwsCode(() => m.bytes, "ERR_TOO_LARGE", /window\(/);
    assert.equal((e1 as unknown as { path: string }).path, file);
    throwsCode(() => m.buffer, "ERR_TOO_LARGE", /window\(/);
    throwsCode(() => m.view(Uint8Array), "ERR_TOO_LARGE", /window\(/);
    throwsCode(() => m.window(BIG - 1, 2), "ERR_OUT_OF_RANGE");
    throwsCode(() => m.window(0, MAX_BUFFER_LENGTH + 1), "ERR_INVALID_ARG", /at most/);
    assert.equal(m.window(BIG - MAX_BUFFER_LENGTH, MAX_BUFFER_LENGTH).length, MAX_BUFFER_LENGTH, "the largest window");
    m.flush(BIG - 1, 1);

    const fd = fs.openSync(file, "r");
    const probe = Buffer.alloc(4);
    fs.readSync(fd, probe, 0, 1, BIG - 1);
    assert.equal(probe[0], 0xab, "the last byte reached the file");
    fs.readSync(fd, probe, 0, 4, 2 ** 32 - 2);
    assert.deepEqual([...probe], [1, 2, 3, 4]);
    const eight = Buffer.alloc(8);
    fs.readSync(fd, eight, 0, 8, BIG - 131);
    assert.equal(eight.readDoubleLE(0), 1.25, "a typed view past 4 GiB reached the file");
    fs.closeSync(fd);

    const reader = mapFile(file, { offset: BIG - 1 });
    assert.equal(reader.bytes[0], 0xab, "an unaligned mapping at the far end");
    reader.close();

    m.close();
    assert.equal(last.length, 0);
    assert.equal(straddle.length, 0);
    assert.equal(f64.length, 0);
    assert.ok(fs.statSync(file).blocks * 512 < 2 ** 20, "still sparse");
    fs.rmSync(file);
  });
});

describe("view() alignment and bounds", () => {
  test("a byteOffset that is not a multiple of the element size is ERR_MISALIGNED", () => {
    const file = fileWith(randomBytes(SIZE));
    const m = mapFile(file);
    throwsCode(() => m.view(Uint16Array, 1), "ERR_MISALIGNED", /Uint16Array\.BYTES_PER_ELEMENT \(2\)/);
    throwsCode(() => m.view(Int32Array, 6), "ERR_MISALIGNED");
    throwsCode(() => m.view(Float64Array, 4), "ERR_MISALIGNED", /multiple of/);
    throwsCode(() => m.view(BigInt64Array, 12), "ERR_MISALIGNED");
    assert.equal(m.view(Uint8Array, 3, 2).length, 2, "bytes have no alignment");
    assert.equal(m.view(Float64Array, 16, 3).length, 3);
    m.close();
  });

  test("a view on a mapping with an unaligned file offset is aligned relative to the mapping", () => {
    const content = randomBytes(SIZE);
    const file = fileWith(content);
    const m = mapFile(file, { offset: 3 });
    const f = m.view(Float64Array, 8, 1);
    assert.equal(f[0], content.readDoubleLE(3 + 8));
    m.close();
  });

  test("views beyond the mapping are ERR_OUT_OF_RANGE; bad arguments ERR_INVALID_ARG", () => {
    const file = fileWith(randomBytes(SIZE));
    const m = mapFile(file);
    throwsCode(() => m.view(Uint8Array, SIZE + 1), "ERR_OUT_OF_RANGE", /beyond the mapping/);
    throwsCode(() => m.view(Uint8Array, 0, SIZE + 1), "ERR_OUT_OF_RANGE", /exceed the mapping/);
    throwsCode(() => m.view(Float64Array, 0, Math.floor(SIZE / 8) + 1), "ERR_OUT_OF_RANGE");
    assert.equal(m.view(Float64Array).length, Math.floor(SIZE / 8), "default: as many elements as fit");
    assert.equal(m.view(Uint8Array, SIZE).length, 0, "an empty view at the end");
    throwsCode(() => m.view(Uint8Array, -8), "ERR_INVALID_ARG");
    throwsCode(() => m.view(Uint8Array, 0, 1.5), "ERR_INVALID_ARG");
    throwsCode(() => m.view(Uint8Array, Number.NaN), "ERR_INVALID_ARG");
    throwsCode(() => m.view(Object as never), "ERR_INVALID_ARG", /typed array constructor/);
    throwsCode(() => m.window(-1, 1), "ERR_INVALID_ARG");
    throwsCode(() => m.window(SIZE - 1, 2), "ERR_OUT_OF_RANGE", /outside the mapping/);
    m.close();
  });
});
