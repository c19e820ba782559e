/**
 * mapFile() and MappedFile: a file (or part of one) mapped into memory and
 * exposed as ArrayBuffers and typed arrays. How the file is opened (options,
 * path forms, the checks for shared directories, growth) is in open-file.ts.
 *
 * Safety rules kept here:
 * - close() detaches every ArrayBuffer handed out (the whole buffer, windows,
 *   buffers of earlier sizes), so stale views have length 0; what Node itself
 *   still holds (thread-pool jobs, queued socket writes, a transfer()ed
 *   buffer) finds private zero memory there, never a hole or another file
 *   (the native layer's reservations, native/mapping.c);
 * - a resize() that fails changes nothing (the file shrinks back, no view is
 *   detached);
 * - "read" mappings are private and writable underneath, so a stray write
 *   (JavaScript has no read-only typed arrays) lands in a private page, never
 *   in the file, and never faults;
 * - a mapping never extends past the end of its file, and space for growth is
 *   allocated up front (growFile), so a full disk is an ENOSPC now rather than
 *   a SIGBUS later; a file truncated by someone else is caught by the native SIGBUS
 *   guard, which replaces the pages from the faulting one to the end with
 *   zeros and makes the mapping `stale`; the pages before it keep the file.
 */
import * as fs from "node:fs";
import { MmapError, invalidArg, sys, toMmapError } from "./errors.ts";
import { Access as AccessCodes, Advice as AdviceCodes, native, type MappingHandle } from "./native.ts";
import {
  ADVICE,
  checkMapOptions,
  checkMappable,
  growFile,
  openPath,
  optional,
  pathString,
  shrinkBack,
  type Access,
  type Advice,
  type MapOptions,
} from "./open-file.ts";
import { checkInteger, describe, validateOneOf } from "./validate.ts";

export type { Access, Advice, MapOptions };
// The layers above import these from here, with mapFile(): one entry to the core's file helpers.

/** Which pages of a range are in memory, from {@link MappedFile.residency}. */
export interface Residency {
  residentPages: number;
  totalPages: number;
  pageSize: number;
  /** One byte per page: 1 when the page is in memory. */
  pages: Uint8Array;
}

/** Bytes in one page of memory on this machine. */
export const pageSize: number = native.pageSize();

/** residency() answers with one byte per page in one Uint8Array: fewer than 2^32 pages. */
const MAX_RESIDENCY_PAGES = 2 ** 32 - 1;

// libuv installs its own SIGBUS handler while the program listens for the
// signal (process.on("SIGBUS")) and resets SIGBUS to its default action when
// the last listener goes: either would disable the guard. Node starts and stops
// its signal watcher in its own newListener/removeListener hooks, registered at
// startup, so they have run when these do; the guard goes back on top and passes
// the signals that are not about a mapping on to libuv's handler (the listener).
function reassertGuard(event: string | symbol): void {
  if (event === "SIGBUS") native.guardReassert();
}
process.on("newListener", reassertGuard);
process.on("removeListener", reassertGuard);

/** The most bytes one ArrayBuffer or typed array can cover here (2^32 on Node 20). */
export const MAX_BUFFER_LENGTH: number = Math.min(2 ** 32, 2 ** 53 - 1);

/** Typed array constructors that view() accepts. */
export type TypedArrayConstructor<T> = {
  new (buffer: ArrayBuffer, byteOffset?: number, length?: number): T;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
};

/**
 * Closes a mapping's descriptor with whichever owns it: one opened by path
 * with fs (Node closes those of a worker that ends), or mapFile(fd)'s
 * native dup (adopted: the addon closes those of an environment that ends).
 */
function closeDescriptor(fd: number, path: string | undefined): void {
  if (path === undefined) native.closeFd(fd);
  else fs.closeSync(fd);
}

// Closes descriptors of MappedFiles that were garbage-collected without close().
const fdReaper = new FinalizationRegistry<readonly [number, string | undefined]>(([fd, path]) => {
  try {
    closeDescriptor(fd, path);
  } catch {
    /* already closed */
  }
});

/**
 * Maps a file, or an open file descriptor, into memory.
 *
 * ```ts
 * using m = mapFile("data.bin");           // read-only, whole file
 * const f = m.view(Float64Array);           // zero-copy typed view
 * ```
 *
 * Safety: the mapping reflects the file. If another process truncates the
 * file, a touched page past the new end and the pages after it are replaced
 * by zeros and `stale` becomes true; the pages before it still reflect the file.
 *
 * @throws {@link MmapError} `ERR_INVALID_ARG` for a bad option (before any
 * system call); `ERR_OUT_OF_RANGE` when `offset`/`length` fall outside the
 * file; `ERR_INSECURE` for a file with other hard links opened for writing (see
 * {@link MapOptions.allowHardLinks}); `ERR_UNSUPPORTED` for a file that
 * reports size 0 but is not empty (/proc); `EISDIR`/`ENODEV` for a directory
 * or a device; `ELOOP` for a symbolic link opened for writing (see
 * {@link MapOptions.followSymlinks}); and the errno of a failed system call
 * (`ENOENT`, `EACCES`, `ENOSPC`, `ENOMEM`, …), with `syscall` and `path`.
 */
export function mapFile(pathOrFd: string | URL | Buffer | number, options?: MapOptions): MappedFile {
  const o = checkMapOptions(options);
  let path: string | undefined;
  let fd: number;
  let created = false;
  let ownsFd = true;
  if (typeof pathOrFd !== "number") pathOrFd = pathString(pathOrFd);
  if (typeof pathOrFd === "string") {
    if (pathOrFd.length === 0) throw invalidArg("path must not be empty");
    path = pathOrFd;
    const opened = openPath(pathOrFd, o);
    fd = opened.fd;
    created = opened.created;
  } else if (typeof pathOrFd === "number") {
    checkInteger("fd", pathOrFd, 0x7fffffff);
    fd = sys(undefined, () => native.dup(pathOrFd));
    // Node closes the descriptors a worker opened with fs when the worker ends, not this native
    // dup (nor its locks): this thread's environment owns it and closes it then (see closeDescriptor).
    native.adoptFd(fd);
  } else {
    throw invalidArg(`expected a path or a file descriptor, got ${describe(pathOrFd)}`);
  }

  let originalSize = 0;
  let handle: MappingHandle | undefined;
  try {
    const st = sys(path, () => fs.fstatSync(fd));
    checkMappable(fd, st, created, path ?? `fd ${String(pathOrFd)}`, path);
    originalSize = st.size;
    let fileSize = st.size;
    if (o.size !== undefined && o.size > fileSize) {
      growFile(fd, fileSize, o.size, o.sparse, path);
      fileSize = o.size;
    }
    if (o.offset > fileSize)
      throw new MmapError("ERR_OUT_OF_RANGE", `offset ${o.offset} is beyond the end of the file (${fileSize} bytes)`, { path });
    const length = o.length ?? fileSize - o.offset;
    if (o.offset + length > fileSize)
      throw new MmapError(
        "ERR_OUT_OF_RANGE",
        `offset ${o.offset} + length ${length} is beyond the end of the file (${fileSize} bytes); use size to grow it`,
        { path },
      );
    const h = sys(path, () => native.map(fd, o.offset, length, AccessCodes[o.access], o.populate));
    handle = h;
    if (o.advice !== "normal" && length > 0) sys(path, () => native.advise(h, 0, length, AdviceCodes[o.advice]));
    // A read-only mapping of a named file needs no descriptor: resize() reopens the path.
    if (path !== undefined && o.access !== "write") {
      closeDescriptor(fd, path);
      ownsFd = false;
    }
    return new MappedFile(Token, h, ownsFd ? fd : -1, path, o.access, o.offset, length, o.sparse, st);
  } catch (error) {
    if (handle !== undefined) native.unmap(handle);
    if (created && path !== undefined) fs.rmSync(path, { force: true });
    else if (o.size !== undefined && o.access === "write") shrinkBack(fd, originalSize, true);
    if (ownsFd) closeDescriptor(fd, path);
    throw error;
  }
}

const Token = Symbol("MappedFile");

/**
 * A mapped file (or part of one); made by {@link mapFile}. Its memory is
 * exposed as ArrayBuffers and typed arrays with no copy; {@link MappedFile.close}
 * unmaps it and detaches every one of them.
 */
export class MappedFile {
  #handle: MappingHandle;
  #fd: number;
  #length: number;
  #buffer: ArrayBuffer | undefined;
  #bytes: Uint8Array | undefined;
  #closed = false;
  #sparse: boolean;
  /** Every ArrayBuffer handed out, to detach on close or resize. */
  #handedOut: WeakRef<ArrayBuffer>[] = [];
  #pruneAt = 64;
  /** flushAsync()/populateAsync() calls still running: the native layer refuses to move the memory meanwhile. */
  #pendingJobs = 0;
  /** Device and inode of the mapped file, to refuse a resize() through a path that now names another file. */
  readonly #dev: number;
  readonly #ino: number;

  /** The mapped file's path; undefined when mapped from a descriptor. */
  readonly path: string | undefined;
  readonly access: Access;
  /** The file offset of byte 0 of the mapping. */
  readonly offset: number;

  /** @internal use mapFile() */
  constructor(
    token: symbol,
    handle: MappingHandle,
    fd: number,
    path: string | undefined,
    access: Access,
    offset: number,
    length: number,
    sparse: boolean,
    identity: { dev: number; ino: number },
  ) {
    if (token !== Token) throw new TypeError("use mapFile() to create a MappedFile");
    this.#handle = handle;
    this.#fd = fd;
    this.path = path;
    this.access = access;
    this.offset = offset;
    this.#length = length;
    this.#sparse = sparse;
    this.#dev = identity.dev;
    this.#ino = identity.ino;
    if (fd >= 0) fdReaper.register(this, [fd, path], this);
  }

  /** Bytes mapped. */
  get byteLength(): number {
    return this.#length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** True once the file shrank under the mapping; the lost pages now read as zeros. */
  get stale(): boolean {
    return !this.#closed && native.stale(this.#handle);
  }

  /** The whole mapping as one ArrayBuffer. Mappings over 4 GiB: use window(). */
  get buffer(): ArrayBuffer {
    if (this.#closed) throw new MmapError("ERR_CLOSED", "the mapping is closed", { path: this.path });
    if (this.#buffer === undefined) {
      if (this.#length > MAX_BUFFER_LENGTH)
        throw new MmapError(
          "ERR_TOO_LARGE",
          `the mapping is ${this.#length} bytes; one ArrayBuffer holds at most ${MAX_BUFFER_LENGTH}: use window(byteOffset, byteLength)`,
          { path: this.path },
        );
      this.#buffer = this.#handOut(0, this.#length);
    }
    return this.#buffer;
  }

  /** The whole mapping as a Uint8Array. */
  get bytes(): Uint8Array {
    return (this.#bytes ??= new Uint8Array(this.buffer));
  }

  /**
   * A typed view of `length` elements (default: as many as fit) from
   * `byteOffset`, which must be a multiple of the element size.
   */
  view<T>(Type: TypedArrayConstructor<T>, byteOffset = 0, length?: number): T {
    this.#check();
    const size = Type.BYTES_PER_ELEMENT;
    if (typeof size !== "number") throw invalidArg("view() expects a typed array constructor");
    checkInteger("byteOffset", byteOffset);
    if (byteOffset % size !== 0)
      throw new MmapError("ERR_MISALIGNED", `byteOffset ${byteOffset} is not a multiple of ${Type.name}.BYTES_PER_ELEMENT (${size})`, { path: this.path });
    if (byteOffset > this.#length)
      throw new MmapError("ERR_OUT_OF_RANGE", `byteOffset ${byteOffset} is beyond the mapping (${this.#length} bytes)`, { path: this.path });
    const count = length === undefined ? Math.floor((this.#length - byteOffset) / size) : checkInteger("length", length);
    if (byteOffset + count * size > this.#length)
      throw new MmapError("ERR_OUT_OF_RANGE", `${count} elements of ${size} bytes from ${byteOffset} exceed the mapping (${this.#length} bytes)`, { path: this.path });
    if (this.#length <= MAX_BUFFER_LENGTH) return new Type(this.buffer, byteOffset, count);
    if (count * size > MAX_BUFFER_LENGTH)
      throw new MmapError(
        "ERR_TOO_LARGE",
        `a view of ${count * size} bytes exceeds the ${MAX_BUFFER_LENGTH} bytes one ArrayBuffer holds: pass a length, or use window(byteOffset, byteLength)`,
        { path: this.path },
      );
    return new Type(this.#window(byteOffset, count * size), 0, count);
  }

  /**
   * A Uint8Array over [byteOffset, byteOffset + byteLength) of the mapping,
   * with no copy; the way to reach every byte of a mapping over 4 GiB.
   * Detached, like every view, by close() and resize().
   */
  window(byteOffset: number, byteLength: number): Uint8Array {
    this.#check();
    return new Uint8Array(this.#window(byteOffset, byteLength));
  }

  #window(byteOffset: number, byteLength: number): ArrayBuffer {
    checkInteger("byteOffset", byteOffset);
    checkInteger("byteLength", byteLength, MAX_BUFFER_LENGTH);
    if (byteOffset > this.#length || byteLength > this.#length - byteOffset)
      throw new MmapError("ERR_OUT_OF_RANGE", `window [${byteOffset}, ${byteOffset + byteLength}) is outside the mapping (${this.#length} bytes)`, { path: this.path });
    return this.#handOut(byteOffset, byteLength);
  }

  /** Writes dirty pages of the range to the file and waits (msync). */
  flush(byteOffset = 0, byteLength?: number): void {
    this.#check();
    const [off, len] = this.#range(byteOffset, byteLength);
    sys(this.path, () => native.sync(this.#handle, off, len));
  }

  /** flush() on the thread pool; the event loop keeps running. */
  flushAsync(byteOffset = 0, byteLength?: number): Promise<void> {
    return this.#onThreadPool(native.syncAsync, byteOffset, byteLength);
  }

  /**
   * Pre-faults the range on the thread pool, so that touching it later takes
   * no page fault: a "write" mapping is faulted writable (MADV_POPULATE_WRITE),
   * others readable. The pages are the page cache's own; nothing is copied.
   * Use it ahead of where a writer is about to go (the log does, ahead of its
   * tail). A hint: what cannot be faulted (past the end of a truncated file)
   * rejects, and is left to fault on touch.
   */
  populateAsync(byteOffset = 0, byteLength?: number): Promise<void> {
    return this.#onThreadPool(native.populateAsync, byteOffset, byteLength);
  }

  async #onThreadPool(job: typeof native.syncAsync, byteOffset: number, byteLength: number | undefined): Promise<void> {
    this.#check();
    const [off, len] = this.#range(byteOffset, byteLength);
    this.#pendingJobs++;
    try {
      await job(this.#handle, off, len);
    } catch (error) {
      throw toMmapError(error, this.path);
    } finally {
      this.#pendingJobs--;
    }
  }

  /** Tells the kernel how the range will be used (madvise). */
  advise(advice: Advice, byteOffset = 0, byteLength?: number): void {
    this.#check();
    const a = optional(advice, "normal", (v) => validateOneOf(v, "advice", ADVICE));
    const [off, len] = this.#range(byteOffset, byteLength);
    sys(this.path, () => native.advise(this.#handle, off, len, AdviceCodes[a]));
  }

  /** Keeps the range's pages in RAM (mlock); limited by RLIMIT_MEMLOCK unless root. */
  lock(byteOffset = 0, byteLength?: number): void {
    this.#check();
    const [off, len] = this.#range(byteOffset, byteLength);
    sys(this.path, () => native.lock(this.#handle, off, len, true));
  }

  /** Releases pages locked by lock(); they may be evicted again. */
  unlock(byteOffset = 0, byteLength?: number): void {
    this.#check();
    const [off, len] = this.#range(byteOffset, byteLength);
    sys(this.path, () => native.lock(this.#handle, off, len, false));
  }

  /** Which pages of the range are in memory now (mincore). */
  residency(byteOffset = 0, byteLength?: number): Residency {
    this.#check();
    const [off, len] = this.#range(byteOffset, byteLength);
    const pageCount = Math.ceil((((this.offset + off) % pageSize) + len) / pageSize);
    if (pageCount > MAX_RESIDENCY_PAGES)
      throw new MmapError("ERR_TOO_LARGE", `residency() of ${pageCount} pages: at most ${MAX_RESIDENCY_PAGES} at a time; pass a byteOffset and byteLength`, { path: this.path });
    const pages = sys(this.path, () => native.residency(this.#handle, off, len));
    let resident = 0;
    for (let i = 0; i < pages.length; i++) resident += pages[i]!;
    return { residentPages: resident, totalPages: pages.length, pageSize, pages };
  }

  /**
   * Changes the mapping's length. With access "write" the file grows to
   * cover it (allocated unless the mapping was made sparse), and shrinks with
   * it when the mapping reached the end of the file. "read" and "copy"
   * mappings can only cover what the file holds. Every earlier ArrayBuffer
   * and view is detached; take new ones from the mapping.
   */
  resize(newLength: number): void {
    this.#check();
    checkInteger("newLength", newLength);
    // Checked before anything changes: failing later would leave views detached and the file grown.
    if (this.#pendingJobs > 0)
      throw new MmapError("ERR_BUSY", "cannot resize while a flushAsync() or populateAsync() is running: await it first", { path: this.path });
    const end = this.offset + newLength;
    let fd = this.#fd;
    const reopened = fd < 0;
    if (reopened) fd = sys(this.path, () => fs.openSync(this.path!, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK));
    try {
      const st = sys(this.path, () => fs.fstatSync(fd));
      if (st.dev !== this.#dev || st.ino !== this.#ino)
        throw new MmapError("ERR_STALE", `'${this.path}' names another file than the one mapped (it was replaced): map it again`, { path: this.path });
      const fileSize = st.size;
      if (this.access === "write") {
        if (end > fileSize) growFile(fd, fileSize, end, this.#sparse, this.path);
      } else if (end > fileSize) {
        throw new MmapError("ERR_OUT_OF_RANGE", `cannot map ${newLength} bytes from offset ${this.offset}: the file has ${fileSize} bytes`, { path: this.path });
      }
      try {
        if (this.#length > 0 && newLength > 0) {
          sys(this.path, () => native.remap(this.#handle, fd, newLength));
        } else {
          const handle = sys(this.path, () => native.map(fd, this.offset, newLength, AccessCodes[this.access], false));
          native.unmap(this.#handle);
          this.#handle = handle;
        }
      } catch (error) {
        // A failed resize changes nothing: the file shrinks back and no view was detached.
        if (this.access === "write" && end > fileSize) shrinkBack(fd, fileSize);
        throw error;
      }
      // Old views may cover released or moved memory (a reservation now): detach them.
      this.#detachAll();
      const shrinkFile = this.access === "write" && end < fileSize && this.offset + this.#length >= fileSize;
      this.#length = newLength;
      if (shrinkFile) sys(this.path, () => fs.ftruncateSync(fd, end));
    } finally {
      if (reopened) fs.closeSync(fd);
    }
  }

  /** Unmaps now; every ArrayBuffer and view of the mapping becomes length 0. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#detachAll();
    native.unmap(this.#handle);
    if (this.#fd >= 0) {
      fdReaper.unregister(this);
      closeDescriptor(this.#fd, this.path);
      this.#fd = -1;
    }
  }

  /** close(), for `using m = mapFile(…)`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #check(): void {
    if (this.#closed) throw new MmapError("ERR_CLOSED", "the mapping is closed", { path: this.path });
    if (native.stale(this.#handle))
      throw new MmapError("ERR_STALE", "the file shrank under the mapping; its pages now read as zeros: map it again", { path: this.path });
  }

  #range(byteOffset: number, byteLength: number | undefined): [number, number] {
    checkInteger("byteOffset", byteOffset);
    if (byteOffset > this.#length)
      throw new MmapError("ERR_OUT_OF_RANGE", `byteOffset ${byteOffset} is beyond the mapping (${this.#length} bytes)`, { path: this.path });
    const len = byteLength === undefined ? this.#length - byteOffset : checkInteger("byteLength", byteLength);
    if (len > this.#length - byteOffset)
      throw new MmapError("ERR_OUT_OF_RANGE", `range [${byteOffset}, ${byteOffset + len}) is outside the mapping (${this.#length} bytes)`, { path: this.path });
    return [byteOffset, len];
  }

  #handOut(byteOffset: number, byteLength: number): ArrayBuffer {
    const ab = native.buffer(this.#handle, byteOffset, byteLength);
    this.#handedOut.push(new WeakRef(ab));
    if (this.#handedOut.length >= this.#pruneAt) {
      this.#handedOut = this.#handedOut.filter((r) => r.deref() !== undefined);
      this.#pruneAt = Math.max(64, this.#handedOut.length * 2);
    }
    return ab;
  }

  #detachAll(): void {
    for (const ref of this.#handedOut) {
      const ab = ref.deref();
      // A buffer V8 will not detach keeps pointing at memory that is never unmapped
      // under it (a reservation after close): safe, and nothing more can be done.
      if (ab !== undefined) native.detach(ab);
    }
    this.#handedOut = [];
    this.#buffer = undefined;
    this.#bytes = undefined;
  }
}
