/**
 * The vocabulary of struct layouts: field types, their sizes and encodings,
 * and the TypeScript types inferred from a schema.
 *
 * A field type is one of
 * - a scalar name: `"i8" "u8" "i16" "u16" "i32" "u32" "f32" "f64"` (read as
 *   `number`), `"i64" "u64"` (read as `bigint`), `"bool"` (one byte, 0 or 1);
 * - `utf8(n)`: a string of at most `n` bytes of UTF-8, NUL-padded;
 * - `array(type, n)`: `n` elements of any field type, back to back;
 * - a {@link Layout} made by `struct()`: a nested struct.
 *
 * Everything is little-endian (the byte order of every machine memmap runs
 * on, and of C structs there).
 */
import type { Layout } from "./struct.ts";

/** Scalars read as `number`. */
export type NumberTypeName = "i8" | "u8" | "i16" | "u16" | "i32" | "u32" | "f32" | "f64";
/** Scalars read as `bigint`. */
export type BigIntTypeName = "i64" | "u64";
/** Every scalar field type. */
export type ScalarTypeName = NumberTypeName | BigIntTypeName | "bool";

/** A fixed-width UTF-8 string field; made by `utf8(n)`. */
export interface Utf8Type {
  readonly kind: "utf8";
  /** Bytes the field occupies; the string's UTF-8 encoding must fit in them. */
  readonly byteLength: number;
}

/** A fixed-length array field; made by `array(type, n)`. */
export interface ArrayType<E extends FieldType = FieldType> {
  readonly kind: "array";
  readonly element: E;
  readonly length: number;
}

/** Anything a struct field can be. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type FieldType = ScalarTypeName | Utf8Type | ArrayType<any> | Layout<any>;

/** The argument of `struct()`: field names to field types, in layout order. */
export type Schema = { readonly [name: string]: FieldType };

/** The plain JavaScript value of a field of type `T`. */
export type Value<T> = T extends NumberTypeName
  ? number
  : T extends BigIntTypeName
    ? bigint
    : T extends "bool"
      ? boolean
      : T extends Utf8Type
        ? string
        : T extends ArrayType<infer E>
          ? Value<E>[]
          : T extends Layout<infer S>
            ? Row<S>
            : never;

/** A row as a plain object (what `read()` returns and `write()` takes). */
export type Row<S extends Schema> = { -readonly [K in keyof S]: Value<S[K]> };

/** The plain row type of a layout: `type Trade = RowOf<typeof Trade>`. */
export type RowOf<L> = L extends Layout<infer S> ? Row<S> : never;

/**
 * What reading a field through a live accessor gives: scalars and strings
 * as values, nested structs as nested accessors, arrays as {@link FieldArray}s.
 */
export type FieldAccess<T> = T extends NumberTypeName | BigIntTypeName | "bool" | Utf8Type
  ? Value<T>
  : T extends ArrayType<infer E>
    ? FieldArray<Value<E>, FieldAccess<E>>
    : T extends Layout<infer S>
      ? RowFields<S>
      : never;

/**
 * The fields of a live row. A nested struct's accessor has this type (its
 * `toJSON()` exists but is not typed), so that a plain object can be
 * assigned to it: `row.pos = { x: 1, y: 2 }`.
 */
export type RowFields<S extends Schema> = { -readonly [K in keyof S]: FieldAccess<S[K]> };

/**
 * A live view of one row: reading `row.price` reads the mapped bytes,
 * assigning it writes them. `toJSON()` copies the row into a plain object.
 */
export type RowAccessor<S extends Schema> = RowFields<S> & {
  /** A plain-object copy of the row. */
  toJSON(): Row<S>;
};

/** What `write()` and `append()` take: a plain row, or another row's live accessor. */
export type RowInput<S extends Schema> = Row<S> | RowAccessor<S>;

/**
 * A live view of an array field. `get(i)` reads element `i` (a nested
 * accessor for struct and array elements), `set(i, v)` writes it.
 */
export interface FieldArray<V, A = V> extends Iterable<A> {
  readonly length: number;
  /** Element `index`: a value, or a live accessor for struct and array elements. */
  get(index: number): A;
  /** Writes element `index` (validated first). */
  set(index: number, value: V): void;
  /** Writes every element; `values` must have exactly `length` elements. */
  assign(values: ArrayLike<V>): void;
  /** A plain copy of the elements. */
  toArray(): V[];
  /** The same as toArray(), for JSON.stringify. */
  toJSON(): V[];
}

/** The typed array `column()` returns for a scalar field. */
export type ColumnOf<T> = T extends "i8"
  ? Int8Array
  : T extends "u8" | "bool"
    ? Uint8Array
    : T extends "i16"
      ? Int16Array
      : T extends "u16"
        ? Uint16Array
        : T extends "i32"
          ? Int32Array
          : T extends "u32"
            ? Uint32Array
            : T extends "f32"
              ? Float32Array
              : T extends "f64"
                ? Float64Array
                : T extends "i64"
                  ? BigInt64Array
                  : T extends "u64"
                    ? BigUint64Array
                    : T extends Utf8Type
                      ? string[]
                      : never;

/** Any column: a typed array of a scalar field, or the strings of a utf8 field. */
export type Column =
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/** Fields that `column()` and `bisect()` accept by name (top level). */
export type ScalarKeys<S extends Schema> = {
  [K in keyof S]: S[K] extends ScalarTypeName | Utf8Type ? K : never;
}[keyof S] &
  string;

/** Fields that `bisect()` accepts by name: numeric and bigint scalars. */
export type OrderedKeys<S extends Schema> = {
  [K in keyof S]: S[K] extends NumberTypeName | BigIntTypeName ? K : never;
}[keyof S] &
  string;

/** How one scalar type is stored and checked. */
export interface ScalarInfo {
  readonly size: number;
  /** DataView method suffix: `get${accessor}` / `set${accessor}`. */
  readonly accessor: string;
  /** JavaScript expression that is true when `x` is NOT a valid value. */
  readonly invalid: string;
  /** For error messages: what a valid value is. */
  readonly expected: string;
  readonly column: new (length: number) => Column;
}

/** The scalar types, their sizes (= natural alignment) and value checks. */
export const SCALARS: Readonly<Record<ScalarTypeName, ScalarInfo>> = {
  i8: { size: 1, accessor: "Int8", invalid: `typeof x !== "number" || (x << 24 >> 24) !== x`, expected: "an integer in [-128, 127]", column: Int8Array },
  u8: { size: 1, accessor: "Uint8", invalid: `typeof x !== "number" || (x & 0xff) !== x`, expected: "an integer in [0, 255]", column: Uint8Array },
  i16: { size: 2, accessor: "Int16", invalid: `typeof x !== "number" || (x << 16 >> 16) !== x`, expected: "an integer in [-32768, 32767]", column: Int16Array },
  u16: { size: 2, accessor: "Uint16", invalid: `typeof x !== "number" || (x & 0xffff) !== x`, expected: "an integer in [0, 65535]", column: Uint16Array },
  i32: { size: 4, accessor: "Int32", invalid: `typeof x !== "number" || (x | 0) !== x`, expected: "an integer in [-2147483648, 2147483647]", column: Int32Array },
  u32: { size: 4, accessor: "Uint32", invalid: `typeof x !== "number" || (x >>> 0) !== x`, expected: "an integer in [0, 4294967295]", column: Uint32Array },
  f32: { size: 4, accessor: "Float32", invalid: `typeof x !== "number"`, expected: "a number", column: Float32Array },
  f64: { size: 8, accessor: "Float64", invalid: `typeof x !== "number"`, expected: "a number", column: Float64Array },
  i64: { size: 8, accessor: "BigInt64", invalid: `typeof x !== "bigint" || BigInt.asIntN(64, x) !== x`, expected: "a bigint in [-(2n ** 63n), 2n ** 63n - 1n]", column: BigInt64Array },
  u64: { size: 8, accessor: "BigUint64", invalid: `typeof x !== "bigint" || BigInt.asUintN(64, x) !== x`, expected: "a bigint in [0n, 2n ** 64n - 1n]", column: BigUint64Array },
  bool: { size: 1, accessor: "Uint8", invalid: `typeof x !== "boolean"`, expected: "a boolean", column: Uint8Array },
};

export function isScalarTypeName(value: unknown): value is ScalarTypeName {
  return typeof value === "string" && Object.hasOwn(SCALARS, value);
}

/** The largest row (and the largest field) a layout may describe: 16 MiB. */
export const MAX_ROW_SIZE = 2 ** 24;
/** How deep structs and arrays may nest. */
export const MAX_NESTING = 16;
/** Field names: C identifiers, so the layout reads the same from C and numpy. */
export const FIELD_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,254}$/;
