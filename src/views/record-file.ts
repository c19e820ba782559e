/**
 * Record files: a mapped file of fixed-size rows behind a self-describing
 * header (see record-format.ts). One process appends; any number of
 * processes open the file read-only and index it like an array.
 *
 * ```ts
 * // writer
 * const Tick = struct({ ts: "i64", price: "f64", qty: "u32" });
 * using out = createRecordFile("ticks.rec", Tick, { capacity: 1_000_000 });
 * out.append({ ts: 1n, price: 101.5, qty: 7 });
 *
 * // reader, another process: the layout comes from the header
 * using ticks = openRecordFile("ticks.rec");
 * ticks.rows.get(0).price;           // 101.5, read from the mapped page
 * ```
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MmapError, invalidArg, sys } from "../core/errors.ts";
import { MAX_BUFFER_LENGTH, mapFile, type MappedFile } from "../core/mapped-file.ts";
import { growFile } from "../core/open-file.ts";
import { checkTarget, createTemp, publishTemp, writeAtomically } from "../core/temp-file.ts";
import { native, LockOp } from "../core/native.ts";
import { checkInteger, checkMode, validateBoolean, validateOneOf, validateOptions } from "../core/validate.ts";
import { FIXED_HEADER_LENGTH, MAX_HEADER_LENGTH, ROW_COUNT_OFFSET, checkRowCount, decodeHeader, decodeRowCount, encodeHeader, encodeRowCount, MAX_CHECKED_ROWS } from "./record-format.ts";
import { Layout, layoutDifference } from "./struct.ts";
import { rebindStructArray, rowsPerWindow, structArrayAt, type StructArray } from "./struct-array.ts";
import type { RowInput, Schema } from "./types.ts";

/** Options of {@link createRecordFile}. */
export interface CreateRecordFileOptions {
  /**
   * Rows to make room for now; the file grows (doubling) when appends need more.
   * @default 1024
   */
  capacity?: number;
  /**
   * Replace an existing file at the path (readers of the old one keep it); without it, EEXIST.
   * @default false
   */
  overwrite?: boolean;
  /**
   * Permission bits (0 to 0o777) of the new file, applied exactly (the umask does not apply).
   * @default 0o600
   */
  mode?: number;
}

/** Options of {@link openRecordFile}. */
export interface OpenRecordFileOptions {
  /** "read": index the rows, see appends; "write": append and change rows. @default "read" */
  access?: "read" | "write";
}

const DEFAULT_CAPACITY = 1024;
/** Files with at most this many windows of rows map them all at open (see #rebind). */
const EAGER_WINDOWS = 64;

const Token = Symbol("RecordFile");

/**
 * An open record file. `rows` indexes the rows; a writer `append()`s.
 *
 * A reader sees rows appended by a writer in another process: `length`,
 * `rows` and `refresh()` load the published row count (and map the rest of
 * the file when it grew), and every row below that count is complete.
 *
 * Any size: a file up to 4 GiB is one ArrayBuffer; a larger one is reached
 * through windows of whole rows (1 GiB each, made as rows in them are first
 * used), so a row never straddles two buffers.
 *
 * Safety: when the file grows (a writer's append past capacity, a reader's
 * refresh after the file grew), the mapping moves and accessors taken from
 * `rows` before that are detached: reading them throws a TypeError. The
 * `rows` object itself follows the file; take accessors from it again.
 */
export class RecordFile<S extends Schema = Schema> {
  /** The path the file was opened at. */
  readonly path: string;
  /** The rows' layout (the one given, or the one rebuilt from the header). */
  readonly layout: Layout<S>;
  /** "read": index and follow the rows; "write": also append and change them. */
  readonly access: "read" | "write";
  /** Where row 0 starts in the file. */
  readonly headerLength: number;
  #map: MappedFile;
  #fd: number;
  #count: BigInt64Array;
  #view: DataView;
  #length: number;
  #capacity: number;
  readonly #rows: StructArray<S>;
  readonly #rowSize: number;
  readonly #rowsPerWindow: number;
  /** The count word carries a check (format version 2). */
  readonly #checkedCount: boolean;
  #closed = false;

  /** @internal use createRecordFile() or openRecordFile() */
  constructor(
    token: symbol,
    filePath: string,
    layout: Layout<S>,
    map: MappedFile,
    fd: number,
    headerLength: number,
    length: number,
    checkedCount: boolean,
  ) {
    if (token !== Token) throw new TypeError("use createRecordFile() or openRecordFile()");
    this.path = filePath;
    this.layout = layout;
    this.access = map.access === "write" ? "write" : "read";
    this.headerLength = headerLength;
    this.#map = map;
    this.#fd = fd;
    this.#rowSize = layout.byteLength;
    this.#checkedCount = checkedCount;
    this.#length = length;
    this.#capacity = Math.floor((map.byteLength - headerLength) / this.#rowSize);
    this.#rowsPerWindow = rowsPerWindow(this.#rowSize);
    [this.#view, this.#count] = this.#firstView();
    this.#rows = structArrayAt(layout, this.#view, headerLength, length, this.access === "read");
    this.#rebind();
  }

  /** The view rows start in (the whole file, or its first window past 4 GiB) and the row count word in it. */
  #firstView(): [DataView, BigInt64Array] {
    const map = this.#map;
    const bytes = map.byteLength <= MAX_BUFFER_LENGTH
      ? map.bytes
      : map.window(0, this.headerLength + this.#rowsPerWindow * this.#rowSize);
    return [new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), new BigInt64Array(bytes.buffer, bytes.byteOffset + ROW_COUNT_OFFSET, 1)];
  }

  /** Points `rows` at the current views; past 4 GiB, rows beyond the first window are in windows. */
  #rebind(): void {
    if (this.#map.byteLength <= MAX_BUFFER_LENGTH) {
      rebindStructArray(this.#rows, this.#view, this.#length);
      return;
    }
    const map = this.#map;
    const windowBytes = this.#rowsPerWindow * this.#rowSize;
    const make = (j: number): DataView => {
      if (j === 0) return this.#view;
      const start = this.headerLength + j * windowBytes;
      const bytes = map.window(start, Math.min(windowBytes, map.byteLength - start));
      return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    };
    rebindStructArray(this.#rows, this.#view, this.#length, { rowsInView: this.#rowsPerWindow, make });
    // Up to 64 GiB, make every window now: a window array without holes keeps get(i) on its fast path.
    // Larger files make windows as rows in them are first used, so that opening stays constant-time.
    const windows = Math.ceil((map.byteLength - this.headerLength) / windowBytes);
    if (windows <= EAGER_WINDOWS) for (let j = 0; j < windows; j++) this.#rows.$w[j] = make(j);
  }

  /** Stores row `index` (which may be past `length`, below capacity): in the first view, or in its window past 4 GiB. No allocation per row. */
  #store(index: number, row: RowInput<S>): void {
    const codec = this.layout.codec;
    if (index < this.#rowsPerWindow || this.#map.byteLength <= MAX_BUFFER_LENGTH) {
      codec.store(this.#view, this.headerLength + index * this.#rowSize, row);
      return;
    }
    const j = Math.floor(index / this.#rowsPerWindow);
    codec.store(this.#rows.$w[j] ?? this.#rows.$window(j), (index - j * this.#rowsPerWindow) * this.#rowSize, row);
  }

  /** Rows published so far (a reader loads the current count; see refresh()). */
  get length(): number {
    return this.access === "write" ? this.#length : this.refresh();
  }

  /** Rows the file has room for before it must grow (as far as this process has mapped it). */
  get capacity(): number {
    return this.#capacity;
  }

  /**
   * The rows, as a struct array of the current `length`. The same object is
   * returned every time. A reader's is brought up to date first, and its
   * length then stays fixed until the next `rows`, `length` or `refresh()`,
   * so a loop over it sees a stable set of rows; a writer's grows with each
   * append.
   */
  get rows(): StructArray<S> {
    if (this.access === "read") this.refresh();
    else this.#check();
    return this.#rows;
  }

  /** True after close(). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Appends one row and publishes it (the row count is stored last, with an
   * atomic store). Grows the file when it is full. Returns the row's index.
   * A row that fails validation leaves nothing behind.
   */
  append(row: RowInput<S>): number {
    this.#checkWritable();
    const index = this.#length;
    const codec = this.layout.codec;
    codec.check(row, "");
    if (index === this.#capacity) this.#grow(index + 1);
    this.#store(index, row);
    this.#publish(index + 1);
    return index;
  }

  /**
   * Appends many rows, publishing the count once at the end (cheaper than
   * append() per row; readers see all of them at once). A row that fails
   * validation throws; the rows before it are published. Returns the new length.
   */
  appendMany(rows: Iterable<RowInput<S>>): number {
    this.#checkWritable();
    const codec = this.layout.codec;
    let n = this.#length;
    try {
      for (const row of rows) {
        codec.check(row, "");
        if (n === this.#capacity) this.#grow(n + 1);
        this.#store(n, row);
        n++;
      }
    } finally {
      this.#publish(n);
    }
    return n;
  }

  /**
   * Makes room for `capacity` rows in total now (one grow instead of several).
   */
  reserve(capacity: number): void {
    this.#checkWritable();
    checkInteger("capacity", capacity);
    if (capacity > this.#capacity) this.#grow(capacity, true);
  }

  /**
   * Loads the published row count; when it exceeds what this process has
   * mapped (the file grew), maps the rest. Returns the row count.
   * A count the file cannot hold is an ERR_CORRUPT.
   */
  refresh(): number {
    this.#check();
    if (this.access === "write") return this.#length;
    const count = decodeRowCount(Atomics.load(this.#count, 0), this.#checkedCount, this.path);
    const n = Number(count); // exact below 2^53; anything larger fails the checks below anyway
    if (n > this.#capacity) {
      const fileSize = sys(this.path, () => fs.fstatSync(this.#fd).size);
      const rows = checkRowCount(count, this.headerLength, this.#rowSize, fileSize, this.path);
      this.#remap(fileSize);
      this.#setLength(rows);
    } else {
      this.#setLength(n < 0 ? checkRowCount(count, this.headerLength, this.#rowSize, 0, this.path) : n);
    }
    return this.#length;
  }

  /** Writes dirty pages to the file (msync); appends are visible to other processes without it. */
  flush(): void {
    this.#check();
    this.#map.flush();
  }

  /** flush() on the thread pool. */
  async flushAsync(): Promise<void> {
    this.#check();
    await this.#map.flushAsync();
  }

  /** Unmaps the file (detaching every accessor) and releases the writer's lock. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#map.close();
    if (this.access === "write") native.flock(this.#fd, LockOp.unlock);
    fs.closeSync(this.#fd);
  }

  /** close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.#closed) throw new MmapError("ERR_CLOSED", "the record file is closed", { path: this.path });
    if (this.#map.stale)
      throw new MmapError("ERR_STALE", "the record file shrank under the mapping (someone truncated it)", { path: this.path });
  }

  #checkWritable(): void {
    this.#check();
    if (this.access !== "write")
      throw new MmapError("EACCES", 'the record file is open read-only: open it with { access: "write" } to append', { path: this.path });
  }

  #publish(length: number): void {
    Atomics.store(this.#count, 0, encodeRowCount(length, this.#checkedCount));
    this.#setLength(length);
  }

  #setLength(length: number): void {
    if (length === this.#length) return;
    this.#length = length;
    this.#rows.$n = length;
    this.#rows.$n0 = this.#map.byteLength <= MAX_BUFFER_LENGTH ? length : Math.min(length, this.#rowsPerWindow);
  }

  /** Grows file and mapping to hold at least `minimum` rows (doubling unless `exact`). */
  #grow(minimum: number, exact = false): void {
    const maxRows = Math.min(this.#checkedCount ? MAX_CHECKED_ROWS : Infinity, Math.floor((Number.MAX_SAFE_INTEGER - this.headerLength) / this.#rowSize));
    if (minimum > maxRows)
      throw new MmapError("ERR_FULL", `the record file cannot hold more than ${maxRows} rows of ${this.#rowSize} bytes`, { path: this.path });
    const capacity = exact ? minimum : Math.min(maxRows, Math.max(minimum, this.#capacity * 2, 16));
    this.#remap(this.headerLength + capacity * this.#rowSize);
  }

  #remap(byteLength: number): void {
    this.#map.resize(byteLength);
    this.#capacity = Math.floor((byteLength - this.headerLength) / this.#rowSize);
    [this.#view, this.#count] = this.#firstView();
    this.#rebind();
  }
}

const OVERWRITE_HINT = "pass { overwrite: true } to replace it";

function checkPath(filePath: unknown): string {
  if (typeof filePath !== "string" || filePath.length === 0) throw invalidArg("path must be a non-empty string");
  return filePath;
}

/** Takes the writer's lock (flock, exclusive, non-blocking) or fails with ERR_BUSY. */
function lockForWriting(fd: number, filePath: string): void {
  if (!sys(filePath, () => native.flock(fd, LockOp.exclusive)))
    throw new MmapError("ERR_BUSY", "another process (or another RecordFile) has this record file open for writing", { path: filePath });
}

/** Takes the writer's lock on the file `overwrite` replaces (ERR_BUSY while a writer has it); its descriptor, or undefined when there is no file. */
function lockReplaced(filePath: string): number | undefined {
  let fd: number;
  try {
    fd = fs.openSync(filePath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return undefined; // nothing there (or nothing we may read): the rename decides
  }
  try {
    if (native.flock(fd, LockOp.exclusive)) return fd;
  } catch {
    return fd; // not lockable: not a record file anyone writes
  }
  fs.closeSync(fd);
  throw new MmapError("ERR_BUSY", `another process (or another RecordFile) has '${filePath}' open for writing: overwriting it would lose its appends`, { path: filePath });
}

/**
 * Creates a record file for rows of `layout`, with room for `capacity` rows,
 * and opens it for appending. The file appears complete or not at all (it
 * is written under a temporary name first).
 *
 * @throws {@link MmapError} `ERR_INVALID_ARG` for a bad layout or option;
 * `EEXIST` when the path exists, unless `overwrite`; `ERR_BUSY` when
 * `overwrite` would replace a record file another handle is appending to;
 * `EISDIR`/`ENODEV` for a path that is not a regular file; and the errno of
 * any other failed system call (`ENOSPC`, `EACCES`, …), with `path`.
 */
export function createRecordFile<S extends Schema>(filePath: string, layout: Layout<S>, options: CreateRecordFileOptions = {}): RecordFile<S> {
  checkPath(filePath);
  if (!(layout instanceof Layout)) throw invalidArg("createRecordFile() needs a layout made by struct()");
  validateOptions(options, ["capacity", "overwrite", "mode"], "createRecordFile");
  const capacity = options.capacity === undefined ? DEFAULT_CAPACITY : checkInteger("capacity", options.capacity);
  const mode = checkMode(options.mode);
  if (options.overwrite !== undefined) validateBoolean(options.overwrite, "overwrite");
  const header = encodeHeader(layout);
  const size = header.length + capacity * layout.byteLength;
  if (!Number.isSafeInteger(size)) throw invalidArg(`${capacity} rows of ${layout.byteLength} bytes are more than a file can hold`);

  const fd = writeAtomically(
    filePath,
    mode,
    (fd) => {
      lockForWriting(fd, filePath); // the lock belongs to the file, whatever its name, from the moment it appears
      sys(filePath, () => fs.writeSync(fd, header, 0, header.length, 0));
      growFile(fd, header.length, size, false, filePath);
      // A writer of the file being replaced would go on appending to an unlinked file, unseen: refuse,
      // and hold its lock through the rename so that no writer opens it meanwhile.
      const replaced = options.overwrite === true ? lockReplaced(filePath) : undefined;
      return replaced === undefined ? undefined : () => fs.closeSync(replaced);
    },
    { replace: options.overwrite === true, hint: OVERWRITE_HINT },
  );
  try {
    const map = mapFile(fd, { access: "write" });
    return new RecordFile(Token, filePath, layout, map, fd, header.length, 0, true);
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/**
 * Opens a record file. Without a layout, the layout is rebuilt from the
 * header (fully validated: a damaged header is an ERR_CORRUPT saying what is
 * wrong). With one, it must match the file's, or ERR_SCHEMA_MISMATCH.
 * Access "read" (default) can be used by any number of processes; "write"
 * (appending) by one at a time (ERR_BUSY otherwise).
 */
export function openRecordFile(filePath: string, options?: OpenRecordFileOptions): RecordFile<Schema>;
export function openRecordFile<S extends Schema>(filePath: string, layout: Layout<S>, options?: OpenRecordFileOptions): RecordFile<S>;
export function openRecordFile(filePath: string, layout: undefined, options?: OpenRecordFileOptions): RecordFile<Schema>;
export function openRecordFile(
  filePath: string,
  layoutOrOptions?: Layout | OpenRecordFileOptions | undefined,
  maybeOptions?: OpenRecordFileOptions,
): RecordFile<Schema> {
  checkPath(filePath);
  let expected: Layout | undefined;
  let options: OpenRecordFileOptions | undefined;
  if (layoutOrOptions instanceof Layout || (layoutOrOptions === undefined && maybeOptions !== undefined)) {
    expected = layoutOrOptions;
    options = maybeOptions;
  } else {
    if (maybeOptions !== undefined) throw invalidArg("openRecordFile(path, layout, options): the second argument must be a layout made by struct()");
    options = layoutOrOptions;
  }
  options = validateOptions(options ?? undefined, ["access"], "openRecordFile");
  const access = options.access === undefined ? "read" : validateOneOf(options.access, "access", ["read", "write"] as const);

  // O_NONBLOCK: opening a FIFO must not block; only regular files get past the fstat below.
  const flags = (access === "write" ? fs.constants.O_RDWR : fs.constants.O_RDONLY) | fs.constants.O_NONBLOCK;
  const fd = sys(filePath, () => fs.openSync(filePath, flags));
  let map: MappedFile | undefined;
  try {
    if (access === "write") lockForWriting(fd, filePath);
    const st = sys(filePath, () => fs.fstatSync(fd));
    if (!st.isFile()) throw new MmapError(st.isDirectory() ? "EISDIR" : "ENODEV", "a record file must be a regular file", { path: filePath, syscall: "open" });
    const fileSize = st.size;
    if (fileSize < FIXED_HEADER_LENGTH) {
      const head = new Uint8Array(fileSize);
      sys(filePath, () => fs.readSync(fd, head, 0, fileSize, 0));
      decodeHeader(head, filePath); // throws: truncated
    }
    map = mapFile(fd, { access, length: fileSize });
    const header = decodeHeader(fileSize <= MAX_BUFFER_LENGTH ? map.bytes : map.window(0, MAX_HEADER_LENGTH), filePath, fileSize);
    if (expected !== undefined) {
      const difference = layoutDifference(header.layout, expected);
      if (difference !== undefined)
        throw new MmapError(
          "ERR_SCHEMA_MISMATCH",
          `the file's layout differs from the one given: ${difference} (file: ${header.layout.toString()}; given: ${expected.toString()})`,
          { path: filePath },
        );
    }
    return new RecordFile(Token, filePath, expected ?? header.layout, map, fd, header.headerLength, header.rowCount, header.checkedCount);
  } catch (error) {
    map?.close();
    fs.closeSync(fd);
    throw error;
  }
}
