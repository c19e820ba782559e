/**
 * Opening a file for mapFile(): its options and their checks, the forms a
 * path may take, and the checks that make a shared directory safe to map
 * from. The MappedFile itself (lifetime, views, resize) is in mapped-file.ts.
 *
 * Rules kept here:
 * - writing (access "write", `create`) never follows a symbolic link at the
 *   last component unless asked to (O_NOFOLLOW), and an existing file opened
 *   for writing must have a single hard link: in a shared directory either
 *   could be another user's way to choose what is written;
 * - a file that `create` makes gets exactly `mode` (fchmod: the umask does not
 *   apply), and is made new (O_CREAT|O_EXCL: a planted link is an EEXIST);
 * - only regular files are mapped, and a file that reports size 0 but has
 *   bytes (/proc, /sys) is refused rather than mapped empty;
 * - growth is allocated up front (fallocate), so a full disk is an ENOSPC now
 *   rather than a SIGBUS later; a file in memory is not grown past the memory
 *   available, and a failed growth is undone.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { fileURLToPath } from "node:url";
import { MmapError, invalidArg, sys, toMmapError } from "./errors.ts";
import { native } from "./native.ts";
import { checkMode, describe, validateBoolean, validateInteger, validateOneOf, validateOptions } from "./validate.ts";

/** How a mapping may be used: "read" (private, stray writes never reach the file), "write" (shared with the file and every process), "copy" (private copy-on-write). */
export type Access = "read" | "write" | "copy";
/** Access-pattern hints for the kernel (madvise): read-ahead more, less, or now. */
export type Advice = "normal" | "sequential" | "random" | "willneed";

/** The values of {@link Advice}, for checking one. */
export const ADVICE: readonly Advice[] = ["normal", "sequential", "random", "willneed"];

/** Options of {@link mapFile}; every one is checked, and unknown keys are an error. */
export interface MapOptions {
  /**
   * "read", "write" (shared: writes reach the file and every process), "copy" (private copy-on-write).
   * @default "read"
   */
  access?: Access;
  /**
   * Create the file if it is missing (needs access "write").
   * @default false
   */
  create?: boolean;
  /**
   * Make the file at least this many bytes (grows, never shrinks); the space
   * is allocated. Needs access "write".
   * @default undefined (the file keeps its size)
   */
  size?: number;
  /**
   * With `size`: grow without allocating (a sparse file).
   * @default false
   */
  sparse?: boolean;
  /**
   * Any byte offset into the file.
   * @default 0
   */
  offset?: number;
  /**
   * Bytes to map.
   * @default undefined (from `offset` to the end of the file)
   */
  length?: number;
  /**
   * Pre-fault every page at map time (MAP_POPULATE).
   * @default false
   */
  populate?: boolean;
  /**
   * Access-pattern hint for the kernel (madvise).
   * @default "normal"
   */
  advice?: Advice;
  /**
   * Permission bits (0 to 0o777) of a file that `create` makes, applied
   * exactly (fchmod after creating: the umask does not apply).
   * @default 0o600
   */
  mode?: number;
  /**
   * Follow a symbolic link at the last component of the path when writing
   * (access "write" or `create`). Default false: such a link is refused with
   * ELOOP, so a link planted in a shared directory (/tmp, /dev/shm) cannot
   * choose which file is written. Reading always follows links.
   * @default false
   */
  followSymlinks?: boolean;
  /**
   * Open a file for writing even when it has other hard links (a link count
   * above 1). Default false: ERR_INSECURE, since a hard link in a shared
   * directory can name a file its owner did not mean to share.
   * @default false
   */
  allowHardLinks?: boolean;
}

const OPTION_KEYS = new Set([
  "access", "create", "size", "sparse", "offset", "length", "populate", "advice", "mode",
  "followSymlinks", "allowHardLinks",
]);

/** An optional option: `fallback` when undefined, else checked by `validate`. */
export function optional<T>(value: unknown, fallback: T, validate: (value: unknown) => T): T {
  return value === undefined ? fallback : validate(value);
}

/** mapFile()'s options, checked, with their defaults filled in. */
export interface CheckedMapOptions {
  access: Access;
  create: boolean;
  size: number | undefined;
  sparse: boolean;
  offset: number;
  length: number | undefined;
  populate: boolean;
  advice: Advice;
  mode: number;
  followSymlinks: boolean;
  allowHardLinks: boolean;
}

export function checkMapOptions(given: MapOptions | undefined): CheckedMapOptions {
  const options = validateOptions(given, OPTION_KEYS, "mapFile");
  const access = optional(options.access, "read", (v) => validateOneOf(v, "access", ["read", "write", "copy"] as const));
  const create = optional(options.create, false, (v) => validateBoolean(v, "create"));
  const sparse = optional(options.sparse, false, (v) => validateBoolean(v, "sparse"));
  const populate = optional(options.populate, false, (v) => validateBoolean(v, "populate"));
  const followSymlinks = optional(options.followSymlinks, false, (v) => validateBoolean(v, "followSymlinks"));
  const allowHardLinks = optional(options.allowHardLinks, false, (v) => validateBoolean(v, "allowHardLinks"));
  const advice = optional(options.advice, "normal", (v) => validateOneOf(v, "advice", ADVICE));
  const size = optional(options.size, undefined, (v) => validateInteger(v, "size"));
  const offset = optional(options.offset, 0, (v) => validateInteger(v, "offset"));
  const length = optional(options.length, undefined, (v) => validateInteger(v, "length"));
  const mode = checkMode(options.mode);
  if (create && access !== "write") throw invalidArg(`create needs access "write" (got access "${access}")`);
  if (size !== undefined && access !== "write") throw invalidArg(`size needs access "write" (got access "${access}")`);
  if (sparse && size === undefined) throw invalidArg("sparse only applies together with size");
  return { access, create, size, sparse, offset, length, populate, advice, mode, followSymlinks, allowHardLinks };
}

/**
 * Gives a file the program just created exactly `mode`: open()'s mode is
 * filtered by the umask, and a mode chosen to share a file with another
 * user must not depend on the umask of the process that happened to create it.
 */
export function applyMode(fd: number, mode: number, path: string | undefined): void {
  sys(path, () => fs.fchmodSync(fd, mode));
}

const TMPFS_MAGIC = 0x01021994; // statfs f_type of tmpfs, /dev/shm and memfd files

/** Whether the file behind `fd` lives in memory (tmpfs, memfd): allocating its blocks allocates RAM. */
function inMemory(fd: number): boolean {
  try {
    return fs.statfsSync(`/proc/self/fd/${fd}`).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Grows a file to `size` bytes; allocated unless sparse. Undone on failure.
 * A file in memory (tmpfs, memfd) is not grown by more than the memory
 * available now: the kernel would not fail such an allocation, it would wake
 * the OOM killer, which may pick any process.
 */
export function growFile(fd: number, from: number, size: number, sparse: boolean, path?: string): void {
  if (size <= from) return;
  if (sparse) {
    sys(path, () => fs.ftruncateSync(fd, size));
    return;
  }
  const available = os.freemem();
  if (size - from > available && inMemory(fd))
    throw new MmapError(
      "ENOMEM",
      `cannot allocate ${size - from} bytes for a file in memory${path === undefined ? "" : ` '${path}'`}: ${available} bytes of memory are available`,
      { syscall: "fallocate", path, errno: os.constants.errno.ENOMEM },
    );
  try {
    sys(path, () => native.fallocate(fd, from, size - from));
  } catch (error) {
    shrinkBack(fd, from); // leave no half-grown file behind
    throw error;
  }
}

/**
 * Cuts a file back to `size` on a failure path, quietly: the original error
 * is the one to report. With `ifLarger`, a file that is not larger now is
 * left alone (another process may have changed it meanwhile).
 */
export function shrinkBack(fd: number, size: number, ifLarger = false): void {
  try {
    if (!ifLarger || fs.fstatSync(fd).size > size) fs.ftruncateSync(fd, size);
  } catch {
    /* report the original error */
  }
}

/**
 * A path as fs takes it (string, file: URL, Buffer), as a string. A Buffer
 * must be UTF-8: MappedFile.path is a string, and resize() reopens by it.
 */
export function pathString(p: unknown): string {
  if (typeof p === "string") return p;
  if (p instanceof URL) {
    if (p.protocol !== "file:") throw invalidArg(`expected a file: URL, got a ${p.protocol} URL`);
    try {
      return fileURLToPath(p);
    } catch (error) {
      throw invalidArg(`cannot use the file: URL ${JSON.stringify(p.href)}: ${(error as Error).message}`);
    }
  }
  if (Buffer.isBuffer(p)) {
    const text = p.toString("utf8");
    if (!Buffer.from(text, "utf8").equals(p)) throw invalidArg("a Buffer path must be UTF-8 (pass a string)");
    return text;
  }
  throw invalidArg(`expected a path or a file descriptor (a path is a string, a file: URL or a Buffer), got ${describe(p)}`);
}

/**
 * Refuses what cannot be mapped: a directory (EISDIR), anything but a regular
 * file (ENODEV), and a file that reports size 0 but has bytes (procfs, sysfs
 * and other pseudo-files), whose mapping would silently be empty. `shown`
 * names the file in messages (its path, or "fd N").
 */
export function checkMappable(fd: number, st: fs.Stats, created: boolean, shown: string, path: string | undefined): void {
  if (st.isDirectory())
    throw new MmapError("EISDIR", `cannot map a directory '${shown}'`, { syscall: "mmap", path, errno: os.constants.errno.EISDIR });
  if (!st.isFile())
    throw new MmapError("ENODEV", `only regular files can be mapped '${shown}'`, { syscall: "mmap", path, errno: os.constants.errno.ENODEV });
  if (st.size === 0 && !created) refuseSizeless(fd, shown, path);
}

/** A read of one byte tells a pseudo-file that reports size 0 from a truly empty file. */
function refuseSizeless(fd: number, shown: string, path: string | undefined): void {
  let got = 0;
  try {
    got = fs.readSync(fd, Buffer.alloc(1), 0, 1, 0);
  } catch {
    return; // unreadable here: mapping it will say what is wrong
  }
  if (got > 0)
    throw new MmapError(
      "ERR_UNSUPPORTED",
      `'${shown}' reports size 0 but is not empty (a /proc or /sys file?): its contents cannot be mapped; read it with fs.readFileSync()`,
      { syscall: "mmap", path },
    );
}

/**
 * Opens `p` for mapFile, by the rules at the top of this file. O_NONBLOCK:
 * opening a FIFO would otherwise block forever; on the regular files that can
 * be mapped it changes nothing.
 */
export function openPath(p: string, o: CheckedMapOptions): { fd: number; created: boolean } {
  const writing = o.access === "write";
  const noFollow = writing && !o.followSymlinks ? fs.constants.O_NOFOLLOW : 0;
  const flags = (writing ? fs.constants.O_RDWR : fs.constants.O_RDONLY) | fs.constants.O_NONBLOCK | noFollow;
  const open = (extra: number, mode?: number): number => {
    try {
      return fs.openSync(p, flags | extra, mode);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ELOOP" && noFollow !== 0)
        throw new MmapError(
          "ELOOP",
          `'${p}' is a symbolic link; memmap does not write through one unless asked to (pass followSymlinks: true)`,
          { syscall: "open", path: p, errno: os.constants.errno.ELOOP, cause: error },
        );
      throw toMmapError(error, p);
    }
  };
  if (o.create) {
    try {
      // O_CREAT|O_EXCL never follows a symbolic link: a planted one is an EEXIST here.
      const fd = open(fs.constants.O_CREAT | fs.constants.O_EXCL, o.mode);
      try {
        applyMode(fd, o.mode, p);
      } catch (error) {
        fs.closeSync(fd);
        fs.rmSync(p, { force: true });
        throw error;
      }
      return { fd, created: true };
    } catch (error) {
      if ((error as MmapError).code !== "EEXIST") throw error;
    }
  }
  const fd = open(0);
  if (writing && !o.allowHardLinks) {
    try {
      const st = sys(p, () => fs.fstatSync(fd));
      if (st.isFile() && st.nlink > 1)
        throw new MmapError(
          "ERR_INSECURE",
          `'${p}' has ${st.nlink} hard links; memmap does not write to a file with other names unless asked to (pass allowHardLinks: true)`,
          { syscall: "open", path: p },
        );
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }
  return { fd, created: false };
}
