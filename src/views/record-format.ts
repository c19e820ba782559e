/**
 * The record file format, defined once, here: a small self-describing
 * header (with the schema of the rows and the row count) followed by the rows.
 *
 * ```
 *  0          8         12         16         20          24          28         32        36       40
 *  +----------+---------+----------+----------+-----------+-----------+----------+---------+--------+
 *  | magic    | version | header   | row size | row       | schema    | checksum | row     | count  |
 *  | "memmapR"| (u32)   | length   | (u32)    | alignment | length    | (crc32c) | count   | check  |
 *  | "F"      |         | (u32)    |          | (u32)     | (u32)     |          | (u32)   | (u32)  |
 *  +----------+---------+----------+----------+-----------+-----------+----------+---------+--------+
 *  | schema (schema length bytes, see below) … zero padding up to header length                |
 *  +--------------------------------------------------------------------------------------------+
 *  | row 0 | row 1 | … | row count - 1 | (spare capacity, zeros) …                              |
 *  +--------------------------------------------------------------------------------------------+
 * ```
 *
 * - All integers are little-endian. The header length is a multiple of
 *   {@link HEADER_ALIGNMENT} (rows start on a cache line; any row alignment is met).
 * - The checksum is CRC32C over bytes [0, 28) and the schema bytes; it covers
 *   everything in the header except the row count, which changes.
 * - The row count is the commit point: a writer stores the row's bytes first,
 *   then the new count with an atomic store; a reader loads the count
 *   atomically, so every row below it is complete. The file is grown
 *   *before* the count is raised, so the count never exceeds the file.
 * - The count and its check are one u64, stored and loaded atomically
 *   together: the count in the low 44 bits (record files can be larger
 *   than 4 GiB), {@link countCheck} of it in bits 44–62, bit 63 zero.
 *   A damaged count (which the file size alone cannot catch while it stays
 *   within the spare capacity) would otherwise hand out rows never written.
 *   Version 1 files, which hold the bare count there, are still read and
 *   appended to as version 1.
 * - Spare capacity: the file may be longer than the rows; appends fill it.
 *
 * The schema is the row layout, encoded depth-first:
 *
 * ```
 *  struct := u8 TYPE_STRUCT | u8 flags (bit 0: packed) | u16 field count | u32 row size | field × count
 *  field  := u8 name length | name (ASCII: a C identifier) | u32 offset in the struct | type
 *  type   := u8 scalar code (TYPE_I8 … TYPE_BOOL)
 *          | u8 TYPE_UTF8 | u32 byte length
 *          | u8 TYPE_ARRAY | u32 element count | type
 *          | struct
 * ```
 *
 * Offsets and sizes are stored, not just implied, so that a reader in
 * another language can use the file without knowing memmap's layout rules,
 * and so that memmap can check them against the rules (a file whose stored
 * offsets disagree is corrupt).
 */
import { MmapError } from "../core/errors.ts";
import { native } from "../core/native.ts";
import { Layout, alignUp, corruptFromInvalid, sizeOf, struct, typeName } from "./struct.ts";
import { FIELD_NAME_PATTERN, MAX_NESTING, type FieldType, type ScalarTypeName, type Schema } from "./types.ts";

export const MAGIC = "memmapRF";
/** 2: the row count carries a check (version 1: the bare count). */
export const FORMAT_VERSION = 2;
export const FORMAT_VERSION_BARE_COUNT = 1;

export const MAGIC_OFFSET = 0;
export const MAGIC_LENGTH = 8;
export const VERSION_OFFSET = 8;
export const HEADER_LENGTH_OFFSET = 12;
export const ROW_SIZE_OFFSET = 16;
export const ROW_ALIGNMENT_OFFSET = 20;
export const SCHEMA_LENGTH_OFFSET = 24;
export const CHECKSUM_OFFSET = 28;
export const ROW_COUNT_OFFSET = 32;
export const SCHEMA_OFFSET = 40;
/** The fixed part of the header, before the schema. */
export const FIXED_HEADER_LENGTH = SCHEMA_OFFSET;
/** Header lengths are multiples of this (rows start on a cache line). */
export const HEADER_ALIGNMENT = 64;
/** A sanity bound on the header (the schema of any sane layout is far smaller). */
export const MAX_HEADER_LENGTH = 1 << 20;

/** Type codes of the schema encoding. */
export const TYPE_CODES: Readonly<Record<ScalarTypeName | "utf8" | "array" | "struct", number>> = {
  i8: 1,
  u8: 2,
  i16: 3,
  u16: 4,
  i32: 5,
  u32: 6,
  i64: 7,
  u64: 8,
  f32: 9,
  f64: 10,
  bool: 11,
  utf8: 12,
  array: 13,
  struct: 14,
};
const SCALAR_BY_CODE = new Map<number, ScalarTypeName>(
  (Object.entries(TYPE_CODES) as [string, number][])
    .filter(([name]) => name !== "utf8" && name !== "array" && name !== "struct")
    .map(([name, code]) => [code, name as ScalarTypeName]),
);
const STRUCT_PACKED_FLAG = 0b0000_0001;

// ---------------------------------------------------------------- encoding

/** The schema bytes of a layout. */
export function encodeSchema(layout: Layout): Uint8Array {
  const out: number[] = [];
  const u8 = (n: number): void => void out.push(n & 0xff);
  const u16 = (n: number): void => void out.push(n & 0xff, (n >>> 8) & 0xff);
  const u32 = (n: number): void => void out.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  const type = (t: FieldType): void => {
    if (typeof t === "string") u8(TYPE_CODES[t]);
    else if (t.kind === "utf8") {
      u8(TYPE_CODES.utf8);
      u32(t.byteLength);
    } else if (t.kind === "array") {
      u8(TYPE_CODES.array);
      u32(t.length);
      type(t.element);
    } else {
      u8(TYPE_CODES.struct);
      u8(t.packed ? STRUCT_PACKED_FLAG : 0);
      u16(t.fields.length);
      u32(t.byteLength);
      for (const f of t.fields) {
        u8(f.name.length); // names are ASCII identifiers: one byte per character
        for (let i = 0; i < f.name.length; i++) u8(f.name.charCodeAt(i));
        u32(f.offset);
        type(f.type);
      }
    }
  };
  type(layout);
  return Uint8Array.from(out);
}

/** A complete header for `layout` with row count 0. */
export function encodeHeader(layout: Layout): Uint8Array {
  const schema = encodeSchema(layout);
  const headerLength = alignUp(FIXED_HEADER_LENGTH + schema.length, HEADER_ALIGNMENT);
  const bytes = new Uint8Array(headerLength);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < MAGIC_LENGTH; i++) bytes[MAGIC_OFFSET + i] = MAGIC.charCodeAt(i);
  view.setUint32(VERSION_OFFSET, FORMAT_VERSION, true);
  view.setUint32(HEADER_LENGTH_OFFSET, headerLength, true);
  view.setUint32(ROW_SIZE_OFFSET, layout.byteLength, true);
  view.setUint32(ROW_ALIGNMENT_OFFSET, layout.alignment, true);
  view.setUint32(SCHEMA_LENGTH_OFFSET, schema.length, true);
  view.setBigUint64(ROW_COUNT_OFFSET, encodeRowCount(0, true), true);
  bytes.set(schema, SCHEMA_OFFSET);
  sealHeader(bytes);
  return bytes;
}

/** The header checksum of `bytes` (a header at least FIXED_HEADER_LENGTH + schema length long). */
export function headerChecksum(bytes: Uint8Array, schemaLength: number): number {
  const buffer = bytes.buffer as ArrayBuffer;
  const head = native.crc32c(buffer, bytes.byteOffset, CHECKSUM_OFFSET, 0);
  return native.crc32c(buffer, bytes.byteOffset + SCHEMA_OFFSET, schemaLength, head);
}

/** Recomputes and stores the checksum of a header (its schema length must be in bounds). */
export function sealHeader(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const schemaLength = view.getUint32(SCHEMA_LENGTH_OFFSET, true);
  view.setUint32(CHECKSUM_OFFSET, headerChecksum(bytes, schemaLength), true);
}

// ---------------------------------------------------------------- decoding (untrusted input)

/** What a valid header says. */
export interface DecodedHeader {
  readonly layout: Layout;
  readonly headerLength: number;
  readonly rowCount: number;
  /** The row count carries a check (format version 2 and later). */
  readonly checkedCount: boolean;
}

class Corrupt extends Error {}

/**
 * Validates the header at the start of `bytes` (the start of the file as
 * mapped: all of it, or at least its first MAX_HEADER_LENGTH bytes of a
 * `fileSize`-byte file) and returns the layout, header length and row count.
 * Anything wrong is an ERR_CORRUPT that says what.
 */
export function decodeHeader(bytes: Uint8Array, path?: string, fileSize: number = bytes.byteLength): DecodedHeader {
  const fail = (message: string): never => {
    throw new MmapError("ERR_CORRUPT", `not a valid record file: ${message}`, { path });
  };
  if (bytes.byteLength < FIXED_HEADER_LENGTH)
    fail(`truncated header: the file has ${fileSize} bytes, a header needs at least ${FIXED_HEADER_LENGTH}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let magic = "";
  for (let i = 0; i < MAGIC_LENGTH; i++) magic += String.fromCharCode(bytes[MAGIC_OFFSET + i]!);
  if (magic !== MAGIC) fail(`bad magic ${JSON.stringify(magic)} (expected ${JSON.stringify(MAGIC)})`);
  const version = view.getUint32(VERSION_OFFSET, true);
  if (version !== FORMAT_VERSION && version !== FORMAT_VERSION_BARE_COUNT) fail(`unsupported format version ${version} (this memmap reads version ${FORMAT_VERSION})`);
  const headerLength = view.getUint32(HEADER_LENGTH_OFFSET, true);
  const rowSize = view.getUint32(ROW_SIZE_OFFSET, true);
  const rowAlignment = view.getUint32(ROW_ALIGNMENT_OFFSET, true);
  const schemaLength = view.getUint32(SCHEMA_LENGTH_OFFSET, true);
  if (headerLength % 8 !== 0 || headerLength < FIXED_HEADER_LENGTH || headerLength > MAX_HEADER_LENGTH)
    fail(`header length ${headerLength} is not a multiple of 8 in [${FIXED_HEADER_LENGTH}, ${MAX_HEADER_LENGTH}]`);
  if (headerLength > bytes.byteLength) fail(`truncated header: it is ${headerLength} bytes long, the file has ${fileSize}`);
  if (schemaLength === 0 || schemaLength > headerLength - FIXED_HEADER_LENGTH)
    fail(`schema length ${schemaLength} does not fit in the ${headerLength}-byte header`);
  const stored = view.getUint32(CHECKSUM_OFFSET, true);
  const computed = headerChecksum(bytes, schemaLength);
  if (stored !== computed)
    fail(`header checksum mismatch (stored 0x${hex(stored)}, computed 0x${hex(computed)}): the header is damaged`);

  let layout: Layout;
  try {
    const reader = new SchemaReader(bytes.subarray(SCHEMA_OFFSET, SCHEMA_OFFSET + schemaLength));
    const type = reader.type(0);
    if (!(type instanceof Layout)) throw new Corrupt(`the schema describes ${typeName(type)}, not a struct`);
    if (reader.position !== schemaLength)
      throw new Corrupt(`the schema ends at byte ${reader.position} of ${schemaLength}`);
    layout = type;
  } catch (error) {
    if (error instanceof Corrupt) fail(`schema: ${error.message}`);
    throw corruptFromInvalid(error, "not a valid record file: schema", path);
  }
  if (rowSize !== layout.byteLength) fail(`row size is stored as ${rowSize} bytes but the schema's rows are ${layout.byteLength}`);
  if (rowAlignment !== layout.alignment)
    fail(`row alignment is stored as ${rowAlignment} but the schema's rows align to ${layout.alignment}`);
  const checkedCount = version !== FORMAT_VERSION_BARE_COUNT;
  const rowCount = checkRowCount(decodeRowCount(view.getBigInt64(ROW_COUNT_OFFSET, true), checkedCount, path), headerLength, rowSize, fileSize, path);
  return { layout, headerLength, rowCount, checkedCount };
}

const TWO_32 = 2 ** 32;
/**
 * The row count word (format version 2): the count in its low
 * {@link COUNT_BITS} bits, a check in the {@link CHECK_BITS} above them, and
 * bit 63 clear.
 *
 * ```
 *  63   62 ............. 44   43 ........................ 0
 *  +----+--------------------+-------------------------------+
 *  | 0  | check (19 bits)    | row count (44 bits: 17.6 T)   |
 *  +----+--------------------+-------------------------------+
 * ```
 */
const COUNT_BITS = 44n;
const CHECK_BITS = 19;
const COUNT_MASK = (1n << COUNT_BITS) - 1n;
/** The most rows a version 2 record file can count. */
export const MAX_CHECKED_ROWS = 2 ** Number(COUNT_BITS) - 1;

/**
 * The check stored with a row count: the high bits of a multiplicative
 * hash of both halves of the count (every flipped bit of the count changes
 * them), xored with a constant so that an all-zero word is not a valid
 * count of 0.
 */
export function countCheck(count: number): number {
  const low = count % TWO_32;
  const high = (count - low) / TWO_32;
  return (Math.imul(low ^ Math.imul(high, 0x85ebca6b), 0x9e3779b1) >>> (32 - CHECK_BITS)) ^ 0x4ffe;
}

/** The u64 stored at ROW_COUNT_OFFSET for `count` rows. */
export function encodeRowCount(count: number, checked: boolean): bigint {
  return checked ? (BigInt(countCheck(count)) << COUNT_BITS) | BigInt(count) : BigInt(count);
}

/** The row count in a u64 loaded from ROW_COUNT_OFFSET; a check that does not match is an ERR_CORRUPT. Bare counts are returned as they are. */
export function decodeRowCount(raw: bigint, checked: boolean, path?: string): bigint {
  if (!checked) return raw;
  const word = `0x${BigInt.asUintN(64, raw).toString(16)}`;
  if (raw < 0n) throw new MmapError("ERR_CORRUPT", `not a valid record file: the row count word ${word} is negative: the count is damaged`, { path });
  const count = Number(raw & COUNT_MASK);
  const check = Number(raw >> COUNT_BITS);
  if (check !== countCheck(count))
    throw new MmapError(
      "ERR_CORRUPT",
      `not a valid record file: the row count word ${word} fails its check (count ${count}, check 0x${check.toString(16)}, expected 0x${countCheck(count).toString(16)}): the count is damaged`,
      { path },
    );
  return BigInt(count);
}

/** Validates a row count loaded from a header against the file's size. */
export function checkRowCount(count: bigint, headerLength: number, rowSize: number, fileSize: number, path?: string): number {
  const fits = Math.floor((fileSize - headerLength) / rowSize);
  if (count < 0n) throw new MmapError("ERR_CORRUPT", `not a valid record file: row count ${count} is negative`, { path });
  if (count > BigInt(fits))
    throw new MmapError(
      "ERR_CORRUPT",
      `not a valid record file: row count ${count} is larger than the file holds (${fits} rows of ${rowSize} bytes after the ${headerLength}-byte header)`,
      { path },
    );
  return Number(count);
}

function hex(n: number): string {
  return n.toString(16).padStart(8, "0");
}

/** Reads the schema encoding; every read is bounds-checked, every structure validated. */
class SchemaReader {
  readonly #bytes: Uint8Array;
  position = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  #need(n: number, what: string): void {
    if (this.position + n > this.#bytes.length)
      throw new Corrupt(`truncated: ${what} at byte ${this.position} needs ${n} bytes, ${this.#bytes.length - this.position} are left`);
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.#bytes[this.position++]!;
  }

  u16(what: string): number {
    this.#need(2, what);
    const b = this.#bytes;
    const n = b[this.position]! | (b[this.position + 1]! << 8);
    this.position += 2;
    return n;
  }

  u32(what: string): number {
    this.#need(4, what);
    const b = this.#bytes;
    const p = this.position;
    const n = (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
    this.position += 4;
    return n;
  }

  type(depth: number): FieldType {
    if (depth > MAX_NESTING) throw new Corrupt(`structs and arrays nest more than ${MAX_NESTING} deep`);
    const at = this.position;
    const code = this.u8("a type code");
    const scalar = SCALAR_BY_CODE.get(code);
    if (scalar !== undefined) return scalar;
    if (code === TYPE_CODES.utf8) return { kind: "utf8", byteLength: this.u32("a utf8 byte length") };
    if (code === TYPE_CODES.array) {
      const length = this.u32("an array length");
      return { kind: "array", length, element: this.type(depth + 1) };
    }
    if (code === TYPE_CODES.struct) return this.struct(depth);
    throw new Corrupt(`unknown type code ${code} at byte ${at}`);
  }

  struct(depth: number): Layout {
    const flags = this.u8("struct flags");
    if ((flags & ~STRUCT_PACKED_FLAG) !== 0) throw new Corrupt(`unknown struct flags 0b${flags.toString(2)}`);
    const count = this.u16("a field count");
    const byteLength = this.u32("a struct size");
    if (count === 0) throw new Corrupt("a struct with no fields");
    const schema: Record<string, FieldType> = {};
    const placed: { name: string; offset: number; size: number }[] = [];
    for (let i = 0; i < count; i++) {
      const nameLength = this.u8("a field name length");
      this.#need(nameLength, "a field name");
      let name = "";
      for (let k = 0; k < nameLength; k++) name += String.fromCharCode(this.#bytes[this.position + k]!);
      this.position += nameLength;
      if (!FIELD_NAME_PATTERN.test(name)) throw new Corrupt(`field name ${JSON.stringify(name)} is not a C identifier`);
      if (Object.hasOwn(schema, name)) throw new Corrupt(`duplicate field name ${JSON.stringify(name)}`);
      const offset = this.u32(`the offset of field ${JSON.stringify(name)}`);
      const type = this.type(depth + 1);
      const size = checkedSize(type);
      if (offset + size > byteLength)
        throw new Corrupt(`field "${name}" (offset ${offset}, ${size} bytes) exceeds the row size of ${byteLength} bytes`);
      schema[name] = type;
      placed.push({ name, offset, size });
    }
    const sorted = [...placed].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      const cur = sorted[i]!;
      if (prev.offset + prev.size > cur.offset)
        throw new Corrupt(`field "${cur.name}" at offset ${cur.offset} overlaps field "${prev.name}" (offset ${prev.offset}, ${prev.size} bytes)`);
    }
    // struct() validates names and types and computes the offsets memmap's rules give.
    const layout = struct(schema as Schema, { packed: (flags & STRUCT_PACKED_FLAG) !== 0 });
    for (const p of placed) {
      const expected = layout.offsets[p.name]!;
      if (p.offset !== expected)
        throw new Corrupt(`field "${p.name}" is stored at offset ${p.offset} but a ${layout.packed ? "packed" : "natural"} layout puts it at ${expected}`);
    }
    if (layout.byteLength !== byteLength)
      throw new Corrupt(`a struct's size is stored as ${byteLength} bytes but its fields make ${layout.byteLength}`);
    return layout;
  }
}

/** The size of a decoded type, refusing sizes so large that arithmetic on them could go wrong. */
function checkedSize(type: FieldType): number {
  if (typeof type !== "string" && type.kind === "array" && (type.length === 0 || type.length > 2 ** 24))
    throw new Corrupt(`array length ${type.length} is not in [1, ${2 ** 24}]`);
  if (typeof type !== "string" && type.kind === "utf8" && (type.byteLength === 0 || type.byteLength > 2 ** 24))
    throw new Corrupt(`utf8 byte length ${type.byteLength} is not in [1, ${2 ** 24}]`);
  return sizeOf(type);
}
