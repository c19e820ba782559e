/**
 * Page-cache control for whole files, without mapping them: what
 * `vmtouch -e` does. Residency and warming go through a mapping
 * ({@link MappedFile.residency}, {@link MappedFile.advise}); dropping pages
 * needs the file itself (posix_fadvise), which is what lives here.
 */
import * as fs from "node:fs";
import { invalidArg, sys } from "./errors.ts";
import { checkInteger } from "./mapped-file.ts";
import { native } from "./native.ts";

/** Index of POSIX_FADV_DONTNEED in the addon's advice table. */
const FADVISE_DONTNEED = 4;

/** What {@link evictFile} drops. */
export interface EvictOptions {
  /** First byte of the range. Default 0. */
  offset?: number;
  /** Bytes from `offset`. Default: to the end of the file. */
  length?: number;
  /**
   * Write the file's dirty pages to disk first (fdatasync), so they can be
   * dropped too. Default true; with false, pages not yet written stay cached.
   */
  flush?: boolean;
}

/**
 * Drops a file's pages from the page cache (posix_fadvise DONTNEED), so the
 * next read comes from disk. Pages that a process has mapped and in use, or
 * (with `flush: false`) that are dirty, stay.
 *
 * ```ts
 * evictFile("big.bin");
 * mapFile("big.bin").residency().residentPages; // usually 0 now
 * ```
 */
export function evictFile(path: string, options: EvictOptions = {}): void {
  if (typeof path !== "string" || path.length === 0) throw invalidArg("path must be a non-empty string");
  if (typeof options !== "object" || options === null) throw invalidArg("options must be an object");
  const offset = options.offset === undefined ? 0 : checkInteger("offset", options.offset);
  // posix_fadvise's length 0 means "to the end of the file".
  const length = options.length === undefined ? 0 : checkInteger("length", options.length);
  if (options.length === 0) return;
  if (options.flush !== undefined && typeof options.flush !== "boolean")
    throw invalidArg(`flush must be a boolean, got ${typeof options.flush}`);
  const fd = sys(path, () => fs.openSync(path, fs.constants.O_RDONLY));
  try {
    if (options.flush !== false) sys(path, () => fs.fdatasyncSync(fd));
    sys(path, () => native.fadvise(fd, offset, length, FADVISE_DONTNEED));
  } finally {
    fs.closeSync(fd);
  }
}
