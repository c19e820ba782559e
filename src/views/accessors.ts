/**
 * Generated accessors: for each layout, a class with one getter/setter pair
 * per field that reads or writes a DataView at a fixed offset from the row's
 * start, plus `read` (row → plain object), `check` (validate a plain object)
 * and `store` (write a validated object) functions.
 *
 * Why generated code: a getter such as
 *   `get price() { return this.$v.getFloat64(this.$o + 8, true); }`
 * is what a person would write by hand, and V8 inlines it into the caller's
 * loop; a generic getter that looks the field up at run time is several
 * times slower. The generated source only ever contains offsets, sizes and
 * names that passed validation, and names are emitted as JSON string literals.
 *
 * Every codec function takes `(v, o)`: the DataView and the byte offset of
 * the value in it.
 */
import { MmapError } from "../core/errors.ts";
import { describe as describeValue } from "../core/validate.ts";
import type { Layout } from "./struct.ts";
import { SCALARS, type ArrayType, type FieldType, type ScalarTypeName } from "./types.ts";

/** Reads, validates and writes values of one field type. */
export interface Codec {
  /** The value at `o` as a plain JavaScript value (objects and arrays copied). */
  read(v: DataView, o: number): unknown;
  /** Throws ERR_INVALID_ARG, naming `path`, unless `x` can be stored. */
  check(x: unknown, path: string): void;
  /** Writes `x`, which passed check(). */
  store(v: DataView, o: number, x: unknown): void;
  /** What a live accessor gives for the field: the value, or a nested live view. */
  access(v: DataView, o: number, readOnly: boolean): unknown;
  /** Bytes the value occupies. */
  readonly byteLength: number;
}

/** A generated row accessor class: `new Accessor(view, byteOffset)`. */
export type AccessorClass = new (v: DataView, o: number) => { $v: DataView; $o: number };

export interface LayoutCodec extends Codec {
  readonly Accessor: AccessorClass;
  readonly ReadOnlyAccessor: AccessorClass;
}

// ---------------------------------------------------------------- helpers used by generated code

function fieldLabel(path: string): string {
  return path === "" ? "the row" : `field "${path}"`;
}

function badValue(path: string, type: ScalarTypeName, x: unknown): never {
  throw new MmapError("ERR_INVALID_ARG", `${fieldLabel(path)} is ${type}: expected ${SCALARS[type].expected}, got ${describeValue(x)}`);
}

function notObject(path: string, x: unknown): never {
  throw new MmapError("ERR_INVALID_ARG", `${fieldLabel(path)} is a struct: expected an object, got ${describeValue(x)}`);
}

function readOnly(path: string): never {
  throw new MmapError(
    "EACCES",
    `cannot write field "${path}": the rows are read-only (a mapping with access "read"; writes would never reach the file)`,
  );
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8");

/** Checks a string for a utf8(n) field; returns its UTF-8 byte length. */
function utf8Check(x: unknown, path: string, n: number): number {
  if (typeof x !== "string") throw new MmapError("ERR_INVALID_ARG", `${fieldLabel(path)} is utf8(${n}): expected a string, got ${describeValue(x)}`);
  if (x.includes("\0"))
    throw new MmapError("ERR_INVALID_ARG", `${fieldLabel(path)} is utf8(${n}): the string contains a NUL character, which marks the end of a stored string`);
  if (!(x as string & { isWellFormed(): boolean }).isWellFormed())
    throw new MmapError("ERR_INVALID_ARG", `${fieldLabel(path)} is utf8(${n}): the string has a lone surrogate, which UTF-8 cannot encode`);
  const length = Buffer.byteLength(x, "utf8");
  if (length > n)
    throw new MmapError(
      "ERR_INVALID_ARG",
      `${fieldLabel(path)} is utf8(${n}): the string needs ${length} bytes of UTF-8 and does not fit (it is not cut, which could split a character)`,
    );
  return length;
}

/** Writes a checked string and zero-fills the rest of the field. */
function utf8Store(v: DataView, o: number, n: number, x: string): void {
  const target = new Uint8Array(v.buffer, v.byteOffset + o, n);
  const { written } = encoder.encodeInto(x, target);
  target.fill(0, written);
}

/**
 * Reads a utf8(n) field: the bytes up to the first NUL (or all n). Bytes
 * that are not valid UTF-8 (a file is untrusted) decode to U+FFFD.
 */
function utf8Read(v: DataView, o: number, n: number): string {
  let end = 0;
  let ascii = true;
  for (; end < n; end++) {
    const b = v.getUint8(o + end);
    if (b === 0) break;
    if (b >= 0x80) ascii = false;
  }
  if (ascii && end <= 64) {
    let s = "";
    for (let i = 0; i < end; i++) s += String.fromCharCode(v.getUint8(o + i));
    return s;
  }
  // slice(): TextDecoder does not take views of a SharedArrayBuffer.
  return decoder.decode(new Uint8Array(v.buffer, v.byteOffset + o, end).slice());
}

// ---------------------------------------------------------------- scalars

const scalarCodecs = new Map<ScalarTypeName, Codec>();

/** The DataView read of a scalar at offset expression `at`. */
function scalarGet(type: ScalarTypeName, v: string, at: string): string {
  const s = SCALARS[type];
  if (type === "bool") return `(${v}.getUint8(${at}) !== 0)`;
  return s.size === 1 ? `${v}.get${s.accessor}(${at})` : `${v}.get${s.accessor}(${at}, true)`;
}

function scalarSet(type: ScalarTypeName, v: string, at: string, x: string): string {
  const s = SCALARS[type];
  if (type === "bool") return `${v}.setUint8(${at}, ${x} ? 1 : 0)`;
  return s.size === 1 ? `${v}.set${s.accessor}(${at}, ${x})` : `${v}.set${s.accessor}(${at}, ${x}, true)`;
}

function scalarCodec(type: ScalarTypeName): Codec {
  let codec = scalarCodecs.get(type);
  if (codec === undefined) {
    const t = JSON.stringify(type);
    codec = new Function(
      "$bad",
      `"use strict";
      return {
        byteLength: ${SCALARS[type].size},
        read(v, o) { return ${scalarGet(type, "v", "o")}; },
        access(v, o) { return ${scalarGet(type, "v", "o")}; },
        check(x, p) { if (${SCALARS[type].invalid}) $bad(p, ${t}, x); },
        store(v, o, x) { ${scalarSet(type, "v", "o", "x")}; },
      };`,
    )(badValue) as Codec;
    scalarCodecs.set(type, codec);
  }
  return codec;
}

// ---------------------------------------------------------------- utf8

const utf8Codecs = new Map<number, Codec>();

function utf8Codec(n: number): Codec {
  let codec = utf8Codecs.get(n);
  if (codec === undefined) {
    codec = {
      byteLength: n,
      read: (v, o) => utf8Read(v, o, n),
      access: (v, o) => utf8Read(v, o, n),
      check: (x, p) => void utf8Check(x, p, n),
      store: (v, o, x) => utf8Store(v, o, n, x as string),
    };
    utf8Codecs.set(n, codec);
  }
  return codec;
}

// ---------------------------------------------------------------- arrays

const arrayCodecs = new WeakMap<ArrayType, Codec>();

function arrayLike(x: unknown, path: string, type: ArrayType): ArrayLike<unknown> {
  if (x instanceof FieldArrayView) return x.toArray();
  if (Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView))) {
    const a = x as ArrayLike<unknown>;
    if (a.length !== type.length)
      throw new MmapError("ERR_INVALID_ARG", `${fieldLabel(path)} is an array of ${type.length}: got ${a.length} elements`);
    return a;
  }
  throw new MmapError("ERR_INVALID_ARG", `${fieldLabel(path)} is an array of ${type.length}: expected an array, got ${describeValue(x)}`);
}

function arrayCodec(type: ArrayType): Codec {
  let codec = arrayCodecs.get(type);
  if (codec === undefined) {
    const element = codecOf(type.element);
    const n = type.length;
    const es = element.byteLength;
    codec = {
      byteLength: es * n,
      read(v, o) {
        const a = new Array<unknown>(n);
        for (let k = 0; k < n; k++) a[k] = element.read(v, o + k * es);
        return a;
      },
      access: (v, o, ro) => new FieldArrayView(v, o, type, ro),
      check(x, p) {
        const a = arrayLike(x, p, type);
        for (let k = 0; k < n; k++) {
          try {
            element.check(a[k], "");
          } catch (error) {
            element.check(a[k], `${p}[${k}]`); // the same failure, now naming the element
            throw error;
          }
        }
      },
      store(v, o, x) {
        const a = arrayLike(x, "", type);
        for (let k = 0; k < n; k++) element.store(v, o + k * es, a[k]);
      },
    };
    arrayCodecs.set(type, codec);
  }
  return codec;
}

function checkElementIndex(index: number, length: number): void {
  if ((index >>> 0) !== index || index >= length) throw outOfBounds(index, length, "element");
}

/** A RangeError (code ERR_OUT_OF_RANGE, like Node's own) for an index outside [0, length). */
export function outOfBounds(index: unknown, length: number, what = "row"): RangeError {
  const shown = typeof index === "number" ? String(index) : `${typeof index} ${String(index)}`;
  const error = new RangeError(`${what} index ${shown} is out of bounds: expected an integer in [0, ${length})`);
  (error as RangeError & { code: string }).code = "ERR_OUT_OF_RANGE";
  return error;
}

/** The live view of an array field (see the FieldArray type). */
export class FieldArrayView {
  readonly #v: DataView;
  readonly #o: number;
  readonly #type: ArrayType;
  readonly #readOnly: boolean;

  constructor(v: DataView, o: number, type: ArrayType, ro: boolean) {
    this.#v = v;
    this.#o = o;
    this.#type = type;
    this.#readOnly = ro;
  }

  get length(): number {
    return this.#type.length;
  }

  get(index: number): unknown {
    checkElementIndex(index, this.#type.length);
    const element = codecOf(this.#type.element);
    return element.access(this.#v, this.#o + index * element.byteLength, this.#readOnly);
  }

  set(index: number, value: unknown): void {
    if (this.#readOnly) readOnly(`[${index}]`);
    checkElementIndex(index, this.#type.length);
    const element = codecOf(this.#type.element);
    element.check(value, `[${index}]`);
    element.store(this.#v, this.#o + index * element.byteLength, value);
  }

  assign(values: ArrayLike<unknown>): void {
    if (this.#readOnly) readOnly("[]");
    const codec = codecOf(this.#type);
    codec.check(values, "");
    codec.store(this.#v, this.#o, values);
  }

  toArray(): unknown[] {
    return codecOf(this.#type).read(this.#v, this.#o) as unknown[];
  }

  toJSON(): unknown[] {
    return this.toArray();
  }

  *[Symbol.iterator](): Iterator<unknown> {
    for (let i = 0; i < this.#type.length; i++) yield this.get(i);
  }

  [Symbol.for("nodejs.util.inspect.custom")](): unknown[] {
    return this.toArray();
  }
}

// ---------------------------------------------------------------- structs

/** The codec of any field type (cached per type). */
export function codecOf(type: FieldType): Codec {
  if (typeof type === "string") return scalarCodec(type);
  if (type.kind === "utf8") return utf8Codec(type.byteLength);
  if (type.kind === "array") return arrayCodec(type);
  return type.codec;
}

/** Generates the accessor classes and codec functions of a layout. */
export function layoutCodec(layout: Layout): LayoutCodec {
  const params = ["$bad", "$notObject", "$readOnly", "$utf8Read", "$utf8Check", "$utf8Store"];
  const args: unknown[] = [badValue, notObject, readOnly, utf8Read, utf8Check, utf8Store];
  const getters: string[] = [];
  const setters: string[] = [];
  const roSetters: string[] = [];
  const roGetters: string[] = [];
  const reads: string[] = [];
  const checks: string[] = [];
  const stores: string[] = [];

  layout.fields.forEach((f, j) => {
    const key = JSON.stringify(f.name);
    const at = (o: string): string => `${o} + ${f.offset}`;
    const type = f.type;
    const roSetter = `set [${key}](x) { $readOnly(${key}); }`;
    roSetters.push(roSetter);
    if (typeof type === "string") {
      const get = scalarGet(type, "this.$v", at("this.$o"));
      getters.push(`get [${key}]() { return ${get}; }`);
      roGetters.push(`get [${key}]() { return ${get}; }`);
      setters.push(`set [${key}](x) { if (${SCALARS[type].invalid}) $bad(${key}, ${JSON.stringify(type)}, x); ${scalarSet(type, "this.$v", at("this.$o"), "x")}; }`);
      reads.push(`${key}: ${scalarGet(type, "v", at("o"))}`);
      checks.push(`x = r[${key}]; if (${SCALARS[type].invalid}) $bad(q + ${key}, ${JSON.stringify(type)}, x);`);
      stores.push(`${scalarSet(type, "v", at("o"), `r[${key}]`)};`);
    } else if (type.kind === "utf8") {
      const n = type.byteLength;
      getters.push(`get [${key}]() { return $utf8Read(this.$v, ${at("this.$o")}, ${n}); }`);
      roGetters.push(`get [${key}]() { return $utf8Read(this.$v, ${at("this.$o")}, ${n}); }`);
      setters.push(`set [${key}](x) { $utf8Check(x, ${key}, ${n}); $utf8Store(this.$v, ${at("this.$o")}, ${n}, x); }`);
      reads.push(`${key}: $utf8Read(v, ${at("o")}, ${n})`);
      checks.push(`$utf8Check(r[${key}], q + ${key}, ${n});`);
      stores.push(`$utf8Store(v, ${at("o")}, ${n}, r[${key}]);`);
    } else {
      const c = `$c${j}`;
      params.push(c);
      args.push(codecOf(type));
      if (type.kind === "struct") {
        const nested = type.codec;
        params.push(`$A${j}`, `$R${j}`);
        args.push(nested.Accessor, nested.ReadOnlyAccessor);
        getters.push(`get [${key}]() { return new $A${j}(this.$v, ${at("this.$o")}); }`);
        roGetters.push(`get [${key}]() { return new $R${j}(this.$v, ${at("this.$o")}); }`);
      } else {
        getters.push(`get [${key}]() { return ${c}.access(this.$v, ${at("this.$o")}, false); }`);
        roGetters.push(`get [${key}]() { return ${c}.access(this.$v, ${at("this.$o")}, true); }`);
      }
      setters.push(`set [${key}](x) { ${c}.check(x, ${key}); ${c}.store(this.$v, ${at("this.$o")}, x); }`);
      reads.push(`${key}: ${c}.read(v, ${at("o")})`);
      checks.push(`${c}.check(r[${key}], q + ${key});`);
      stores.push(`${c}.store(v, ${at("o")}, r[${key}]);`);
    }
  });

  const body = `"use strict";
function read(v, o) {
  return { ${reads.join(",\n    ")} };
}
function check(r, p) {
  if (typeof r !== "object" || r === null) $notObject(p, r);
  const q = p === "" ? "" : p + ".";
  let x;
  ${checks.join("\n  ")}
}
function store(v, o, r) {
  ${stores.join("\n  ")}
}
class Row {
  constructor(v, o) { this.$v = v; this.$o = o; }
  ${getters.join("\n  ")}
  ${setters.join("\n  ")}
  toJSON() { return read(this.$v, this.$o); }
}
class ReadOnlyRow {
  constructor(v, o) { this.$v = v; this.$o = o; }
  ${roGetters.join("\n  ")}
  ${roSetters.join("\n  ")}
  toJSON() { return read(this.$v, this.$o); }
}
return { read, check, store, Row, ReadOnlyRow };`;

  const made = new Function(...params, body)(...args) as {
    read: Codec["read"];
    check: Codec["check"];
    store: Codec["store"];
    Row: AccessorClass;
    ReadOnlyRow: AccessorClass;
  };
  const inspect = Symbol.for("nodejs.util.inspect.custom");
  for (const Class of [made.Row, made.ReadOnlyRow]) {
    Object.defineProperty(Class.prototype, inspect, {
      value(this: { toJSON(): unknown }) {
        return this.toJSON();
      },
    });
  }
  const { Row, ReadOnlyRow } = made;
  return {
    byteLength: layout.byteLength,
    read: made.read,
    check: made.check,
    store: made.store,
    access: (v, o, ro) => (ro ? new ReadOnlyRow(v, o) : new Row(v, o)),
    Accessor: Row,
    ReadOnlyAccessor: ReadOnlyRow,
  };
}
