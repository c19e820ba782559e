// NumPy .npy files in both directions, checked against real NumPy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { tmpDir } from "./helpers/tmp.ts";
import { createNpy, openNpy, struct, utf8, array, MmapError, type NpyArray } from "../src/index.ts";

const hasNumpy = spawnSync("python3", ["-c", "import numpy"]).status === 0;
const required = process.env.MEMMAP_REQUIRE_NUMPY === "1";
const skip = hasNumpy ? false : required ? false : "numpy is not installed (python3 -c 'import numpy' failed)";
if (!hasNumpy && !required) console.log("# views-npy: NumPy tests skipped: python3 cannot import numpy (set MEMMAP_REQUIRE_NUMPY=1 to fail instead)");

function python(script: string, ...args: string[]): unknown {
  if (!hasNumpy) assert.fail("MEMMAP_REQUIRE_NUMPY=1 but python3 cannot import numpy");
  const out = execFileSync("python3", ["-c", script, ...args], { encoding: "utf8" });
  return JSON.parse(out);
}

// Python helpers: values as JSON-friendly lists (64-bit ints as strings, complex as pairs, bytes as code lists).
const PY_TO_JSON = `
import json, sys, numpy as np
def j(a):
    a = np.asarray(a)
    if a.dtype.names:
        return {n: j(a[n]) for n in a.dtype.names}
    k = a.dtype.kind
    if k == 'c': return [[float(x.real), float(x.imag)] for x in a.ravel(order='K')]
    if k in 'iu' and a.dtype.itemsize == 8: return [str(int(x)) for x in a.ravel(order='K')]
    if k in 'Mm': return [str(int(x)) for x in a.view('<i8').ravel(order='K')]
    if k == 'b': return [int(x) for x in a.ravel(order='K')]
    if k == 'S': return [list(x.ljust(a.dtype.itemsize, b'\\0')) for x in a.ravel(order='K')]
    if k == 'U': return [[ord(c) for c in x.ljust(a.dtype.itemsize // 4, '\\0')] for x in a.ravel(order='K')]
    if k == 'V': return [list(bytes(x)) for x in a.ravel(order='K')]
    if k == 'f' and a.dtype.itemsize == 2: return [int(x) for x in a.view('<u2').ravel(order='K')]
    return [float(x) if k == 'f' else int(x) for x in a.ravel(order='K')]
`;

/** memmap's view of an array as the same JSON shape as PY_TO_JSON. */
function toJson(a: NpyArray): unknown {
  const data = a.data;
  if (a.layout) throw new Error("structured: compare fields instead");
  const e = a.element!;
  const flat = Array.from(data as ArrayLike<number | bigint>);
  const per = e.perItem;
  const items: unknown[] = [];
  for (let i = 0; i < a.length; i++) {
    const slice = flat.slice(i * per, (i + 1) * per);
    if (e.meaning === "complex") items.push(slice.map(Number));
    else if (e.meaning === "bytes" || e.meaning === "utf32") items.push(slice.map(Number));
    else if (typeof slice[0] === "bigint") items.push(String(slice[0]));
    else items.push(Number(slice[0]));
  }
  return items;
}

/** A test body run with a fresh temporary directory, removed when it returns or throws. */
function inNpyDir(body: (dir: string) => void): () => void {
  return () => {
    using tmp = tmpDir("memmap-npy-");
    body(tmp.path);
  };
}

const SCALAR_DTYPES = ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8", "<c8", "<c16", "<M8[ns]", "<m8[s]", "|S5", "<U3", "|V4"];

test("NumPy writes every fixed-size scalar dtype; memmap maps each and the values match", { skip }, inNpyDir((dir) => {
  const expected = python(
    PY_TO_JSON +
      `
out = {}
rng = np.random.default_rng(7)
for i, t in enumerate(sys.argv[2:]):
    dt = np.dtype(t)
    if dt.kind == 'b': a = rng.integers(0, 2, 37).astype(bool)
    elif dt.kind in 'iu': a = rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, 37, dtype=dt, endpoint=True)
    elif dt.kind == 'f': a = (rng.standard_normal(37) * 1000).astype(dt)
    elif dt.kind == 'c': a = (rng.standard_normal(37) + 1j * rng.standard_normal(37)).astype(dt)
    elif dt.kind in 'Mm': a = rng.integers(-2**40, 2**40, 37).astype('<i8').view(dt)
    elif dt.kind == 'S': a = np.array([bytes([65 + j % 26]) * (j % 6) for j in range(37)], dtype=dt)
    elif dt.kind == 'U': a = np.array(['é' * (j % 4) for j in range(37)], dtype=dt)
    else: a = np.frombuffer(rng.integers(0, 256, 37 * dt.itemsize, dtype=np.uint8).tobytes(), dtype=dt)
    np.save(f"{sys.argv[1]}/{i}.npy", a)
    out[t] = j(a)
print(json.dumps(out))
`,
    dir,
    ...SCALAR_DTYPES,
  ) as Record<string, unknown>;
  SCALAR_DTYPES.forEach((t, i) => {
    using a = openNpy(path.join(dir, `${i}.npy`));
    assert.equal(a.dtype, t);
    assert.deepEqual(a.shape, [37]);
    assert.equal(a.fortranOrder, false);
    assert.deepEqual(toJson(a), expected[t], `dtype ${t}`);
  });
}));

test("format versions 1.0, 2.0 and 3.0, and multi-dimensional C and Fortran order", { skip }, inNpyDir((dir) => {
  python(
    `
import sys, numpy as np, json
a = np.arange(24, dtype='<i4').reshape(2, 3, 4)
for v in [(1, 0), (2, 0), (3, 0)]:
    with open(f"{sys.argv[1]}/v{v[0]}.npy", "wb") as f: np.lib.format.write_array(f, a, version=v)
np.save(f"{sys.argv[1]}/fortran.npy", np.asfortranarray(a))
print("null")
`,
    dir,
  );
  for (const v of [1, 2, 3]) {
    using a = openNpy(path.join(dir, `v${v}.npy`));
    assert.deepEqual(a.version, [v, 0]);
    assert.deepEqual(a.shape, [2, 3, 4]);
    assert.deepEqual(Array.from(a.data as Int32Array), Array.from({ length: 24 }, (_, i) => i));
  }
  using f = openNpy(path.join(dir, "fortran.npy"));
  assert.equal(f.fortranOrder, true);
  assert.deepEqual(f.shape, [2, 3, 4]);
  // Column-major: element [i, j, k] is at i + 2 * (j + 3 * k), and holds 12i + 4j + k.
  const d = f.data as Int32Array;
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) assert.equal(d[i + 2 * (j + 3 * k)], 12 * i + 4 * j + k);
}));

test("structured dtypes (aligned, packed, explicit offsets, nested, sub-arrays) map to struct() layouts field by field", { skip }, inNpyDir((dir) => {
  const expected = python(
    PY_TO_JSON +
      `
out = {}
dts = {
  'aligned': np.dtype([('id', '<u4'), ('price', '<f8'), ('qty', '<i2'), ('sym', 'S5')], align=True),
  'packed': np.dtype([('id', '<u4'), ('price', '<f8'), ('qty', '<i2'), ('sym', 'S5')]),
  'offsets': np.dtype({'names': ['a', 'b'], 'formats': ['<i4', '<f8'], 'offsets': [4, 16], 'itemsize': 32}),
  'nested': np.dtype([('pos', [('x', '<f4'), ('y', '<f4')]), ('ts', '<i8'), ('v', '<f4', (3,)), ('m', '<i2', (2, 2))], align=True),
}
rng = np.random.default_rng(3)
for name, dt in dts.items():
    a = np.zeros(11, dtype=dt)
    for f in dt.names:
        sub = a[f]
        if sub.dtype.names:
            for g in sub.dtype.names: sub[g] = rng.standard_normal(sub[g].shape)
        elif sub.dtype.kind == 'S': a[f] = [b'ab' * (i % 3) for i in range(11)]
        elif sub.dtype.kind == 'f': a[f] = rng.standard_normal(sub.shape)
        else: a[f] = rng.integers(0, 1000, sub.shape)
    np.save(f"{sys.argv[1]}/{name}.npy", a)
    out[name] = {'itemsize': dt.itemsize, 'offsets': [dt.fields[n][1] for n in dt.names], 'values': j(a)}
print(json.dumps(out))
`,
    dir,
  ) as Record<string, { itemsize: number; offsets: number[]; values: Record<string, unknown> }>;

  for (const [name, e] of Object.entries(expected)) {
    using a = openNpy(path.join(dir, `${name}.npy`));
    assert.ok(a.layout, name);
    assert.equal(a.itemSize, e.itemsize, name);
    assert.equal(a.layout.byteLength, e.itemsize, name);
    const topNames = Object.keys(e.values);
    assert.deepEqual(topNames.map((n) => a.layout!.offsets[n]), e.offsets, `${name} offsets`);
    const rows = a.data as import("../src/index.ts").StructArray;
    assert.equal(rows.length, 11);
    for (const field of topNames) {
      const want = e.values[field] as unknown;
      const got = Array.from({ length: 11 }, (_, i) => (rows.read(i) as Record<string, unknown>)[field]);
      if (field === "sym") {
        const decoded = (want as number[][]).map((bytes) => Buffer.from(bytes.filter((b) => b !== 0)).toString("latin1"));
        assert.deepEqual(got, decoded, `${name}.${field}`);
      } else if (field === "pos") {
        const w = want as { x: number[]; y: number[] };
        assert.deepEqual(got, w.x.map((x, i) => ({ x, y: w.y[i] })), `${name}.pos`);
      } else if (field === "ts") {
        assert.deepEqual(got.map(String), want, `${name}.ts`);
      } else if (field === "v" || field === "m") {
        const flat = got.flatMap((x) => (x as unknown[]).flat(2));
        assert.deepEqual(flat.map(Number), want, `${name}.${field}`);
      } else {
        assert.deepEqual(got.map(Number), want, `${name}.${field}`);
      }
    }
  }
}));

test("memmap writes with createNpy; np.load(mmap_mode='r') reads the same values and dtype", { skip }, inNpyDir((dir) => {
  const f4 = path.join(dir, "f4.npy");
  {
    using a = createNpy(f4, "<f4", [100, 7]);
    const d = a.data as Float32Array;
    for (let i = 0; i < d.length; i++) d[i] = i * 0.5;
  }
  const i8 = path.join(dir, "i8.npy");
  {
    using a = createNpy(i8, "<i8", [5], { fortranOrder: true, mode: 0o644 });
    (a.data as BigInt64Array).set([-(2n ** 62n), -1n, 0n, 1n, 2n ** 62n]);
    assert.equal(fs.statSync(i8).mode & 0o777, 0o644);
  }
  const Trade = struct({ id: "u32", price: "f64", qty: "i16", sym: utf8(5), hist: array("f32", 3) });
  const rec = path.join(dir, "rec.npy");
  {
    using a = createNpy(rec, Trade, [4]);
    const rows = a.data as import("../src/index.ts").StructArray;
    for (let i = 0; i < 4; i++) rows.write(i, { id: i + 1, price: i * 1.25, qty: -i, sym: `s${i}`, hist: [i, i + 0.5, i + 1] });
  }
  const got = python(
    PY_TO_JSON +
      `
a = np.load(sys.argv[1], mmap_mode='r'); b = np.load(sys.argv[2], mmap_mode='r'); c = np.load(sys.argv[3], mmap_mode='r')
print(json.dumps({'f4': [a.dtype.str, list(a.shape), j(a)], 'i8': [b.dtype.str, list(b.shape), bool(np.isfortran(b)), j(b)],
  'rec': [c.dtype.itemsize, [c.dtype.fields[n][1] for n in c.dtype.names], [int(x) for x in c['id']], [float(x) for x in c['price']],
          [int(x) for x in c['qty']], [x.decode() for x in c['sym']], [[float(y) for y in x] for x in c['hist']]]}))
`,
    f4,
    i8,
    rec,
  ) as { f4: [string, number[], number[]]; i8: [string, number[], boolean, string[]]; rec: unknown[] };
  assert.equal(got.f4[0], "<f4");
  assert.deepEqual(got.f4[1], [100, 7]);
  assert.deepEqual(got.f4[2], Array.from({ length: 700 }, (_, i) => i * 0.5));
  assert.deepEqual(got.i8.slice(0, 3), ["<i8", [5], false]); // 1-D: C and Fortran order are the same
  assert.deepEqual(got.i8[3], [String(-(2n ** 62n)), "-1", "0", "1", String(2n ** 62n)]);
  assert.deepEqual(got.rec, [
    Trade.byteLength,
    Trade.fields.map((f) => f.offset),
    [1, 2, 3, 4],
    [0, 1.25, 2.5, 3.75],
    [0, -1, -2, -3],
    ["s0", "s1", "s2", "s3"],
    [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]],
  ]);
  // Reopened by memmap, the layout is the natural one it was written with.
  using back = openNpy(rec);
  assert.equal(back.layout!.byteLength, Trade.byteLength);
  assert.deepEqual(back.layout!.fields.map((f) => [f.name, f.offset]), Trade.fields.map((f) => [f.name, f.offset]));
}));

test("an array over 4 GiB: written in chunks across the 4 GiB boundary, read back by NumPy and by memmap", { skip }, inNpyDir((dir) => {
  const file = path.join(dir, "big.npy");
  const n = (5 * 2 ** 30) / 8 + 3; // 5 GiB of f8, and a bit
  const marks = new Map<number, number>([[0, 1.5], [2 ** 29 - 1, 2.5], [2 ** 29, 3.5], [n - 1, 4.5]]); // 2^29 f8 = 4 GiB
  {
    using a = createNpy(file, "<f8", [n], { sparse: true });
    assert.throws(() => a.data, (e: MmapError) => e.code === "ERR_TOO_LARGE");
    for (const { start, data } of a.chunks(1 << 28)) {
      const d = data as Float64Array;
      for (const [i, v] of marks) if (i >= start && i < start + d.length) d[i - start] = v;
    }
  }
  const got = python(
    `
import sys, json, numpy as np
a = np.load(sys.argv[1], mmap_mode='r')
print(json.dumps([a.shape[0]] + [float(a[int(i)]) for i in sys.argv[2:]]))
`,
    file,
    ...[...marks.keys()].map(String),
  ) as number[];
  assert.deepEqual(got, [n, ...marks.values()]);
  using back = openNpy(file);
  assert.equal(back.length, n);
  let seen = 0;
  for (const { start, data } of back.chunks()) {
    const d = data as Float64Array;
    for (const [i, v] of marks) if (i >= start && i < start + d.length) { assert.equal(d[i - start], v); seen++; }
  }
  assert.equal(seen, marks.size);
}));

test("big-endian and object dtypes are a clear ERR_UNSUPPORTED", { skip }, inNpyDir((dir) => {
  python(
    `
import sys, numpy as np
np.save(sys.argv[1] + "/be.npy", np.arange(4, dtype='>i4'))
np.save(sys.argv[1] + "/be1.npy", np.arange(4, dtype='>u1'))
np.save(sys.argv[1] + "/obj.npy", np.array([1, 'a'], dtype=object), allow_pickle=True)
print("null")
`,
    dir,
  );
  assert.throws(() => openNpy(path.join(dir, "be.npy")), (e: MmapError) => e.code === "ERR_UNSUPPORTED" && /big-endian/.test(e.message));
  assert.throws(() => openNpy(path.join(dir, "obj.npy")), (e: MmapError) => e.code === "ERR_UNSUPPORTED" && /object/.test(e.message));
  using one = openNpy(path.join(dir, "be1.npy")); // one-byte items have no byte order
  assert.deepEqual(Array.from(one.data as Uint8Array), [0, 1, 2, 3]);
}));

test("hostile headers: 3,000 mutated files give ERR_CORRUPT or ERR_UNSUPPORTED or a view inside the file, never anything else", inNpyDir((dir) => {
  const good = path.join(dir, "good.npy");
  const Row = struct({ a: "u8", b: "f64", c: array("i16", 3) });
  {
    using a = createNpy(good, Row, [9]);
    using b = createNpy(path.join(dir, "scalar.npy"), "<i4", [3, 5]);
    void a; void b;
  }
  const seeds = [fs.readFileSync(good), fs.readFileSync(path.join(dir, "scalar.npy"))];
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const outcomes = { ok: 0, ERR_CORRUPT: 0, ERR_UNSUPPORTED: 0 };
  const alphabet = "{}[](),:' \"0123456789-<>|=fiubcSUVMm\\xTrueFalseNone\n";
  for (let trial = 0; trial < 3000; trial++) {
    const bytes = Buffer.from(seeds[trial % 2]!);
    const headerEnd = bytes.indexOf(0x0a) + 1;
    const edits = 1 + rand(4);
    for (let k = 0; k < edits; k++) {
      const at = rand(headerEnd + 16);
      if (rand(3) === 0) bytes[at] = rand(256);
      else bytes[at] = alphabet.charCodeAt(rand(alphabet.length));
    }
    const file = path.join(dir, `t${trial % 4}.npy`);
    fs.writeFileSync(file, rand(10) === 0 ? bytes.subarray(0, rand(bytes.length)) : bytes);
    try {
      using a = openNpy(file);
      assert.ok(a.dataOffset + a.byteLength <= fs.statSync(file).size, `trial ${trial}: the view runs past the file`);
      const d = a.data;
      if (a.layout) for (const row of d as Iterable<unknown>) void row;
      else void (d as Uint8Array)[(d as Uint8Array).length - 1];
      outcomes.ok++;
    } catch (error) {
      assert.ok(error instanceof MmapError, `trial ${trial}: ${String(error)}`);
      assert.ok(error.code === "ERR_CORRUPT" || error.code === "ERR_UNSUPPORTED", `trial ${trial}: ${error.code} ${error.message}`);
      outcomes[error.code as "ERR_CORRUPT"]++;
    }
  }
  assert.ok(outcomes.ERR_CORRUPT > 100 && outcomes.ok > 10, JSON.stringify(outcomes));
}));

test("createNpy refuses an existing file unless overwrite, a symlink, bad shapes and dtypes", inNpyDir((dir) => {
  const f = path.join(dir, "x.npy");
  createNpy(f, "<u2", [3]).close();
  assert.throws(() => createNpy(f, "<u2", [3]), (e: MmapError) => e.code === "EEXIST" && e.path === f);
  createNpy(f, "<u2", [4], { overwrite: true }).close();
  assert.deepEqual(openNpy(f).shape, [4]);
  const link = path.join(dir, "link.npy");
  fs.symlinkSync(path.join(dir, "target"), link);
  assert.throws(() => createNpy(link, "<u2", [3]), (e: MmapError) => e.code === "EEXIST");
  assert.equal(fs.existsSync(path.join(dir, "target")), false);
  assert.throws(() => createNpy(path.join(dir, "y.npy"), "<f4", [-1]), (e: MmapError) => e.code === "ERR_INVALID_ARG");
  assert.throws(() => createNpy(path.join(dir, "y.npy"), "<q9", [1]), (e: MmapError) => e.code === "ERR_UNSUPPORTED" || e.code === "ERR_INVALID_ARG");
  assert.throws(() => createNpy(path.join(dir, "y.npy"), "<f4", [1], { mode: 0o4755 }), (e: MmapError) => e.code === "ERR_INVALID_ARG");
  assert.throws(() => createNpy(path.join(dir, "y.npy"), "<f4", [1], { bogus: 1 } as never), (e: MmapError) => e.code === "ERR_INVALID_ARG");
  assert.equal(fs.existsSync(path.join(dir, "y.npy")), false);
}));
