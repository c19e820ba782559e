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
import { MmapError, invalidArg, sys } from "../errors.ts";
import { MAX_BUFFER_LENGTH, checkInteger, growFile, mapFile, type MappedFile } from "../mapped-file.ts";
import { native } from "../native.ts";
import { FIXED_HEADER_LENGTH, ROW_COUNT_OFFSET, checkRowCount, decodeHeader, decodeRowCount, encodeHeader, encodeRowCount } from "./record-format.ts";
import { Layout, layoutDifference } from "./struct.ts";
import { rebindStructArray, structArrayAt, type StructArray } from "./struct-array.ts";
import type { RowInput, Schema } from "./types.ts";

/** Options of {@link createRecordFile}. */
export interface CreateRecordFileOptions {
  /** Rows to make room for now; the file grows (doubling) when appends need more. Default 1024. */
  capacity?: number;
  /** Replace an existing file at the path (readers of the old one keep it). Default false: EEXIST. */
  overwrite?: boolean;
  /** Permission bits of the new file. Default 0o600. */
  mode?: number;
}

/** Options of {@link openRecordFile}. */
export interface OpenRecordFileOptions {
  /** "read" (default): index the rows, see appends; "write": append and change rows. */
  access?: "read" | "write";
}

const DEFAULT_CAPACITY = 1024;
const FLOCK_UNLOCK = 0;
const FLOCK_EXCLUSIVE = 2;

const Token = Symbol("RecordFile");

/**
 * An open record file. `rows` indexes the rows; a writer `append()`s.
 *
 * A reader sees rows appended by a writer in another process: `length`,
 * `rows` and `refresh()` load the published row count (and map the rest of
 * the file when it grew), and every row below that count is complete.
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
    this.#count = new BigInt64Array(map.buffer, ROW_COUNT_OFFSET, 1);
    this.#view = new DataView(map.buffer);
    this.#rows = structArrayAt(layout, this.#view, headerLength, length, this.access === "read");
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
    codec.store(this.#view, this.headerLength + index * this.#rowSize, row);
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
        codec.store(this.#view, this.headerLength + n * this.#rowSize, row);
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
      const needed = this.headerLength + rows * this.#rowSize;
      if (needed > MAX_BUFFER_LENGTH)
        throw new MmapError("ERR_TOO_LARGE", `${rows} rows need ${needed} bytes; one mapping of a record file covers at most ${MAX_BUFFER_LENGTH}`, { path: this.path });
      this.#remap(Math.min(fileSize, MAX_BUFFER_LENGTH));
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
    if (this.access === "write") native.flock(this.#fd, FLOCK_UNLOCK);
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
    rebindStructArray(this.#rows, this.#view, length);
  }

  /** Grows file and mapping to hold at least `minimum` rows (doubling unless `exact`). */
  #grow(minimum: number, exact = false): void {
    const maxRows = Math.floor((MAX_BUFFER_LENGTH - this.headerLength) / this.#rowSize);
    if (minimum > maxRows)
      throw new MmapError(
        "ERR_FULL",
        `the record file cannot hold more than ${maxRows} rows of ${this.#rowSize} bytes (one mapping covers at most ${MAX_BUFFER_LENGTH} bytes)`,
        { path: this.path },
      );
    const capacity = exact ? minimum : Math.min(maxRows, Math.max(minimum, this.#capacity * 2, 16));
    this.#remap(this.headerLength + capacity * this.#rowSize);
  }

  #remap(byteLength: number): void {
    this.#map.resize(byteLength);
    this.#capacity = Math.floor((byteLength - this.headerLength) / this.#rowSize);
    this.#count = new BigInt64Array(this.#map.buffer, ROW_COUNT_OFFSET, 1);
    this.#view = new DataView(this.#map.buffer);
    rebindStructArray(this.#rows, this.#view, this.#length);
  }
}

function checkPath(filePath: unknown): string {
  if (typeof filePath !== "string" || filePath.length === 0) throw invalidArg("path must be a non-empty string");
  return filePath;
}

/** Takes the writer's lock (flock, exclusive, non-blocking) or fails with ERR_BUSY. */
function lockForWriting(fd: number, filePath: string): void {
  if (!sys(filePath, () => native.flock(fd, FLOCK_EXCLUSIVE)))
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
    if (native.flock(fd, FLOCK_EXCLUSIVE)) return fd;
  } catch {
    return fd; // not lockable: not a record file anyone writes
  }
  fs.closeSync(fd);
  throw new MmapError("ERR_BUSY", `another process (or another RecordFile) has '${filePath}' open for writing: overwriting it would lose its appends`, { path: filePath });
}

/**
 * Creates a record file for rows of `layout`, with room for `capacity` rows,
 * and opens it for appending. The file appears complete or not at all (it
 * is written under a temporary name first). Fails with EEXIST if the path
 * exists, unless `overwrite`.
 */
export function createRecordFile<S extends Schema>(filePath: string, layout: Layout<S>, options: CreateRecordFileOptions = {}): RecordFile<S> {
  checkPath(filePath);
  if (!(layout instanceof Layout)) throw invalidArg("createRecordFile() needs a layout made by struct()");
  if (typeof options !== "object" || options === null) throw invalidArg("options must be an object");
  for (const key of Object.keys(options))
    if (key !== "capacity" && key !== "overwrite" && key !== "mode")
      throw invalidArg(`unknown option "${key}" (expected one of: capacity, overwrite, mode)`);
  const capacity = options.capacity === undefined ? DEFAULT_CAPACITY : checkInteger("capacity", options.capacity);
  const mode = options.mode === undefined ? 0o600 : checkInteger("mode", options.mode, 0o7777);
  if (options.overwrite !== undefined && typeof options.overwrite !== "boolean") throw invalidArg("overwrite must be a boolean");
  const header = encodeHeader(layout);
  const size = header.length + capacity * layout.byteLength;
  if (size > MAX_BUFFER_LENGTH)
    throw new MmapError("ERR_TOO_LARGE", `${capacity} rows of ${layout.byteLength} bytes need ${size} bytes; a record file holds at most ${MAX_BUFFER_LENGTH}`);

  const tmp = path.join(path.dirname(filePath), `.${path.basename(filePath)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = sys(tmp, () => fs.openSync(tmp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, mode));
  let linked = false;
  try {
    lockForWriting(fd, tmp); // the lock belongs to the file, whatever its name, from the moment it appears
    sys(tmp, () => fs.writeSync(fd, header, 0, header.length, 0));
    growFile(fd, header.length, size, false, tmp);
    if (options.overwrite === true) {
      // A writer of the file being replaced would go on appending to an unlinked file, unseen: refuse,
      // and hold its lock through the rename so that no writer opens it meanwhile.
      const replaced = lockReplaced(filePath);
      try {
        sys(filePath, () => fs.renameSync(tmp, filePath));
      } finally {
        if (replaced !== undefined) fs.closeSync(replaced);
      }
    } else {
      try {
        fs.linkSync(tmp, filePath); // fails with EEXIST when the path is taken: never clobbers
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        if (e.code === "EEXIST")
          throw new MmapError("EEXIST", `the file already exists '${filePath}' (pass { overwrite: true } to replace it)`, { syscall: "link", path: filePath, errno: 17 });
        throw sys(filePath, () => { throw error; });
      }
      fs.unlinkSync(tmp);
    }
    linked = true;
    const map = mapFile(fd, { access: "write" });
    return new RecordFile(Token, filePath, layout, map, fd, header.length, 0, true);
  } catch (error) {
    if (!linked) fs.rmSync(tmp, { force: true });
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
  options ??= {};
  if (typeof options !== "object" || options === null) throw invalidArg("options must be an object");
  for (const key of Object.keys(options)) if (key !== "access") throw invalidArg(`unknown option "${key}" (expected: access)`);
  const access = options.access ?? "read";
  if (access !== "read" && access !== "write") throw invalidArg(`access must be "read" or "write", got ${JSON.stringify(access)}`);

  // O_NONBLOCK: opening a FIFO must not block; only regular files get past the fstat below.
  const flags = (access === "write" ? fs.constants.O_RDWR : fs.constants.O_RDONLY) | fs.constants.O_NONBLOCK;
  const fd = sys(filePath, () => fs.openSync(filePath, flags));
  let map: MappedFile | undefined;
  try {
    if (access === "write") lockForWriting(fd, filePath);
    const st = sys(filePath, () => fs.fstatSync(fd));
    if (!st.isFile()) throw new MmapError(st.isDirectory() ? "EISDIR" : "ENODEV", "a record file must be a regular file", { path: filePath, syscall: "open" });
    const fileSize = st.size;
    if (fileSize > MAX_BUFFER_LENGTH)
      throw new MmapError("ERR_TOO_LARGE", `the file has ${fileSize} bytes; a record file holds at most ${MAX_BUFFER_LENGTH}`, { path: filePath });
    if (fileSize < FIXED_HEADER_LENGTH) {
      const head = new Uint8Array(fileSize);
      sys(filePath, () => fs.readSync(fd, head, 0, fileSize, 0));
      decodeHeader(head, filePath); // throws: truncated
    }
    map = mapFile(fd, { access, length: fileSize });
    const header = decodeHeader(map.bytes, filePath);
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
