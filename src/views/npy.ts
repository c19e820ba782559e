/**
 * NumPy `.npy` files, mapped zero-copy: `openNpy` reads any file NumPy writes
 * with `np.save` (format versions 1.0, 2.0 and 3.0), `createNpy` writes one
 * that `np.load(path, mmap_mode="r")` reads.
 *
 * The format (numpy/lib/format.py, "NEP 1"):
 *
 * ```
 *  0        6       7       8                 10 (v1) / 12 (v2, v3)
 *  +--------+-------+-------+-----------------+-------------------------------------+------+
 *  | \x93NUMPY      | major | minor | header length   | header: a Python dict literal,      | data |
 *  | magic (6 B)    | u8    | u8    | u16 (v1) u32 (v2+) | padded with spaces, ends in "\n"   |      |
 *  +--------+-------+-------+-----------------+-------------------------------------+------+
 * ```
 *
 * The header is `{'descr': …, 'fortran_order': False, 'shape': (…), }`, and
 * the data starts at a multiple of 64 bytes, so every typed view is aligned.
 * `descr` is a type string such as `'<f4'`, or for a structured dtype a list
 * of `(name, type[, shape])` tuples, in which unnamed `('', '|V4')` entries
 * are padding. Version 1.0 and 2.0 headers are latin-1; 3.0 is UTF-8.
 *
 * Everything in the header is untrusted: it is parsed by a small, bounded
 * parser of Python literals (no evaluation), and the shape and type are
 * checked against the file's size before a view is made.
 */
import fs from "node:fs";
import { MmapError, invalidArg, sys, toMmapError } from "../core/errors.ts";
import { mapFile, MAX_BUFFER_LENGTH, type MappedFile, type TypedArrayConstructor } from "../core/mapped-file.ts";
import { validateBoolean, validateOptions } from "../core/validate.ts";
import { array, struct, utf8, type Layout } from "./struct.ts";
import type { StructArray } from "./struct-array.ts";
import { PyTuple, parsePython, pyRepr, type PyValue } from "./python-literal.ts";
import { FIELD_NAME_PATTERN, type FieldType, type Schema, type ScalarTypeName } from "./types.ts";

// ---- the file's prefix -------------------------------------------------------------------------

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const MAGIC_LENGTH = 6;
const VERSION_MAJOR_OFFSET = 6;
const VERSION_MINOR_OFFSET = 7;
const HEADER_LENGTH_OFFSET = 8; // u16 in v1, u32 in v2 and v3
const V1_PREFIX_LENGTH = 10;
const V2_PREFIX_LENGTH = 12;
/** NumPy aligns the start of the data to this (format.ARRAY_ALIGN). */
const DATA_ALIGNMENT = 64;
/** Headers longer than this are refused as hostile; NumPy's own reader stops at 10,000 bytes by default. */
const MAX_HEADER_LENGTH = 1 << 24;
/** Dimensions and nesting a header may use. */
const MAX_DIMENSIONS = 64;
const MAX_LITERAL_DEPTH = 32;

// ---- public types ------------------------------------------------------------------------------

/** A typed array over a `.npy` file's data. */
export type NpyTypedArray =
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/** What `data` of an {@link NpyArray} is. */
export type NpyData = NpyTypedArray | StructArray;

/** Options of {@link openNpy}. */
export interface OpenNpyOptions {
  /** "read" (stray stores land in a private page), "write" (stores reach the file), or "copy" (private). @default "read" */
  access?: "read" | "write" | "copy";
}

/** Options of {@link createNpy}; unknown keys and values of the wrong type are an `ERR_INVALID_ARG`. */
export interface CreateNpyOptions {
  /** Write the shape as column-major (`fortran_order: True`). @default false */
  fortranOrder?: boolean;
  /** Replace an existing file (unlinked first: a reader that has it open keeps the old one); else it is `EEXIST`. @default false */
  overwrite?: boolean;
  /** Grow the file without allocating its blocks (a sparse file). @default false */
  sparse?: boolean;
  /** Permission bits of the new file (0 to 0o777), applied exactly (fchmod: the umask does not narrow them). @default 0o600 */
  mode?: number;
}

/**
 * A `.npy` array mapped from its file. `data` is a view of the mapped bytes:
 * a typed array for a scalar dtype, a {@link StructArray} for a structured one.
 */
export class NpyArray {
  /** The header's type: a string such as `"<f4"`, or the field list of a structured dtype. */
  readonly descr: NpyDescr;
  /** The dtype in NumPy's notation, e.g. `"<f4"`, `"|b1"`, or a structured dtype's field list as NumPy prints it. */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** True when the data is column-major (`fortran_order: True`): the shape's first index varies fastest. */
  readonly fortranOrder: boolean;
  /** Bytes per element (NumPy's `itemsize`). */
  readonly itemSize: number;
  /** Elements in the array: the product of the shape. */
  readonly length: number;
  /** Where the data starts in the file. */
  readonly dataOffset: number;
  /** The `.npy` format version, e.g. `[1, 0]`. */
  readonly version: readonly [number, number];
  /** For a structured dtype: the `struct()` layout of one element. */
  readonly layout: Layout | undefined;
  /** How each element is stored: the typed array, and how many of its elements make one array element (2 for complex, n for `U<n>` and `S<n>`). */
  readonly element: NpyElement | undefined;
  /** The mapping of the whole file. */
  readonly file: MappedFile;
  #data: NpyData | undefined;

  /** @internal */
  constructor(file: MappedFile, header: ParsedHeader) {
    this.file = file;
    this.descr = header.descr;
    this.dtype = header.dtypeText;
    this.shape = Object.freeze([...header.shape]);
    this.fortranOrder = header.fortranOrder;
    this.itemSize = header.itemSize;
    this.length = header.length;
    this.dataOffset = header.dataOffset;
    this.version = header.version;
    this.layout = header.layout;
    this.element = header.element;
  }

  /** Bytes of data: `length × itemSize`. */
  get byteLength(): number {
    return this.length * this.itemSize;
  }

  /**
   * The elements, over the mapping, in file order (C order, or column-major
   * when {@link fortranOrder}). An array over 4 GiB does not fit one
   * ArrayBuffer: use {@link chunks} for those.
   */
  get data(): NpyData {
    if (this.#data === undefined) {
      if (this.byteLength > MAX_BUFFER_LENGTH)
        throw new MmapError(
          "ERR_TOO_LARGE",
          `the array holds ${this.byteLength} bytes; one ArrayBuffer holds at most ${MAX_BUFFER_LENGTH}: use chunks()`,
          { path: this.file.path },
        );
      this.#data = this.#view(0, this.length);
    }
    return this.#data;
  }

  /**
   * The elements as consecutive views of at most `maxBytes` each (whole
   * elements only), in file order: the way through arrays of any size.
   * Each yields `{ start, data }`, where `start` is the index of its first element.
   */
  *chunks(maxBytes: number = 1 << 30): Generator<{ start: number; data: NpyData }> {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < this.itemSize || maxBytes > MAX_BUFFER_LENGTH)
      throw invalidArg(`maxBytes must be an integer in [${this.itemSize}, ${MAX_BUFFER_LENGTH}], got ${String(maxBytes)}`);
    // Whole elements, and a multiple of 8 bytes so that every chunk's views stay aligned.
    let perChunk = Math.floor(maxBytes / this.itemSize);
    while (perChunk > 1 && (perChunk * this.itemSize) % 8 !== 0) perChunk--;
    for (let start = 0; start < this.length; start += perChunk) {
      yield { start, data: this.#view(start, Math.min(perChunk, this.length - start)) };
    }
  }

  #view(first: number, count: number): NpyData {
    const byteOffset = this.dataOffset + first * this.itemSize;
    if (this.layout) return this.layout.array(this.file, { byteOffset, length: count });
    const e = this.element!;
    return this.file.view(e.type as TypedArrayConstructor<NpyTypedArray>, byteOffset, count * e.perItem);
  }

  /** Unmaps the file; every view of it becomes empty. */
  close(): void {
    this.file.close();
  }

  /** close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** How a scalar dtype is stored: which typed array, and how many of its elements make one item. */
export interface NpyElement {
  readonly type: NpyTypedArrayConstructor;
  readonly perItem: number;
  /** What the typed array holds, when it is not the value itself: "complex" (re, im pairs), "utf32" (code points), "bytes", "float16-bits", "datetime64[unit]", "timedelta64[unit]". */
  readonly meaning?: string;
}

/** The typed array constructors an {@link NpyElement} names. */
export type NpyTypedArrayConstructor =
  | typeof Int8Array | typeof Uint8Array | typeof Int16Array | typeof Uint16Array | typeof Int32Array
  | typeof Uint32Array | typeof Float32Array | typeof Float64Array | typeof BigInt64Array | typeof BigUint64Array;

/** A `descr`: a type string, or a structured dtype's fields. */
export type NpyDescr = string | readonly NpyField[];
/** One field of a structured `descr`: `(name, type)` or `(name, type, shape)`; an empty name is padding. */
export type NpyField = readonly [name: string, type: NpyDescr, shape?: readonly number[]];

// ---- opening -----------------------------------------------------------------------------------

/**
 * Maps a `.npy` file. `data` is a typed array (or a {@link StructArray} for a
 * structured dtype) over the file's bytes: nothing is copied.
 *
 * ```ts
 * using a = openNpy("embeddings.npy");       // np.save("embeddings.npy", x)
 * a.shape;                                    // [1000, 768]
 * (a.data as Float32Array)[768 * 5 + 3];      // x[5, 3]
 * ```
 *
 * @throws {@link MmapError} `ERR_INVALID_ARG` for a bad option;
 * `ERR_CORRUPT` for a header that is not a valid `.npy` header or a file
 * shorter than its shape says; `ERR_UNSUPPORTED` for a format memmap cannot
 * view in place (big-endian data, object arrays, data not aligned for its
 * type, …); and the errno of a failed system call (`ENOENT`, `EACCES`, …), with `path`.
 */
export function openNpy(path: string, options: OpenNpyOptions = {}): NpyArray {
  if (typeof path !== "string" || path.length === 0) throw invalidArg("openNpy() expects a path");
  validateOptions(options, ["access"], "openNpy");
  const file = mapFile(path, { access: options.access ?? "read" });
  try {
    return new NpyArray(file, parseNpy(file, path));
  } catch (error) {
    file.close();
    throw error;
  }
}

/** @internal Header fields, validated against the file. */
interface ParsedHeader {
  descr: NpyDescr;
  dtypeText: string;
  shape: number[];
  fortranOrder: boolean;
  itemSize: number;
  length: number;
  dataOffset: number;
  version: [number, number];
  layout: Layout | undefined;
  element: NpyElement | undefined;
}

function corrupt(path: string, message: string): MmapError {
  return new MmapError("ERR_CORRUPT", `${path}: not a valid .npy file: ${message}`, { path });
}

function parseNpy(file: MappedFile, path: string): ParsedHeader {
  const size = file.byteLength;
  if (size < V1_PREFIX_LENGTH) throw corrupt(path, `the file is ${size} bytes, shorter than the format's prefix`);
  const prefix = file.window(0, Math.min(size, V2_PREFIX_LENGTH));
  for (let i = 0; i < MAGIC_LENGTH; i++) if (prefix[i] !== MAGIC[i]) throw corrupt(path, "the magic string \\x93NUMPY is missing");
  const major = prefix[VERSION_MAJOR_OFFSET]!;
  const minor = prefix[VERSION_MINOR_OFFSET]!;
  if (minor !== 0 || major < 1 || major > 3) throw corrupt(path, `unknown format version ${major}.${minor}`);
  const prefixLength = major === 1 ? V1_PREFIX_LENGTH : V2_PREFIX_LENGTH;
  if (size < prefixLength) throw corrupt(path, `the file is ${size} bytes, shorter than the version ${major}.0 prefix`);
  const lengths = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const headerLength = major === 1 ? lengths.getUint16(HEADER_LENGTH_OFFSET, true) : lengths.getUint32(HEADER_LENGTH_OFFSET, true);
  if (headerLength > MAX_HEADER_LENGTH) throw corrupt(path, `a header of ${headerLength} bytes is over the ${MAX_HEADER_LENGTH} allowed`);
  const dataOffset = prefixLength + headerLength;
  if (dataOffset > size) throw corrupt(path, `the header (${headerLength} bytes) runs past the end of the file (${size} bytes)`);
  const headerBytes = file.window(prefixLength, headerLength);
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1", { fatal: true }).decode(headerBytes);

  let literal: PyValue;
  try {
    literal = parsePython(text);
  } catch (error) {
    throw corrupt(path, `its header is not a Python literal (${(error as Error).message})`);
  }
  if (!(literal instanceof Map)) throw corrupt(path, "its header is not a dict");
  const keys = [...literal.keys()].sort().join(",");
  if (keys !== "descr,fortran_order,shape") throw corrupt(path, `its header has keys {${keys}}, expected descr, fortran_order and shape`);
  const fortranOrder = literal.get("fortran_order");
  if (typeof fortranOrder !== "boolean") throw corrupt(path, "fortran_order is not True or False");
  const shapeValue = literal.get("shape");
  if (!(shapeValue instanceof PyTuple)) throw corrupt(path, "shape is not a tuple");
  if (shapeValue.items.length > MAX_DIMENSIONS) throw corrupt(path, `shape has ${shapeValue.items.length} dimensions, over ${MAX_DIMENSIONS}`);
  const shape = shapeValue.items.map((d) => {
    if (typeof d !== "bigint" || d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(path, `shape holds ${pyRepr(d)}, not a non-negative integer`);
    return Number(d);
  });

  let descr: NpyDescr;
  let dtype: DtypeInfo;
  try {
    descr = toDescr(literal.get("descr"), 0);
    dtype = describeDtype(descr, 0);
  } catch (error) {
    if (error instanceof MmapError && error.code === "ERR_UNSUPPORTED") throw new MmapError("ERR_UNSUPPORTED", `${path}: ${error.message}`, { path });
    throw corrupt(path, (error as Error).message);
  }
  let length = 1;
  for (const d of shape) length *= d;
  const bytes = length * dtype.itemSize;
  if (!Number.isSafeInteger(length) || !Number.isSafeInteger(bytes)) throw corrupt(path, `shape (${shape.join(", ")}) is too large`);
  if (bytes > size - dataOffset)
    throw corrupt(path, `shape (${shape.join(", ")}) of ${dtype.itemSize}-byte items needs ${bytes} bytes of data; the file has ${size - dataOffset}`);
  if (dataOffset % 8 !== 0 && bytes > 0)
    throw new MmapError("ERR_UNSUPPORTED", `${path}: the data starts at byte ${dataOffset}, not a multiple of 8, so it cannot be viewed in place`, { path });
  return {
    descr, dtypeText: dtypeText(descr), shape, fortranOrder, itemSize: dtype.itemSize, length, dataOffset,
    version: [major, minor], layout: dtype.layout, element: dtype.element,
  };
}

// ---- dtypes ------------------------------------------------------------------------------------

interface DtypeInfo {
  itemSize: number;
  /** As a struct() field type, for use inside a structured dtype. */
  field: FieldType;
  /** For a structured dtype. */
  layout?: Layout;
  /** For a scalar dtype. */
  element?: NpyElement;
}

const LITTLE = new Set(["<", "|", "="]); // "=" is native order: little-endian on every machine memmap runs on

/** Scalar kinds: NumPy's kind letter and size → struct() scalar and typed array. */
const SCALAR_KINDS: Record<string, { scalar: ScalarTypeName; type: NpyTypedArrayConstructor; meaning?: string }> = {
  b1: { scalar: "bool", type: Uint8Array },
  i1: { scalar: "i8", type: Int8Array },
  u1: { scalar: "u8", type: Uint8Array },
  i2: { scalar: "i16", type: Int16Array },
  u2: { scalar: "u16", type: Uint16Array },
  i4: { scalar: "i32", type: Int32Array },
  u4: { scalar: "u32", type: Uint32Array },
  i8: { scalar: "i64", type: BigInt64Array },
  u8: { scalar: "u64", type: BigUint64Array },
  f2: { scalar: "u16", type: Uint16Array, meaning: "float16-bits" },
  f4: { scalar: "f32", type: Float32Array },
  f8: { scalar: "f64", type: Float64Array },
};

function unsupported(message: string): MmapError {
  return new MmapError("ERR_UNSUPPORTED", message);
}

function describeDtype(descr: NpyDescr, depth: number): DtypeInfo {
  if (typeof descr !== "string") return describeStructured(descr, depth);
  if (/^[<>|=]?O\d*$/.test(descr)) throw unsupported("object arrays (dtype 'O') hold Python pointers, not data");
  const m = /^([<>|=])([a-zA-Z])(\d+)(?:\[(\w+)\])?$/.exec(descr);
  if (!m) throw new Error(`unknown type string '${descr}'`);
  const [, order, kind, sizeText, unit] = m as unknown as [string, string, string, string, string | undefined];
  const n = Number(sizeText);
  if (!Number.isSafeInteger(n) || n < 1 || n > 2 ** 24) throw new Error(`type '${descr}' has an impossible size`);
  if (order === ">" && !(kind === "b" || kind === "S" || kind === "V" || n === 1 || (kind === "u" && n === 1) || (kind === "i" && n === 1)))
    throw unsupported(`type '${descr}' is big-endian; memmap views data in place, little-endian only (convert with arr.astype(arr.dtype.newbyteorder('<')))`);
  if (!LITTLE.has(order) && order !== ">") throw new Error(`type '${descr}' has an unknown byte order`);
  const key = `${kind}${n}`;
  const s = SCALAR_KINDS[key];
  if (s && unit === undefined) return { itemSize: n, field: s.scalar, element: { type: s.type, perItem: 1, ...(s.meaning ? { meaning: s.meaning } : {}) } };
  switch (kind) {
    case "c":
      if (n === 8) return { itemSize: 8, field: array("f32", 2), element: { type: Float32Array, perItem: 2, meaning: "complex" } };
      if (n === 16) return { itemSize: 16, field: array("f64", 2), element: { type: Float64Array, perItem: 2, meaning: "complex" } };
      break;
    case "M":
    case "m":
      if (n === 8 && unit !== undefined)
        return { itemSize: 8, field: "i64", element: { type: BigInt64Array, perItem: 1, meaning: `${kind === "M" ? "datetime64" : "timedelta64"}[${unit}]` } };
      break;
    case "S":
      return { itemSize: n, field: utf8(n), element: { type: Uint8Array, perItem: n, meaning: "bytes" } };
    case "V":
      return { itemSize: n, field: array("u8", n), element: { type: Uint8Array, perItem: n, meaning: "bytes" } };
    case "U":
      if (n * 4 > 2 ** 24) break;
      return { itemSize: n * 4, field: array("u32", n), element: { type: Uint32Array, perItem: n, meaning: "utf32" } };
  }
  if (kind === "f" && (n === 12 || n === 16)) throw unsupported(`type '${descr}' (long double) has no JavaScript equivalent`);
  throw unsupported(`type '${descr}' is not supported`);
}

function describeStructured(fields: readonly NpyField[], depth: number): DtypeInfo {
  if (depth > MAX_LITERAL_DEPTH) throw new Error("structured dtype nests too deeply");
  if (fields.length === 0) throw new Error("a structured dtype with no fields");
  // numpy lists fields in offset order, with unnamed '|Vn' entries for gaps.
  const named: { name: string; type: FieldType; offset: number }[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const [name, type, shape] of fields) {
    const inner = describeDtype(type, depth + 1);
    let fieldType = inner.field;
    let size = inner.itemSize;
    for (const d of [...(shape ?? [])].reverse()) {
      if (d < 1) throw unsupported(`field '${name}' has an empty sub-array shape`);
      fieldType = array(fieldType, d);
      size *= d;
    }
    if (name !== "") {
      if (!FIELD_NAME_PATTERN.test(name)) throw unsupported(`field name '${name}' is not an identifier; rename it in NumPy`);
      if (seen.has(name)) throw new Error(`field '${name}' appears twice`);
      seen.add(name);
      named.push({ name, type: fieldType, offset });
    }
    offset += size;
    if (offset > 2 ** 24) throw unsupported("a structured item over 16 MiB");
  }
  const itemSize = offset;
  const layout = layoutWithOffsets(named, itemSize);
  return { itemSize, field: layout, layout };
}

/** A struct() layout whose fields sit exactly at the given offsets: the natural (aligned) layout when it matches, else a packed one with padding fields. */
function layoutWithOffsets(named: { name: string; type: FieldType; offset: number }[], itemSize: number): Layout {
  const schema: Record<string, FieldType> = {};
  for (const f of named) schema[f.name] = f.type;
  const natural = struct(schema);
  if (natural.byteLength === itemSize && natural.fields.every((f, i) => f.offset === named[i]!.offset)) return natural;
  const padded: Record<string, FieldType> = {};
  let at = 0;
  const padName = (n: number) => {
    let name = `_pad${n}`;
    while (name in schema) name = `_${name}`;
    return name;
  };
  for (const f of named) {
    if (f.offset > at) padded[padName(at)] = array("u8", f.offset - at);
    padded[f.name] = f.type;
    at = f.offset + sizeOfField(f.type);
  }
  if (itemSize > at) padded[padName(at)] = array("u8", itemSize - at);
  const packed = struct(padded, { packed: true });
  if (packed.byteLength !== itemSize) throw new Error(`the fields do not add up to the item size ${itemSize}`);
  return packed;
}

function sizeOfField(type: FieldType): number {
  return struct({ x: type }, { packed: true }).byteLength;
}

/** The type string of a struct() field type, for a header. */
function fieldDescr(type: FieldType): { descr: NpyDescr; shape: number[] } {
  if (typeof type === "string") return { descr: SCALAR_DESCR[type], shape: [] };
  if (type.kind === "utf8") return { descr: `|S${type.byteLength}`, shape: [] };
  if (type.kind === "array") {
    const inner = fieldDescr(type.element);
    return { descr: inner.descr, shape: [type.length, ...inner.shape] };
  }
  return { descr: layoutDescr(type as Layout), shape: [] };
}

const SCALAR_DESCR: Record<ScalarTypeName, string> = {
  bool: "|b1", i8: "|i1", u8: "|u1", i16: "<i2", u16: "<u2", i32: "<i4", u32: "<u4", i64: "<i8", u64: "<u8", f32: "<f4", f64: "<f8",
};

/** The `descr` of a struct() layout: its fields at their offsets, gaps as unnamed `|Vn` entries. */
export function layoutDescr(layout: Layout): NpyField[] {
  const out: NpyField[] = [];
  let at = 0;
  for (const f of layout.fields) {
    if (f.offset > at) out.push(["", `|V${f.offset - at}`]);
    const { descr, shape } = fieldDescr(f.type);
    out.push(shape.length > 0 ? [f.name, descr, shape] : [f.name, descr]);
    at = f.offset + f.byteLength;
  }
  if (layout.byteLength > at) out.push(["", `|V${layout.byteLength - at}`]);
  return out;
}

function toDescr(value: PyValue | undefined, depth: number): NpyDescr {
  if (depth > MAX_LITERAL_DEPTH) throw new Error("descr nests too deeply");
  if (typeof value === "string") return value;
  if (!Array.isArray(value)) throw new Error("descr is neither a type string nor a list of fields");
  return value.map((entry): NpyField => {
    if (!(entry instanceof PyTuple) || entry.items.length < 2 || entry.items.length > 3) throw new Error("a descr field is not a (name, type[, shape]) tuple");
    let name = entry.items[0];
    // A titled field is ((title, name), type).
    if (name instanceof PyTuple && name.items.length === 2) name = name.items[1];
    if (typeof name !== "string") throw new Error("a descr field's name is not a string");
    const type = toDescr(entry.items[1], depth + 1);
    if (entry.items.length === 2) return [name, type];
    const shapeValue = entry.items[2];
    const dims = shapeValue instanceof PyTuple ? shapeValue.items : [shapeValue];
    const shape = dims.map((d) => {
      if (typeof d !== "bigint" || d < 0n || d > 2n ** 24n) throw new Error(`field '${name}' has a bad sub-array shape`);
      return Number(d);
    });
    return [name, type, shape];
  });
}

/** A descr as NumPy prints it. */
function dtypeText(descr: NpyDescr): string {
  if (typeof descr === "string") return descr;
  return pyRepr(descr.map((f) => new PyTuple(f.length === 3 ? [f[0], descrValue(f[1]), new PyTuple(f[2]!.map(BigInt))] : [f[0], descrValue(f[1])])));
}

function descrValue(descr: NpyDescr): PyValue {
  return typeof descr === "string" ? descr : descr.map((f) => new PyTuple(f.length === 3 ? [f[0], descrValue(f[1]), new PyTuple(f[2]!.map(BigInt))] : [f[0], descrValue(f[1])]));
}

// ---- creating ----------------------------------------------------------------------------------

/**
 * Creates a `.npy` file of the given dtype and shape, zero-filled, and maps
 * it writable. `dtype` is a NumPy type string (`"<f4"`, `"|u1"`, `"<i8"`, …)
 * or a `struct()` layout, written as the equivalent structured dtype.
 *
 * ```ts
 * using out = createNpy("out.npy", "<f4", [1000, 768]);
 * (out.data as Float32Array).fill(1);          // np.load("out.npy", mmap_mode="r") sees it
 * ```
 *
 * @throws {@link MmapError} `ERR_INVALID_ARG` for a bad option, shape or dtype
 * (before the file is touched); `ERR_UNSUPPORTED` for a dtype memmap cannot
 * view in place (object arrays, big-endian, …); `EEXIST` for an existing file
 * (or symbolic link) without `overwrite`; `ENOSPC` when the disk cannot hold
 * the array (nothing is left behind); and the errno of any other failed system
 * call, with `path`.
 */
export function createNpy(path: string, dtype: string | Layout, shape: readonly number[], options: CreateNpyOptions = {}): NpyArray {
  if (typeof path !== "string" || path.length === 0) throw invalidArg("createNpy() expects a path");
  validateOptions(options, ["fortranOrder", "overwrite", "sparse", "mode"], "createNpy");
  for (const key of ["fortranOrder", "overwrite", "sparse"] as const) if (options[key] !== undefined) validateBoolean(options[key], key);
  const mode = options.mode ?? 0o600;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw invalidArg(`mode must be permission bits in [0, 0o777], got ${String(mode)}`);
  if (!Array.isArray(shape) || shape.length > MAX_DIMENSIONS || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw invalidArg(`shape must be an array of at most ${MAX_DIMENSIONS} non-negative integers`);
  let descr: NpyDescr;
  if (typeof dtype === "string") descr = dtype;
  else if (dtype !== null && typeof dtype === "object" && (dtype as Layout).kind === "struct") descr = layoutDescr(dtype);
  else throw invalidArg("dtype must be a NumPy type string such as '<f4', or a struct() layout");
  let info: DtypeInfo;
  try {
    info = describeDtype(descr, 0);
  } catch (error) {
    if (error instanceof MmapError) throw error;
    throw invalidArg(`dtype: ${(error as Error).message}`);
  }
  let length = 1;
  for (const d of shape) length *= d;
  const dataBytes = length * info.itemSize;
  if (!Number.isSafeInteger(dataBytes)) throw invalidArg("the array is too large");

  const header = headerBytes(descr, shape, options.fortranOrder ?? false);
  const total = header.length + dataBytes;
  if (options.overwrite) {
    try {
      fs.unlinkSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw toMmapError(error, path);
    }
  }
  const { O_CREAT, O_EXCL, O_RDWR, O_NOFOLLOW } = fs.constants;
  const fd = sys(path, () => fs.openSync(path, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW, mode));
  let file: MappedFile;
  try {
    // The mode is applied exactly, whatever the umask: it was chosen to share the file.
    sys(path, () => fs.fchmodSync(fd, mode));
    sys(path, () => fs.writeSync(fd, header, 0, header.length, 0));
    file = mapFile(fd, { access: "write", size: total, sparse: options.sparse ?? false });
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(path, { force: true });
    throw error;
  }
  fs.closeSync(fd);
  try {
    return new NpyArray(withPath(file, path), parseNpy(file, path));
  } catch (error) {
    file.close();
    throw error;
  }
}

/** A mapping made from a descriptor reports no path; give the array's errors the user's. */
function withPath(file: MappedFile, path: string): MappedFile {
  if (file.path === undefined) Object.defineProperty(file, "path", { value: path });
  return file;
}

/** The prefix and header of a version 1.0 file (2.0 when the header needs more than 65,535 bytes). */
function headerBytes(descr: NpyDescr, shape: readonly number[], fortranOrder: boolean): Uint8Array {
  const dict = `{'descr': ${pyRepr(descrValue(descr))}, 'fortran_order': ${fortranOrder ? "True" : "False"}, 'shape': ${pyRepr(new PyTuple(shape.map(BigInt)))}, }`;
  const body = new TextEncoder().encode(dict); // names are identifiers: ASCII, so latin-1 and UTF-8 agree
  let prefixLength = V1_PREFIX_LENGTH;
  let padded = Math.ceil((prefixLength + body.length + 1) / DATA_ALIGNMENT) * DATA_ALIGNMENT - prefixLength;
  if (padded > 0xffff) {
    prefixLength = V2_PREFIX_LENGTH;
    padded = Math.ceil((prefixLength + body.length + 1) / DATA_ALIGNMENT) * DATA_ALIGNMENT - prefixLength;
  }
  const out = new Uint8Array(prefixLength + padded).fill(0x20);
  out.set(MAGIC, 0);
  out[VERSION_MAJOR_OFFSET] = prefixLength === V1_PREFIX_LENGTH ? 1 : 2;
  out[VERSION_MINOR_OFFSET] = 0;
  const view = new DataView(out.buffer);
  if (prefixLength === V1_PREFIX_LENGTH) view.setUint16(HEADER_LENGTH_OFFSET, padded, true);
  else view.setUint32(HEADER_LENGTH_OFFSET, padded, true);
  out.set(body, prefixLength);
  out[out.length - 1] = 0x0a;
  return out;
}
