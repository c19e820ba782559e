/**
 * StructArray: rows of a layout over a mapped file or any buffer, indexed
 * like an array, with no copies and no parsing.
 */
import { MmapError, invalidArg } from "../core/errors.ts";
import { MAX_BUFFER_LENGTH, MappedFile } from "../core/mapped-file.ts";
import { checkInteger, validateBoolean, validateOptions } from "../core/validate.ts";
import { codecOf, outOfBounds, type AccessorClass, type LayoutCodec } from "./accessors.ts";
import type { Layout } from "./struct.ts";
import {
  SCALARS,
  type Column,
  type ColumnOf,
  type OrderedKeys,
  type Row,
  type RowAccessor,
  type RowInput,
  type ScalarKeys,
  type ScalarTypeName,
  type Schema,
} from "./types.ts";

/** What a struct array can view. */
export type StructSource = MappedFile | ArrayBuffer | SharedArrayBuffer | ArrayBufferView;

/** Options of `rows.column()`. */
export interface ColumnOptions<C> {
  /** First row. @default 0 */
  start?: number;
  /** Row after the last. @default undefined (the array's length) */
  end?: number;
  /** An array to fill instead of allocating one (see column()). @default undefined (a new array) */
  into?: C;
}

/** Options of `layout.array()`. */
export interface StructArrayOptions {
  /** Where row 0 starts in the source. @default 0 */
  byteOffset?: number;
  /** Rows. @default undefined (as many as fit after `byteOffset`) */
  length?: number;
  /** Refuse writes. @default true over a mapping with access "read", else false */
  readOnly?: boolean;
}

type ColumnReader = (v: DataView, o: number, stride: number, out: Column, count: number) => void;
type Bisector = (v: DataView, o: number, stride: number, lo: number, hi: number, x: number | bigint) => number;

const columnReaders = new Map<ScalarTypeName, ColumnReader>();
const bisectors = new Map<ScalarTypeName, Bisector>();

/** A loop that copies one scalar field of `count` rows into a typed array (one generated loop per type). */
function columnReader(type: ScalarTypeName): ColumnReader {
  let f = columnReaders.get(type);
  if (f === undefined) {
    const s = SCALARS[type];
    const get = type === "bool" ? "(v.getUint8(o) !== 0 ? 1 : 0)" : s.size === 1 ? `v.get${s.accessor}(o)` : `v.get${s.accessor}(o, true)`;
    f = new Function("v", "o", "stride", "out", "count", `"use strict"; for (let i = 0; i < count; i++) { out[i] = ${get}; o += stride; }`) as ColumnReader;
    columnReaders.set(type, f);
  }
  return f;
}

/** Lower-bound binary search over one scalar field (one generated loop per type). */
function bisector(type: ScalarTypeName): Bisector {
  let f = bisectors.get(type);
  if (f === undefined) {
    const s = SCALARS[type];
    const get = s.size === 1 ? `v.get${s.accessor}(o + mid * stride)` : `v.get${s.accessor}(o + mid * stride, true)`;
    f = new Function(
      "v", "o", "stride", "lo", "hi", "x",
      `"use strict";
      while (lo < hi) {
        const mid = lo + Math.floor((hi - lo) / 2);
        if (${get} < x) lo = mid + 1; else hi = mid;
      }
      return lo;`,
    ) as Bisector;
    bisectors.set(type, f);
  }
  return f;
}

const Token = Symbol("StructArray");

/**
 * The per-layout part of a struct array, generated: `get`, `read` and the
 * iterator, with the accessor class and the row size as constants. One class
 * per layout (and access) keeps every call site that uses one layout
 * monomorphic, so V8 inlines the accessor and removes its allocation; a
 * shared `get` slows to a crawl as soon as a program uses a second layout.
 * Out-of-bounds indexes go to a separate function: a throw inside the
 * inlined path stops V8 from hoisting the loads out of the caller's loop.
 *
 * Rows past 4 GiB (record files of any size) live in windows: the first
 * `$n0` rows are in `$v` (all of them when the rows fit one ArrayBuffer);
 * row i past those is in window `i >> K`, made on first use by
 * `$window(j)`, at byte `(i mod 2^K) × rowSize`. A window holds 2^K whole
 * rows (see {@link rowsPerWindow}), so a row never straddles two windows,
 * and a shift and a mask find it. Anything off the fast path (a window not
 * made yet, an index past 2^32, a bad index) goes to `$far`.
 */
type RowsClass = new (token: symbol, layout: Layout, view: DataView, base: number, length: number, readOnly: boolean) => StructArray;
const rowsClasses = new WeakMap<Layout, { writable: RowsClass; readOnly: RowsClass }>();

/** Bytes a window of rows covers at most: 1 GiB, well under one ArrayBuffer's 4 GiB. */
export const WINDOW_BYTES = 2 ** 30;

/** Rows per window for rows of `rowSize` bytes: whole rows only, and a power of two, so that a shift finds a row's window. */
export function rowsPerWindow(rowSize: number): number {
  let rows = 1;
  while (rows * 2 * rowSize <= WINDOW_BYTES) rows *= 2;
  return rows;
}

function rowsClass(layout: Layout, readOnly: boolean): RowsClass {
  let classes = rowsClasses.get(layout);
  if (classes === undefined) {
    const codec = layout.codec;
    const S = layout.byteLength;
    const R = rowsPerWindow(S);
    const K = Math.log2(R);
    const make = (Accessor: AccessorClass): RowsClass =>
      new Function(
        "Base", "Row", "readRow",
        `"use strict";
        class Cursor {
          constructor(rows) { this.rows = rows; this.row = new Row(rows.$v, rows.$b - ${S}); this.result = { value: this.row, done: false }; this.i = -1; this.j = 0; this.end = 0; }
          next() {
            const result = this.result;
            const rows = this.rows;
            const i = ++this.i;
            if (i >= rows.$n) { result.done = true; return result; }
            const row = this.row;
            if (i < rows.$n0) {
              const v = rows.$v;
              if (row.$v !== v) row.$v = v; // a record file that grew has a new view: follow it
              row.$o += ${S};
            } else if (i < this.end && row.$v === rows.$w[this.j]) {
              row.$o += ${S}; // the next row of the same window
            } else {
              const j = Math.floor(i / ${R});
              row.$v = rows.$w[j] ?? rows.$window(j);
              row.$o = (i - j * ${R}) * ${S};
              this.j = j;
              this.end = (j + 1) * ${R};
            }
            return result;
          }
          [Symbol.iterator]() { return this; }
        }
        return class Rows extends Base {
          get(i) {
            if ((i >>> 0) === i) {
              if (i < this.$n0) return new Row(this.$v, this.$b + i * ${S});
              if (i < this.$n) {
                const v = this.$w[i >>> ${K}];
                if (v !== undefined) return new Row(v, (i & ${R - 1}) * ${S});
              }
            }
            return this.$far(i, false);
          }
          read(i) {
            if ((i >>> 0) === i) {
              if (i < this.$n0) return readRow(this.$v, this.$b + i * ${S});
              if (i < this.$n) {
                const v = this.$w[i >>> ${K}];
                if (v !== undefined) return readRow(v, (i & ${R - 1}) * ${S});
              }
            }
            return this.$far(i, true);
          }
          [Symbol.iterator]() { return new Cursor(this); }
        };`,
      )(StructArray, Accessor, codec.read) as RowsClass;
    classes = { writable: make(codec.Accessor), readOnly: make(codec.ReadOnlyAccessor) };
    rowsClasses.set(layout, classes);
  }
  return readOnly ? classes.readOnly : classes.writable;
}

function throwOutOfBounds(index: unknown, length: number): never {
  throw outOfBounds(index, length);
}

/** Makes window `j` of an array's rows: a view whose byte 0 is the first byte of row `j × R`. */
export type WindowMaker = (j: number) => DataView;

/**
 * Moves an array onto a new view (a record file that grew) and sets its
 * length. With `windows`, only the first `rowsInView` rows are in `view`,
 * and the rest are reached through windows made on demand.
 */
export function rebindStructArray(array: StructArray, view: DataView, length: number, windows?: { rowsInView: number; make: WindowMaker }): void {
  array.$v = view;
  array.$n = length;
  if (windows === undefined) {
    array.$n0 = length;
    if (array.$w.length > 0) array.$w = [];
  } else {
    array.$n0 = Math.min(length, windows.rowsInView);
    array.$w = [];
    array.$mk = windows.make;
  }
}

/**
 * Rows of a {@link Layout} over memory. `get(i)` gives a live accessor,
 * `read(i)` a plain copy, `write(i, row)` stores a row; iteration moves one
 * cursor over the rows (no object per row). Indexes outside `[0, length)`
 * throw a `RangeError` with code `ERR_OUT_OF_RANGE`.
 *
 * Safety: a struct array reads the memory it was made over. When that
 * mapping is closed or resized, the memory is detached and every accessor
 * read throws a TypeError (never touches unmapped memory); make a new array.
 */
export class StructArray<S extends Schema = Schema> implements Iterable<RowAccessor<S>> {
  readonly layout: Layout<S>;
  // Plain properties, not private fields: the generated subclass reads them.
  // `declare`d so that no field definition runs before the constructor's
  // stores (that would make V8 keep them as generic tagged values).
  /** @internal the view the rows are in */
  declare $v: DataView;
  /** @internal where row 0 starts in `$v` */
  declare readonly $b: number;
  /** @internal the number of rows */
  declare $n: number;
  /** @internal rows reachable through `$v`; the rest are in windows */
  declare $n0: number;
  /** @internal windows made so far, by window number (see rowsClass) */
  declare $w: (DataView | undefined)[];
  /** @internal makes a window */
  declare $mk: WindowMaker | undefined;
  readonly #stride: number;
  readonly #readOnly: boolean;
  readonly #codec: LayoutCodec;

  /** @internal use layout.array() */
  constructor(token: symbol, layout: Layout<S>, view: DataView, base: number, length: number, readOnly: boolean) {
    if (token !== Token) throw new TypeError("use layout.array() to make a StructArray");
    this.layout = layout;
    this.$v = view;
    this.$b = base;
    this.$n = length;
    this.$n0 = length;
    this.$w = [];
    this.$mk = undefined;
    this.#stride = layout.byteLength;
    this.#readOnly = readOnly;
    this.#codec = layout.codec;
  }

  /** @internal window `j` of the rows, made on first use */
  $window(j: number): DataView {
    const view = this.$mk!(j);
    this.$w[j] = view;
    return view;
  }

  /** @internal get(i) or read(i) off the generated fast path: validates, makes the window, reaches rows past 2^32. */
  $far(index: number, copy: boolean): unknown {
    if (!Number.isInteger(index) || index < 0 || index >= this.$n) throwOutOfBounds(index, this.$n);
    if (copy) return this.#codec.read(...this.#locate(index));
    const Accessor = this.#readOnly ? this.#codec.ReadOnlyAccessor : this.#codec.Accessor;
    return new Accessor(...this.#locate(index));
  }

  /** The view holding row `index` and the row's byte offset in it. */
  #locate(index: number): [DataView, number] {
    if (index < this.$n0) return [this.$v, this.$b + index * this.#stride];
    const R = rowsPerWindow(this.#stride);
    const j = Math.floor(index / R);
    return [this.$w[j] ?? this.$window(j), (index - j * R) * this.#stride];
  }

  /** Calls `each(view, offset, first, count)` for runs of rows [from, to) that share a view. */
  #runs(from: number, to: number, each: (view: DataView, offset: number, first: number, count: number) => void): void {
    const R = rowsPerWindow(this.#stride);
    for (let i = from; i < to; ) {
      const [view, offset] = this.#locate(i);
      const end = i < this.$n0 ? Math.min(to, this.$n0) : Math.min(to, (Math.floor(i / R) + 1) * R);
      each(view, offset, i, end - i);
      i = end;
    }
  }

  /** Rows in the array. */
  get length(): number {
    return this.$n;
  }

  /** True when writes are refused. */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** A live accessor of row `index`: its properties read and write the row's bytes. */
  get(index: number): RowAccessor<S> {
    if (!Number.isInteger(index) || index < 0 || index >= this.$n) throw outOfBounds(index, this.$n);
    const Accessor = this.#readOnly ? this.#codec.ReadOnlyAccessor : this.#codec.Accessor;
    return new Accessor(...this.#locate(index)) as unknown as RowAccessor<S>;
  }

  /** Row `index` copied into a plain object. */
  read(index: number): Row<S> {
    if (!Number.isInteger(index) || index < 0 || index >= this.$n) throw outOfBounds(index, this.$n);
    return this.#codec.read(...this.#locate(index)) as Row<S>;
  }

  /**
   * Stores a plain object (or another row's accessor) as row `index`. Every
   * field is validated before any byte is written; properties that are not
   * fields are ignored.
   */
  write(index: number, row: RowInput<S>): void {
    if (this.#readOnly) throw readOnlyError();
    if (!Number.isInteger(index) || index < 0 || index >= this.$n) throw outOfBounds(index, this.$n);
    this.#codec.check(row, "");
    this.#codec.store(...this.#locate(index), row);
  }

  /**
   * Iterates over the rows with ONE accessor that moves from row to row: the
   * value yielded is only valid until the next step. Keep `read(i)` copies
   * (or `get(i)` accessors) of rows you want to hold on to.
   */
  [Symbol.iterator](): Iterator<RowAccessor<S>> {
    // The generated subclass has a specialised copy of this (and of get and read).
    const Accessor = this.#readOnly ? this.#codec.ReadOnlyAccessor : this.#codec.Accessor;
    const cursor = new Accessor(this.$v, this.$b - this.#stride);
    const result = { value: cursor as unknown as RowAccessor<S>, done: false };
    let i = -1;
    return {
      next: () => {
        if (++i >= this.$n) {
          result.done = true;
          return result;
        }
        [cursor.$v, cursor.$o] = this.#locate(i);
        return result;
      },
    };
  }

  /**
   * One field of rows `[start, end)` copied into a typed array (a string
   * array for utf8 fields): the efficient way to scan one field. `name` may
   * be a dotted path into nested structs (`"pos.x"`). Pass `into` (a typed
   * array of the field's type, at least `end - start` long) to reuse memory
   * instead of allocating: a fresh array of millions of elements costs more
   * in page faults than the copy itself.
   */
  column<K extends ScalarKeys<S>>(name: K, options?: ColumnOptions<ColumnOf<S[K]>>): ColumnOf<S[K]>;
  column(name: string, options?: ColumnOptions<Column>): Column;
  column(name: string, options: ColumnOptions<Column> = {}): Column {
    if (typeof options !== "object" || options === null) throw invalidArg("column() options must be an object");
    const from = options.start === undefined ? 0 : checkInteger("start", options.start);
    const to = options.end === undefined ? this.$n : checkInteger("end", options.end);
    if (from > to || to > this.$n) throw new MmapError("ERR_OUT_OF_RANGE", `rows [${from}, ${to}) are not within [0, ${this.$n})`);
    const field = this.layout.field(name);
    const count = to - from;
    if (typeof field.type === "string") {
      const Type = SCALARS[field.type].column;
      const into = options.into;
      let out: Column;
      if (into === undefined) out = new Type(count);
      else if (!(into instanceof Type) || into.length < count)
        throw invalidArg(`column("${name}") into: expected a ${Type.name} of at least ${count} elements`);
      else out = into.length === count ? into : (into as Exclude<Column, string[]>).subarray(0, count);
      const read = columnReader(field.type);
      this.#runs(from, to, (view, offset, first, n) =>
        read(view, offset + field.offset, this.#stride, first === from ? out : (out as Exclude<Column, string[]>).subarray(first - from), n));
      return out;
    }
    if (field.type.kind === "utf8") {
      const codec = codecOf(field.type);
      const out = Array.isArray(options.into) ? options.into : new Array<string>(count);
      this.#runs(from, to, (view, offset, first, n) => {
        for (let i = 0; i < n; i++) out[first - from + i] = codec.read(view, offset + field.offset + i * this.#stride) as string;
      });
      return out;
    }
    throw invalidArg(`column() reads scalar and utf8 fields; "${name}" is a ${field.type.kind}`);
  }

  /**
   * Binary search over a numeric or bigint field of rows sorted by it
   * (ascending): the first index whose value is not less than `value`
   * (`length` when every value is less). On unsorted rows the answer is
   * some index in `[0, length]`.
   */
  bisect<K extends OrderedKeys<S>>(field: K, value: number | bigint): number;
  bisect(field: string, value: number | bigint): number;
  bisect(name: string, value: number | bigint): number {
    const field = this.layout.field(name);
    if (typeof field.type !== "string" || field.type === "bool")
      throw invalidArg(`bisect() searches a numeric or bigint field; "${name}" is not one`);
    if (typeof value === "number" ? Number.isNaN(value) : typeof value !== "bigint")
      throw invalidArg(`bisect() needs a number or bigint to look for, got ${typeof value === "number" ? "NaN" : typeof value}`);
    const search = bisector(field.type);
    if (this.$n0 === this.$n) return search(this.$v, this.$b + field.offset, this.#stride, 0, this.$n, value);
    // Across windows: find the window whose last row is not less than value, then search inside it.
    const R = rowsPerWindow(this.#stride);
    let lo = 0;
    let hi = Math.ceil(this.$n / R); // windows
    const lastOf = (j: number) => Math.min(this.$n, (j + 1) * R) - 1;
    const less = (i: number) => {
      const [view, offset] = this.#locate(i);
      return search(view, offset + field.offset, this.#stride, 0, 1, value) === 1;
    };
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (less(lastOf(mid))) lo = mid + 1;
      else hi = mid;
    }
    if (lo * R >= this.$n) return this.$n;
    const first = lo * R;
    const [view, offset] = this.#locate(first);
    return first + search(view, offset + field.offset, this.#stride, 0, lastOf(lo) - first + 1, value);
  }
}

function readOnlyError(): MmapError {
  return new MmapError("EACCES", "the rows are read-only (a mapping with access \"read\"; writes would never reach the file)");
}

/** Builds a StructArray over a source; see Layout.array(). */
export function createStructArray<S extends Schema>(layout: Layout<S>, source: StructSource, options: StructArrayOptions = {}): StructArray<S> {
  validateOptions(options, ["byteOffset", "length", "readOnly"], "array()");
  const byteOffset = options.byteOffset === undefined ? 0 : checkInteger("byteOffset", options.byteOffset);
  if (options.readOnly !== undefined) validateBoolean(options.readOnly, "readOnly");
  const stride = layout.byteLength;
  let sourceLength: number;
  let readOnly = options.readOnly ?? false;
  if (source instanceof MappedFile) {
    sourceLength = source.byteLength;
    if (options.readOnly === undefined) readOnly = source.access === "read";
  } else if (source instanceof ArrayBuffer || (typeof SharedArrayBuffer !== "undefined" && source instanceof SharedArrayBuffer)) {
    sourceLength = source.byteLength;
  } else if (ArrayBuffer.isView(source)) {
    sourceLength = source.byteLength;
  } else {
    throw invalidArg("array() views a MappedFile, an ArrayBuffer, a SharedArrayBuffer or a typed array");
  }
  if (byteOffset > sourceLength)
    throw new MmapError("ERR_OUT_OF_RANGE", `byteOffset ${byteOffset} is beyond the end of the source (${sourceLength} bytes)`);
  const fit = Math.floor((sourceLength - byteOffset) / stride);
  const length = options.length === undefined ? fit : checkInteger("length", options.length);
  if (length > fit)
    throw new MmapError(
      "ERR_OUT_OF_RANGE",
      `${length} rows of ${stride} bytes from byteOffset ${byteOffset} need ${byteOffset + length * stride} bytes; the source has ${sourceLength}`,
    );
  const byteLength = length * stride;
  if (byteLength > MAX_BUFFER_LENGTH)
    throw new MmapError("ERR_TOO_LARGE", `${byteLength} bytes of rows are more than one view can cover (${MAX_BUFFER_LENGTH}); view fewer rows at a time`);
  let view: DataView;
  if (source instanceof MappedFile) {
    view = source.byteLength <= MAX_BUFFER_LENGTH
      ? new DataView(source.buffer, byteOffset, byteLength)
      : new DataView(source.window(byteOffset, byteLength).buffer);
  } else if (ArrayBuffer.isView(source)) {
    view = new DataView(source.buffer, source.byteOffset + byteOffset, byteLength);
  } else {
    view = new DataView(source, byteOffset, byteLength);
  }
  return new (rowsClass(layout, readOnly))(Token, layout, view, 0, length, readOnly) as StructArray<S>;
}

/** @internal a struct array over a whole mapping whose rows start at `base` (record files). */
export function structArrayAt<S extends Schema>(layout: Layout<S>, view: DataView, base: number, length: number, readOnly: boolean): StructArray<S> {
  return new (rowsClass(layout, readOnly))(Token, layout, view, base, length, readOnly) as StructArray<S>;
}
