/**
 * The log's directory: opened once, checked, and then used through its
 * descriptor for every file inside it.
 *
 * Why a descriptor: a log may live in a directory other users can reach
 * (/tmp, /dev/shm, a shared volume). Opening `<dir>/<name>` by path again and
 * again lets anyone who can rename a directory on that path, or plant a
 * symbolic link as `<name>`, choose which file the log opens, creates, locks
 * or writes. So the directory is opened once, its owner and mode are checked
 * on the descriptor (fstat), and every file inside is reached relative to
 * that descriptor with O_NOFOLLOW.
 *
 * Node's fs has no openat(2). `/proc/self/fd/<fd>` is the kernel's "magic
 * link" to the open directory itself (resolved by descriptor, not by name:
 * a rename or a swapped path does not change what it names), so
 * `/proc/self/fd/<fd>/<name>` opened with O_NOFOLLOW is openat(fd, name,
 * O_NOFOLLOW), and the same prefix gives linkat, unlinkat, mkdirat and a
 * directory listing for free. A native openat would need a native variant
 * of each of those calls; /proc is mounted on every Linux system memmap
 * runs on (memmap already reads /proc/self for other checks).
 *
 * The directories open in this process are kept in a table keyed by the
 * path the caller gave, so the rest of the log code keeps passing plain
 * paths (`<dir>/<name>`, which also name files in messages) and calls
 * {@link viaDir} / {@link openInLog} where it touches the file system.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as os from "node:os";
import { MmapError, codeOf, invalidArg } from "../core/errors.ts";
import { mapFile, type MapOptions, type MappedFile } from "../core/mapped-file.ts";
import { checkInteger } from "../core/validate.ts";
import { tempName } from "../core/temp-file.ts";
import { META_FILE_NAME, parseSegmentFileName } from "./layout.ts";

const { O_RDONLY, O_RDWR, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_CREAT, O_EXCL } = fs.constants;

/** Default modes: the log is its owner's alone unless `mode` says otherwise. */
export const DEFAULT_FILE_MODE = 0o600;

interface OpenDir {
  /** The directory's descriptor; undefined if it could not be opened (read-only opens go on without it). */
  fd: number | undefined;
  /** Why `fd` is missing (an errno code, or ERR_INSECURE), for the error of any access through it. */
  error?: MmapError;
  refs: number;
  /** Mode of the files created in it (exact: fchmod after creating). Shared by a log's directory and its locks/. */
  files: { mode: number };
}

/** Directories open in this process, by path; several entries under one path when it named different directories over time (the newest is used). */
const table = new Map<string, OpenDir[]>();

function key(filePath: string): string {
  const normalized = path.normalize(filePath);
  return normalized.length > 1 && normalized.endsWith(path.sep) ? normalized.slice(0, -1) : normalized;
}

function lookup(tableKey: string): OpenDir | undefined {
  const list = table.get(tableKey);
  return list === undefined ? undefined : list[list.length - 1];
}

/** Mode of directories for a file mode: execute (search) wherever read is allowed. */
export function dirModeFor(fileMode: number): number {
  return fileMode | ((fileMode & 0o444) >>> 2);
}

/** Checks the `mode` option: permission bits only, and the owner may read and write. */
export function checkMode(mode: unknown): number | undefined {
  if (mode === undefined) return undefined;
  const checked = checkInteger("mode", mode);
  if (checked > 0o777) throw invalidArg(`mode must be permission bits (at most 0o777; no setuid, setgid or sticky bit), got 0o${checked.toString(8)}`);
  if ((checked & 0o600) !== 0o600) throw invalidArg(`mode must let the owner read and write (0o600), got 0o${checked.toString(8)}`);
  return checked;
}

/**
 * The path through which `filePath` is reached: `/proc/self/fd/<fd>/<name>` when
 * its directory is an open log directory, `/proc/self/fd/<fd>` when `filePath` is
 * one itself, else `filePath` unchanged.
 */
export function viaDir(filePath: string): string {
  const tableKey = key(filePath);
  const self = lookup(tableKey);
  if (self !== undefined) return `/proc/self/fd/${descriptor(self, filePath)}`;
  const parent = lookup(path.dirname(tableKey));
  return parent === undefined ? filePath : `/proc/self/fd/${descriptor(parent, filePath)}/${path.basename(tableKey)}`;
}

function descriptor(dirEntry: OpenDir, filePath: string): number {
  if (dirEntry.fd !== undefined) return dirEntry.fd;
  const sysError = dirEntry.error!;
  throw new MmapError(sysError.code, `${sysError.message} (needed for '${filePath}')`, { path: filePath, syscall: sysError.syscall, errno: sysError.errno });
}

/** The mode for files created in the directory of `filePath` (the log's `mode`, or that of its meta file). */
export function fileModeFor(filePath: string): number {
  return lookup(path.dirname(key(filePath)))?.files.mode ?? DEFAULT_FILE_MODE;
}

/** Runs `call` on the path through the directory's descriptor; errors name `filePath`, not the /proc path. */
export function inDir<T>(filePath: string, call: (resolved: string) => T): T {
  const resolved = viaDir(filePath);
  try {
    return call(resolved);
  } catch (error) {
    throw systemError(error, resolved, filePath);
  }
}

function systemError(error: unknown, used: string, filePath: string): MmapError {
  if (error instanceof MmapError) return error;
  const e = error as NodeJS.ErrnoException;
  if (e?.code === "ELOOP")
    return new MmapError("ERR_INSECURE", `'${filePath}' is a symbolic link: memmap follows no symbolic link inside a log directory (someone replaced a file of the log)`, { path: filePath, syscall: e.syscall, errno: os.constants.errno.ELOOP, cause: error });
  const code = codeOf(error);
  const message = typeof e?.message === "string" ? e.message.split(used).join(filePath) : String(error);
  return new MmapError(code, message, { path: filePath, syscall: e?.syscall, errno: typeof e?.errno === "number" ? Math.abs(e.errno) : undefined, cause: error });
}

/**
 * Opens the file `filePath` inside an open log directory, never following a
 * symbolic link (ERR_INSECURE) and never blocking on a FIFO. With O_CREAT
 * and O_EXCL, the new file gets the directory's file mode exactly.
 */
export function openInLog(filePath: string, flags: number): number {
  const mode = fileModeFor(filePath);
  const fd = inDir(filePath, (resolved) => fs.openSync(resolved, flags | O_NOFOLLOW | O_NONBLOCK, mode));
  if ((flags & (O_CREAT | O_EXCL)) === (O_CREAT | O_EXCL)) {
    try {
      fs.fchmodSync(fd, mode); // exact: not narrowed by the umask
    } catch (error) {
      fs.closeSync(fd);
      throw systemError(error, filePath, filePath);
    }
  }
  return fd;
}

/** Opens `filePath` for reading and writing, creating it (with the directory's file mode) if missing. */
export function openOrCreateInLog(filePath: string): number {
  try {
    return openInLog(filePath, O_RDWR | O_CREAT | O_EXCL);
  } catch (error) {
    if ((error as MmapError).code !== "EEXIST") throw error;
    return openInLog(filePath, O_RDWR);
  }
}

/**
 * Creates a temporary file for `final` in `dir` (O_EXCL|O_NOFOLLOW, a fresh
 * random name in the one format of tempName): through the directory's
 * descriptor, which is why the log does not use writeAtomically().
 */
export function createTemp(dir: string, final: string): { tmp: string; fd: number } {
  for (let attempt = 0; ; attempt++) {
    const tmp = tempName(dir, final);
    try {
      return { tmp, fd: openInLog(tmp, O_RDWR | O_CREAT | O_EXCL) };
    } catch (error) {
      // 96 random bits do not collide by chance: only a name someone planted does, and that needs luck twice.
      if ((error as MmapError).code !== "EEXIST" || attempt >= 2) throw error;
    }
  }
}

/** Removes the empty directory `filePath` inside an open log directory (through the parent's descriptor). */
export function removeDirInLog(filePath: string): void {
  const tableKey = key(filePath);
  const parent = lookup(path.dirname(tableKey));
  const resolved = parent === undefined ? filePath : `/proc/self/fd/${descriptor(parent, filePath)}/${path.basename(tableKey)}`;
  try {
    fs.rmdirSync(resolved);
  } catch (error) {
    throw systemError(error, resolved, filePath);
  }
}

/** Removes `filePath` (inside an open log directory) if it exists. */
export function removeInLog(filePath: string): void {
  try {
    inDir(filePath, (resolved) => fs.unlinkSync(resolved));
  } catch (error) {
    if ((error as MmapError).code !== "ENOENT") throw error;
  }
}

// ---- opening and checking the directory ----------------------------------------

export interface LogDirOptions {
  /** Create the directory (and its parents) if missing. */
  create: boolean;
  /** A read-only open: no ownership check, nothing created; still no symbolic link followed inside. */
  readOnly: boolean;
  /** The `mode` option (files; directories get x where r is set), if the caller gave one. */
  mode: number | undefined;
  /** Also open (and, unless read-only, create) `<dir>/locks`; created only with `create` or where a log's meta file is. */
  locks: string | undefined;
  /** onDamage "truncate": segment files without a log.meta are a log to repair, so its locks directory may be made. */
  repair?: boolean;
}

export interface LogDirHandle {
  /** This call created the log directory / its locks directory. */
  createdDir: boolean;
  createdLocks: boolean;
  /** Sets the mode of the files this process creates in the log (the log's meta file's, unless `mode` was given). */
  setFileMode(mode: number): void;
  /** Closes the descriptors once the last user in this process is done. */
  release(): void;
}

function insecure(dir: string, what: string): MmapError {
  return new MmapError("ERR_INSECURE", `the log directory '${dir}' ${what}`, { path: dir });
}

/**
 * Refuses a directory another user could change under us: it must belong to
 * this process's user or to root, and be writable by nobody else unless the
 * caller chose such a mode explicitly (OpenSSH and X11 check their
 * directories the same way).
 */
function checkOwnership(dir: string, st: fs.Stats, mode: number | undefined): void {
  const me = process.geteuid?.() ?? st.uid;
  if (st.uid !== me && st.uid !== 0)
    throw insecure(dir, `is owned by uid ${st.uid}, not by this process's user (uid ${me}) or root: its owner could swap the log's files (a read-only open needs no ownership)`);
  const allowed = mode === undefined ? 0 : dirModeFor(mode);
  const extra = st.mode & 0o022 & ~allowed;
  if (extra !== 0) {
    const who = extra === 0o022 ? "group and others" : extra === 0o020 ? "its group" : "others";
    throw insecure(dir, `is writable by ${who} (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}): they could swap the log's files; pass the mode you chose as the mode option to allow it`);
  }
}

/**
 * mkdir without `recursive` (whose loop never ends under /proc, and which
 * says ENOENT on a read-only mount): parents first, each tried once. True if
 * this call made `dir`. Throws the fs error.
 */
function makeDirs(dir: string, mode: number): boolean {
  try {
    fs.mkdirSync(dir, mode);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    const parent = path.dirname(dir);
    if (code !== "ENOENT" || parent === dir) throw error;
    if (makeDirs(parent, mode)) fs.chmodSync(parent, mode);
    try {
      fs.mkdirSync(dir, mode);
      return true;
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw again;
    }
  }
}

/**
 * Opens (creating it with `create`) and checks a log directory, and its
 * locks directory, and registers both so every file inside is reached
 * through their descriptors. ENOENT / EACCES / EROFS are reported as such.
 */
export function openLogDir(dir: string, options: LogDirOptions): LogDirHandle {
  const dirMode = dirModeFor(options.mode ?? DEFAULT_FILE_MODE);
  let createdDir = false;
  if (options.create && !options.readOnly) {
    try {
      createdDir = makeDirs(dir, dirMode);
    } catch (error) {
      throw systemError(error, dir, dir);
    }
  }
  let link: fs.Stats;
  try {
    link = fs.lstatSync(key(dir)); // without a trailing slash, which would resolve a symbolic link
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      throw new MmapError("ENOENT", `no such directory '${dir}' (pass create: true to make a log there)`, { path: dir, syscall: "open", errno: os.constants.errno.ENOENT });
    throw systemError(error, dir, dir);
  }
  // The directory itself may be reached through a symbolic link (a deployment's
  // /var/lib/app -> /data/app), but only one its owner or root made.
  if (!options.readOnly && link.isSymbolicLink() && link.uid !== (process.geteuid?.() ?? link.uid) && link.uid !== 0)
    throw insecure(dir, `is a symbolic link owned by uid ${link.uid}: whoever made it chooses where the log goes`);
  // By path: this names the directory the caller means now (the table may hold an older one under this path).
  let fd: number;
  try {
    fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY);
  } catch (error) {
    throw systemError(error, dir, dir);
  }
  const files = { mode: options.mode ?? DEFAULT_FILE_MODE };
  const opened: { tableKey: string; entry: OpenDir }[] = [];
  try {
    // Checked before anything is changed: a directory swapped in meanwhile is refused, never chmod'ed.
    const st = fs.fstatSync(fd);
    if (!fs.existsSync(`/proc/self/fd/${fd}`))
      throw new MmapError("ERR_UNSUPPORTED", `logs need /proc (mounted on every ordinary Linux system) to reach their files through the directory's descriptor; it is not mounted here ('${dir}')`, { path: dir });
    if (!options.readOnly) {
      if (!link.isSymbolicLink() && (link.dev !== st.dev || link.ino !== st.ino))
        throw insecure(dir, "was replaced while it was being opened");
      checkOwnership(dir, st, options.mode); // a fresh one passes: mkdir's mode is dirMode narrowed by the umask
    }
    if (createdDir) fs.fchmodSync(fd, dirMode); // exact: not narrowed by the umask
    opened.push(register(dir, { fd, refs: 1, files }));
    let createdLocks = false;
    if (options.locks !== undefined) {
      const locks = options.locks;
      const via = `/proc/self/fd/${fd}/${path.basename(locks)}`;
      // Not in a directory that holds no log (unless creating one): an open that then fails must leave it as it was.
      const makeLocks = !options.readOnly && (options.create || fs.existsSync(`/proc/self/fd/${fd}/${META_FILE_NAME}`) || (options.repair === true && hasSegmentName(fd)));
      if (makeLocks) {
        try {
          fs.mkdirSync(via, dirMode);
          createdLocks = true;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw systemError(error, via, locks);
        }
      }
      let lfd: number | undefined;
      let failure: MmapError | undefined;
      try {
        lfd = fs.openSync(via, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (raw) {
        // O_DIRECTORY|O_NOFOLLOW on a symbolic link fails with ENOTDIR.
        const error =
          (raw as NodeJS.ErrnoException).code === "ENOTDIR"
            ? new MmapError("ERR_INSECURE", `'${locks}' is not a directory (a symbolic link or a file): memmap follows no symbolic link inside a log directory`, { path: locks })
            : systemError(raw, via, locks);
        // A read-only open goes on without the locks it cannot reach (it takes none it
        // cannot open), and so does one in a directory with no log (which reports that
        // next); a symbolic link there is refused either way.
        if (makeLocks || error.code === "ERR_INSECURE") throw error;
        failure = error;
      }
      if (lfd !== undefined) {
        try {
          if (!options.readOnly) checkOwnership(locks, fs.fstatSync(lfd), options.mode);
          if (createdLocks) fs.fchmodSync(lfd, dirMode);
        } catch (error) {
          fs.closeSync(lfd);
          throw error;
        }
      }
      opened.push(register(locks, { fd: lfd, error: failure, refs: 1, files }));
    }
    return {
      createdDir,
      createdLocks,
      setFileMode(mode: number) {
        files.mode = mode;
      },
      release() {
        for (const { tableKey, entry } of opened) unregister(tableKey, entry);
        opened.length = 0;
      },
    };
  } catch (error) {
    for (const { tableKey, entry } of opened) unregister(tableKey, entry);
    if (opened.length === 0) fs.closeSync(fd);
    throw error;
  }
}

/** True if the directory open as `fd` holds an entry named like a segment file. */
function hasSegmentName(fd: number): boolean {
  return fs.readdirSync(`/proc/self/fd/${fd}`).some((name) => parseSegmentFileName(name) !== undefined);
}

function register(filePath: string, entry: OpenDir): { tableKey: string; entry: OpenDir } {
  const tableKey = key(filePath);
  const list = table.get(tableKey) ?? [];
  list.push(entry);
  table.set(tableKey, list);
  return { tableKey, entry };
}

function unregister(tableKey: string, entry: OpenDir): void {
  if (--entry.refs > 0) return;
  const list = table.get(tableKey);
  if (list !== undefined) {
    const i = list.indexOf(entry);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) table.delete(tableKey);
  }
  if (entry.fd !== undefined) fs.closeSync(entry.fd);
}

/** fsync of an open log directory through its descriptor (or by path if it is not one). */
export function fsyncLogDir(dir: string): void {
  const dirEntry = lookup(key(dir));
  if (dirEntry?.fd !== undefined) {
    fs.fsyncSync(dirEntry.fd);
    return;
  }
  const fd = inDir(dir, (resolved) => fs.openSync(resolved, O_RDONLY | O_DIRECTORY));
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** mapFile of a descriptor; its errors name `filePath` (a descriptor has no path of its own). */
export function mapDescriptor(fd: number, filePath: string, options: MapOptions): MappedFile {
  try {
    return mapFile(fd, options);
  } catch (error) {
    const mapError = error as MmapError;
    if (!(mapError instanceof MmapError) || mapError.path !== undefined) throw error;
    throw new MmapError(mapError.code, `${mapError.message} '${filePath}'`, { path: filePath, syscall: mapError.syscall, errno: mapError.errno, cause: error });
  }
}

/** Opens `filePath` inside an open log directory (no symbolic link followed) and maps it; the mapping keeps its own descriptor. */
export function mapInLog(filePath: string, options: MapOptions): MappedFile {
  const fd = openInLog(filePath, options.access === "write" ? O_RDWR : O_RDONLY);
  try {
    return mapDescriptor(fd, filePath, options);
  } finally {
    fs.closeSync(fd);
  }
}
