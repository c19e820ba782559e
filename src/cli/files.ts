/**
 * Expands the paths given to stat/warm/evict/lock into the regular files
 * they name, walking directories recursively, and opens them safely.
 *
 * Like vmtouch: symbolic links given on the command line are followed, those
 * found inside directories are not (no loops, no escaping the tree); a file
 * reached twice (a hard link, or named twice) is counted once; sockets,
 * devices and FIFOs are skipped, with a message. A path that cannot be read
 * is reported and the rest still processed.
 *
 * The tree can change while it is walked (someone else may write it), so
 * nothing found is trusted by name: directories and files are opened with
 * O_NOFOLLOW (and O_NONBLOCK: opening a FIFO does not wait for a writer),
 * checked on the descriptor (fstat), and checked to still be where the walk
 * found them (the kernel's name for the descriptor, /proc/self/fd/N, must be
 * the expected path: a directory swapped for a symbolic link on the way
 * shows there). Everything after that works on the descriptor.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { errorCode } from "./common.ts";

export interface FileEntry {
  /** The path as shown to the user. */
  path: string;
  size: number;
  /** The path with every symbolic link resolved (at the time of the walk): what is opened. */
  real: string;
}

/** A path that could not be read, with the reason. */
export interface FileProblem {
  path: string;
  code: string;
  message: string;
}

export interface FileSet {
  files: FileEntry[];
  /** Directories walked, including the ones named on the command line. */
  directories: number;
  /** Entries that are not regular files (symbolic links inside directories, devices…). */
  skipped: number;
  /** Why entries other than symbolic links were skipped, one line each (for stderr). */
  notices: string[];
  errors: FileProblem[];
}
/** "ENOENT: no such file or directory, stat 'x'" -> "x: no such file or directory (ENOENT)" */
export function fileProblem(filePath: string, error: unknown): FileProblem {
  const code = errorCode(error);
  const raw = error instanceof Error ? error.message : String(error);
  const fsStyle = /^[A-Z0-9_]+: ([^,]+),/.exec(raw);
  const addonStyle = /^[a-z_0-9]+: ([^']+?)\s*(?:'.*')?$/.exec(raw);
  // The path goes in front once; messages that quote it already lose the quote.
  const reason = (fsStyle ? fsStyle[1]! : addonStyle ? addonStyle[1]! : raw).replace(` '${filePath}'`, "");
  const suffix = /^E[A-Z0-9]+$/.test(code) && !reason.includes(code) ? ` (${code})` : "";
  return { path: filePath, code, message: `${filePath}: ${reason.trim()}${suffix}` };
}

const { O_RDONLY, O_NONBLOCK, O_NOFOLLOW, O_DIRECTORY } = fs.constants;

/** What a directory entry or an opened file is, for a skip message. */
function kind(st: { isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSymbolicLink(): boolean; isDirectory(): boolean }): string {
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  if (st.isSymbolicLink()) return "a symbolic link";
  if (st.isDirectory()) return "a directory";
  return "not a regular file";
}

/** An entry skipped because it is not (or no longer) a regular file where the walk found one. */
export class SkippedEntry extends Error {}

/**
 * Opens `real` (a path with no symbolic link in it) without following any:
 * the last component with O_NOFOLLOW, and the components before it checked
 * afterwards through the descriptor's own name. Throws SkippedEntry when the
 * path no longer leads where it did.
 */
function openReal(shown: string, real: string, flags: number): number {
  let fd: number;
  try {
    fd = fs.openSync(real, flags | O_RDONLY | O_NONBLOCK | O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw new SkippedEntry(`skipped ${shown}: it was replaced by a symbolic link while the tree was walked`);
    if (code === "ENOTDIR") throw new SkippedEntry(`skipped ${shown}: it changed while the tree was walked`);
    throw error;
  }
  let where: string | undefined;
  try {
    where = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    /* no /proc: the O_NOFOLLOW of the last component is all there is */
  }
  if (where !== undefined && where !== real) {
    fs.closeSync(fd);
    throw new SkippedEntry(`skipped ${shown}: it moved while the tree was walked (a directory on its path was replaced)`);
  }
  return fd;
}

/**
 * Opens a file the walk found, for reading, and checks it on the descriptor:
 * still a regular file, still at the same place. The caller closes the
 * descriptor and does all its work through it (mapFile(fd), evictFile(fd)).
 */
export function openEntry(file: FileEntry): { fd: number; size: number } {
  const fd = openReal(file.path, file.real, 0);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SkippedEntry(`skipped ${file.path}: ${kind(st)}, not a regular file (it changed while the tree was walked)`);
    return { fd, size: st.size };
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/** Runs `work` on an entry's open descriptor; closes it after. */
export function withEntry<T>(file: FileEntry, work: (fd: number, size: number) => T): T {
  const { fd, size } = openEntry(file);
  try {
    return work(fd, size);
  } finally {
    fs.closeSync(fd);
  }
}

/** Prints why entries were skipped (stderr: the JSON on stdout stays clean). */
export function reportNotices(set: FileSet): void {
  for (const n of set.notices) process.stderr.write(`memmap: ${n}\n`);
}

/** Collects the regular files named by `paths`, directories expanded. */
export function collectFiles(paths: readonly string[]): FileSet {
  const set: FileSet = { files: [], directories: 0, skipped: 0, notices: [], errors: [] };
  const seen = new Set<string>();

  const addFile = (filePath: string, real: string, st: fs.Stats): void => {
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    set.files.push({ path: filePath, size: st.size, real });
  };

  // Reads a directory through a descriptor opened without following links, so
  // a directory swapped for a symbolic link is not walked into.
  const walk = (dir: string, real: string): void => {
    set.directories++;
    let entries: fs.Dirent[];
    try {
      const fd = openReal(dir, real, O_DIRECTORY);
      try {
        entries = fs.readdirSync(`/proc/self/fd/${fd}`, { withFileTypes: true });
      } finally {
        fs.closeSync(fd);
      }
    } catch (error) {
      if (error instanceof SkippedEntry) set.notices.push(error.message);
      else set.errors.push(fileProblem(dir, error));
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const child = path.join(dir, entry.name);
      const childReal = path.join(real, entry.name);
      if (entry.isDirectory()) walk(child, childReal);
      else if (entry.isFile()) {
        try {
          const st = fs.lstatSync(childReal);
          if (st.isFile()) addFile(child, childReal, st);
          else {
            set.skipped++;
            set.notices.push(`skipped ${child}: ${kind(st)}, not a regular file`);
          }
        } catch (error) {
          set.errors.push(fileProblem(child, error)); // removed while we walked
        }
      } else {
        set.skipped++;
        if (!entry.isSymbolicLink()) set.notices.push(`skipped ${child}: ${kind(entry)}, not a regular file`);
      }
    }
  };

  for (const p of paths) {
    let st: fs.Stats;
    let real: string;
    try {
      real = fs.realpathSync(p); // links named on the command line are followed
      st = fs.statSync(real);
    } catch (error) {
      set.errors.push(fileProblem(p, error));
      continue;
    }
    if (st.isDirectory()) walk(p, real);
    else if (st.isFile()) addFile(p, real, st);
    else set.errors.push({ path: p, code: "ENODEV", message: `${p}: not a regular file or directory` });
  }
  return set;
}
