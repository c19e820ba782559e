/**
 * struct(), utf8(), array(): fixed-size record layouts, C-compatible.
 *
 * Natural layout follows the C rules (and numpy's `align=True`): each field
 * starts at a multiple of its alignment (a scalar's size; an array's
 * element's; a struct's largest member's), and the struct's size is padded
 * to a multiple of its own alignment so that rows of an array stay aligned.
 * `packed: true` drops all padding, like `__attribute__((packed))`.
 *
 * ```ts
 * const Trade = struct({ id: "u32", price: "f64", qty: "i32", symbol: utf8(8) });
 * Trade.byteLength;          // 32: id @0, price @8, qty @16, symbol @20, 4 bytes of tail padding
 * const rows = Trade.array(mappedFile, { byteOffset: 0, length: 1000 });
 * rows.get(7).price += 1;    // reads and writes the mapped bytes
 * ```
 */
import { MmapError, invalidArg } from "../core/errors.ts";
import { validateBoolean, validateOptions } from "../core/validate.ts";
import { layoutCodec, type LayoutCodec } from "./accessors.ts";
import { createStructArray, type StructArray, type StructArrayOptions, type StructSource } from "./struct-array.ts";
import {
  FIELD_NAME_PATTERN,
  MAX_NESTING,
  MAX_ROW_SIZE,
  SCALARS,
  isScalarTypeName,
  type ArrayType,
  type FieldType,
  type Schema,
  type Utf8Type,
} from "./types.ts";

/** Options of {@link struct}. */
export interface StructOptions {
  /** No padding between fields or at the end (alignment 1). @default false */
  packed?: boolean;
}

/** One field of a {@link Layout}, with its place in the row. */
export interface LayoutField {
  readonly name: string;
  readonly type: FieldType;
  /** Byte offset from the start of the row. */
  readonly offset: number;
  readonly byteLength: number;
  readonly alignment: number;
}

/** A field found by a dotted path (`"pos.x"`) through nested structs. */
export interface ResolvedField {
  readonly path: string;
  readonly type: FieldType;
  /** Byte offset from the start of the row. */
  readonly offset: number;
}

// Names an accessor or a plain row object must keep for itself.
const RESERVED_NAMES = new Set(["toJSON", ...Object.getOwnPropertyNames(Object.prototype)]);

const Token = Symbol("Layout");

/**
 * A fixed-size record layout made by {@link struct}: field offsets, the row
 * size, and fast generated accessors. Use it as a field type to nest
 * structs, and `array()` to view memory as rows.
 */
export class Layout<S extends Schema = Schema> {
  /** Tells a layout apart from the other field types. */
  readonly kind = "struct" as const;
  /** The schema given to `struct()`. */
  readonly schema: S;
  /** The fields in layout order, with their offsets. */
  readonly fields: readonly LayoutField[];
  /** Bytes per row, including padding (the stride of an array of rows; C's `sizeof`). */
  readonly byteLength: number;
  /** The row's alignment (C's `_Alignof`); 1 when packed. */
  readonly alignment: number;
  readonly packed: boolean;
  /** Byte offset of each top-level field. */
  readonly offsets: { readonly [K in keyof S]: number };
  /** How deep structs and arrays nest in this layout (1: scalars and strings only). */
  readonly depth: number;
  #codec: LayoutCodec | undefined;

  /** @internal use struct() */
  constructor(token: symbol, schema: S, packed: boolean, depth: number) {
    if (token !== Token) throw new TypeError("use struct() to make a Layout");
    const names = Object.keys(schema);
    if (names.length === 0) throw invalidArg("a struct needs at least one field");
    if (names.length > 0xffff) throw invalidArg(`a struct has at most 65535 fields, got ${names.length}`);
    const fields: LayoutField[] = [];
    const offsets: Record<string, number> = {};
    let offset = 0;
    let alignment = 1;
    for (const name of names) {
      if (!FIELD_NAME_PATTERN.test(name))
        throw invalidArg(`field name ${JSON.stringify(name)} is not a C identifier (letters, digits and _, not starting with a digit, at most 255 characters)`);
      if (RESERVED_NAMES.has(name)) throw invalidArg(`field name "${name}" is reserved (it would hide a method of the row object)`);
      const type = checkFieldType(schema[name], name, depth + 1);
      const size = sizeOf(type);
      const align = packed ? 1 : alignmentOf(type);
      offset = alignUp(offset, align);
      fields.push(Object.freeze({ name, type, offset, byteLength: size, alignment: align }));
      offsets[name] = offset;
      offset += size;
      alignment = Math.max(alignment, align);
      if (offset > MAX_ROW_SIZE) throw invalidArg(`a struct is at most ${MAX_ROW_SIZE} bytes; field "${name}" ends at ${offset}`);
    }
    this.schema = Object.freeze({ ...schema });
    this.fields = Object.freeze(fields);
    this.offsets = Object.freeze(offsets) as { readonly [K in keyof S]: number };
    this.packed = packed;
    this.alignment = alignment;
    this.byteLength = alignUp(offset, alignment);
    this.depth = 1 + Math.max(...fields.map((f) => depthOf(f.type)));
    if (this.depth > MAX_NESTING) throw invalidArg(`structs and arrays nest at most ${MAX_NESTING} deep; this struct nests ${this.depth} deep`);
    if (this.byteLength > MAX_ROW_SIZE) throw invalidArg(`a struct is at most ${MAX_ROW_SIZE} bytes, this one needs ${this.byteLength}`);
  }

  /**
   * Views `length` rows of this layout from `byteOffset` of a mapped file,
   * an ArrayBuffer, a SharedArrayBuffer or a typed array. Nothing is copied:
   * reads and writes go to the memory itself. `length` defaults to as many
   * rows as fit. A mapping with access "read" gives a read-only array.
   */
  array(source: StructSource, options?: StructArrayOptions): StructArray<S> {
    return createStructArray(this, source, options);
  }

  /** The byte offset of a field, by name or dotted path through nested structs (`"pos.x"`). */
  offsetOf(path: string): number {
    return this.field(path).offset;
  }

  /** Finds a field by name or dotted path (`"pos.x"`); an unknown name is an ERR_INVALID_ARG. */
  field(path: string): ResolvedField {
    if (typeof path !== "string") throw invalidArg(`a field name must be a string, got ${typeof path}`);
    let layout: Layout = this as Layout;
    let offset = 0;
    const parts = path.split(".");
    for (let i = 0; i < parts.length; i++) {
      const f = layout.fields.find((x) => x.name === parts[i]);
      if (f === undefined)
        throw invalidArg(`no field "${parts.slice(0, i + 1).join(".")}" in ${this.toString()}`);
      offset += f.offset;
      if (i === parts.length - 1) return { path, type: f.type, offset };
      if (!(f.type instanceof Layout)) throw invalidArg(`field "${parts.slice(0, i + 1).join(".")}" is ${typeName(f.type)}, not a struct`);
      layout = f.type;
    }
    throw invalidArg(`no field "${path}"`);
  }

  /** True when both describe the same bytes: same names, types, offsets and size. */
  equals(other: Layout): boolean {
    return other instanceof Layout && layoutDifference(this, other) === undefined;
  }

  /** A C-like description, e.g. `struct { id: u32 @0, price: f64 @8 } (16 bytes)`. */
  toString(): string {
    return `${typeName(this)} (${this.byteLength} bytes)`;
  }

  /** @internal the generated accessors and codecs */
  get codec(): LayoutCodec {
    return (this.#codec ??= layoutCodec(this));
  }
}

/**
 * Defines a struct layout. Fields are laid out in the order given, with
 * natural (C) alignment unless `packed`. The row type is inferred:
 *
 * ```ts
 * const Point = struct({ x: "f64", y: "f64" });
 * const Body = struct({ id: "u64", pos: Point, tags: array("u16", 4), name: utf8(24), alive: "bool" });
 * // rows.read(0): { id: bigint; pos: { x: number; y: number }; tags: number[]; name: string; alive: boolean }
 * ```
 */
export function struct<const S extends Schema>(schema: S, options: StructOptions = {}): Layout<S> {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema))
    throw invalidArg("struct() expects an object of field names to field types, e.g. struct({ x: \"f64\" })");
  validateOptions(options, ["packed"], "struct");
  if (options.packed !== undefined) validateBoolean(options.packed, "packed");
  return new Layout(Token, schema, options.packed ?? false, 0);
}

/** A string field of `byteLength` bytes of UTF-8, NUL-padded (a C `char[byteLength]`). */
export function utf8(byteLength: number): Utf8Type {
  checkCount("utf8() byte length", byteLength);
  return Object.freeze({ kind: "utf8", byteLength });
}

/** A field of `length` elements of `element` (any field type), back to back (a C array). */
export function array<const E extends FieldType>(element: E, length: number): ArrayType<E> {
  checkCount("array() length", length);
  const checked = checkFieldType(element, "array element", 1);
  if (sizeOf(checked) * length > MAX_ROW_SIZE)
    throw invalidArg(`array(${typeName(checked)}, ${length}) is ${sizeOf(checked) * length} bytes; a field is at most ${MAX_ROW_SIZE}`);
  return Object.freeze({ kind: "array", element, length });
}

function checkCount(what: string, n: unknown): void {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_ROW_SIZE)
    throw invalidArg(`${what} must be an integer in [1, ${MAX_ROW_SIZE}], got ${typeof n === "number" ? n : typeof n}`);
}

/** Validates a field type given by the caller (or decoded from a file). */
function checkFieldType(type: unknown, where: string, depth: number): FieldType {
  if (depth > MAX_NESTING) throw invalidArg(`${where}: structs and arrays nest at most ${MAX_NESTING} deep`);
  if (isScalarTypeName(type)) return type;
  if (type instanceof Layout) return type;
  if (typeof type === "object" && type !== null) {
    const t = type as { kind?: unknown; byteLength?: unknown; element?: unknown; length?: unknown };
    if (t.kind === "utf8") {
      checkCount(`${where}: utf8 byte length`, t.byteLength);
      return type as Utf8Type;
    }
    if (t.kind === "array") {
      checkCount(`${where}: array length`, t.length);
      const element = checkFieldType(t.element, where, depth + 1);
      if (sizeOf(element) * (t.length as number) > MAX_ROW_SIZE)
        throw invalidArg(`${where}: the array is larger than ${MAX_ROW_SIZE} bytes`);
      return type as ArrayType;
    }
  }
  const shown = typeof type === "string" ? JSON.stringify(type) : typeof type;
  throw invalidArg(
    `${where}: unknown field type ${shown}; expected one of ${Object.keys(SCALARS).map((s) => `"${s}"`).join(", ")}, utf8(n), array(type, n) or a struct`,
  );
}

/** Bytes a field of this type occupies. */
export function sizeOf(type: FieldType): number {
  if (typeof type === "string") return SCALARS[type].size;
  if (type.kind === "utf8") return type.byteLength;
  if (type.kind === "array") return sizeOf(type.element) * type.length;
  return type.byteLength;
}

/** Nesting depth of a type: 0 for scalars and strings. */
function depthOf(type: FieldType): number {
  if (typeof type === "string" || type.kind === "utf8") return 0;
  if (type.kind === "array") return 1 + depthOf(type.element);
  return type.depth;
}

/** Natural alignment of a field of this type. */
export function alignmentOf(type: FieldType): number {
  if (typeof type === "string") return SCALARS[type].size;
  if (type.kind === "utf8") return 1;
  if (type.kind === "array") return alignmentOf(type.element);
  return type.alignment;
}

/** How a type is written in messages: `f64`, `utf8(16)`, `array(u8, 4)`, `struct { … }`. */
export function typeName(type: FieldType): string {
  if (typeof type === "string") return type;
  if (type.kind === "utf8") return `utf8(${type.byteLength})`;
  if (type.kind === "array") return `array(${typeName(type.element)}, ${type.length})`;
  const body = type.fields.map((f) => `${f.name}: ${typeName(f.type)} @${f.offset}`).join(", ");
  return `${type.packed ? "packed struct" : "struct"} { ${body} }`;
}

/** Where two layouts differ, in words; undefined when they describe the same bytes. */
export function layoutDifference(a: Layout, b: Layout, path = ""): string | undefined {
  const at = path === "" ? "" : ` in "${path}"`;
  if (a.fields.length !== b.fields.length) return `${a.fields.length} fields against ${b.fields.length}${at}`;
  if (a.packed !== b.packed) return `${a.packed ? "packed" : "natural"} against ${b.packed ? "packed" : "natural"} layout${at}`;
  for (let i = 0; i < a.fields.length; i++) {
    const fa = a.fields[i]!;
    const fb = b.fields[i]!;
    const name = path === "" ? fa.name : `${path}.${fa.name}`;
    if (fa.name !== fb.name) return `field ${i}${at} is "${fa.name}" against "${fb.name}"`;
    if (fa.offset !== fb.offset) return `field "${name}" is at offset ${fa.offset} against ${fb.offset}`;
    const d = typeDifference(fa.type, fb.type, name);
    if (d !== undefined) return d;
  }
  if (a.byteLength !== b.byteLength) return `row size ${a.byteLength} against ${b.byteLength}${at}`;
  return undefined;
}

function typeDifference(a: FieldType, b: FieldType, name: string): string | undefined {
  const differ = `field "${name}" is ${typeName(a)} against ${typeName(b)}`;
  if (typeof a === "string" || typeof b === "string") return a === b ? undefined : differ;
  if (a.kind !== b.kind) return differ;
  if (a.kind === "utf8") return a.byteLength === (b as Utf8Type).byteLength ? undefined : differ;
  if (a.kind === "array") {
    const bb = b as ArrayType;
    if (a.length !== bb.length) return differ;
    return typeDifference(a.element, bb.element, `${name}[]`);
  }
  return layoutDifference(a, b as Layout, name);
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Turns an argument error raised while rebuilding a layout from a file into ERR_CORRUPT. */
export function corruptFromInvalid(error: unknown, prefix: string, path?: string): unknown {
  if (error instanceof MmapError && error.code === "ERR_INVALID_ARG")
    return new MmapError("ERR_CORRUPT", `${prefix}: ${error.message}`, { path, cause: error });
  return error;
}
