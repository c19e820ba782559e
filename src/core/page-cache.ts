/**
 * Page-cache control for whole files, without mapping them: what
 * `vmtouch -e` does. Residency and warming go through a mapping
 * ({@link MappedFile.residency}, {@link MappedFile.advise}); dropping pages
 * needs the file itself (posix_fadvise), which is what lives here.
 */
import * as fs from "node:fs";
import { MmapError, invalidArg, sys } from "./errors.ts";
import { checkInteger, validateBoolean, validateOptions } from "./validate.ts";
import { FADV_DONTNEED, native } from "./native.ts";


/** What {@link evictFile} drops. */
export interface EvictOptions {
  /** First byte of the range. @default 0 */
  offset?: number;
  /** Bytes from `offset`. @default undefined (to the end of the file) */
  length?: number;
  /**
   * Write the file's dirty pages to disk first (fdatasync), so they can be
   * dropped too; with false, pages not yet written stay cached.
   * @default true
   */
  flush?: boolean;
}

/**
 * Drops a file's pages from the page cache (posix_fadvise DONTNEED), so the
 * next read comes from disk. Pages that a process has mapped and in use, or
 * (with `flush: false`) that are dirty, stay. Takes a path (a symbolic link
 * is followed) or an open descriptor; only regular files are accepted (a
 * FIFO, socket or device is an ENODEV at once, never a wait in open()).
 *
 * ```ts
 * evictFile("big.bin");
 * mapFile("big.bin").residency().residentPages; // usually 0 now
 * ```
 */
export function evictFile(pathOrFd: string | number, options: EvictOptions = {}): void {
  if (typeof pathOrFd === "number") checkInteger("fd", pathOrFd, 0x7fffffff);
  else if (typeof pathOrFd !== "string" || pathOrFd.length === 0) throw invalidArg("path must be a non-empty string or a file descriptor");
  validateOptions(options, ["offset", "length", "flush"], "evictFile");
  const offset = options.offset === undefined ? 0 : checkInteger("offset", options.offset);
  // posix_fadvise's length 0 means "to the end of the file".
  const length = options.length === undefined ? 0 : checkInteger("length", options.length);
  if (options.length === 0) return;
  if (options.flush !== undefined) validateBoolean(options.flush, "flush");
  const path = typeof pathOrFd === "string" ? pathOrFd : undefined;
  // O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked on the descriptor.
  const fd = path === undefined ? (pathOrFd as number) : sys(path, () => fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK));
  try {
    const st = sys(path, () => fs.fstatSync(fd));
    if (!st.isFile())
      throw new MmapError(st.isDirectory() ? "EISDIR" : "ENODEV", `only regular files can be evicted '${path ?? `fd ${fd}`}'`, { syscall: "fadvise", path });
    if (options.flush !== false) sys(path, () => fs.fdatasyncSync(fd));
    sys(path, () => native.fadvise(fd, offset, length, FADV_DONTNEED));
  } finally {
    if (path !== undefined) fs.closeSync(fd);
  }
}
