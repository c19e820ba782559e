/**
 * `memmap lock <paths…>`: map files, mlock them, and hold them resident
 * until interrupted (vmtouch -l).
 *
 * The files are mapped read-only; MappedFile.lock() locks such a mapping
 * with read faults, so what is pinned is the page cache's own pages (no
 * private copies), and reading the files is the only permission needed.
 */
import * as fs from "node:fs";
import { mapFile, pageSize, type MappedFile } from "../index.ts";
import { CliError, EXIT_OK, formatBytes, formatCount } from "./common.ts";
import { SkippedEntry, collectFiles, fileProblem, openEntry, reportNotices, type FileSet } from "./files.ts";
import { residencyOf, type FileResidency } from "./residency.ts";
import { describeTotal, reportErrors, totalOf } from "./stat.ts";

export interface LockOptions {
  json?: boolean;
  /** Files larger than this are skipped with a message (default {@link DEFAULT_MAX_LOCK_SIZE}). */
  maxSize?: number;
}

/**
 * The largest file `memmap lock` locks unless --max-size says otherwise
 * (vmtouch -m has the same default): a huge sparse file planted in a tree
 * would otherwise turn its holes into real, locked pages until memory ran out.
 */
export const DEFAULT_MAX_LOCK_SIZE = 500 * 1024 * 1024;

/** A field of /proc/self/status in bytes (e.g. VmLck), or undefined when unavailable. */
export function procStatusBytes(field: string, pid: number | "self" = "self"): number | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The soft RLIMIT_MEMLOCK in bytes; Infinity when unlimited, undefined when unknown. */
export function memlockLimit(): number | undefined {
  try {
    const limits = fs.readFileSync("/proc/self/limits", "utf8");
    const match = /^Max locked memory\s+(\S+)/m.exec(limits);
    if (!match) return undefined;
    return match[1] === "unlimited" ? Infinity : Number(match[1]);
  } catch {
    return undefined;
  }
}

function limitMessage(wanted: number, error: unknown): CliError {
  const limit = memlockLimit();
  const locked = procStatusBytes("VmLck") ?? 0;
  const limitText = limit === undefined ? "too small" : limit === Infinity ? "unlimited" : formatBytes(limit);
  return new CliError(
    `cannot lock ${formatBytes(wanted)} in memory: the locked-memory limit (RLIMIT_MEMLOCK) is ${limitText}` +
      (locked > 0 ? ` and ${formatBytes(locked)} is already locked` : "") +
      `; raise it (ulimit -l, LimitMEMLOCK= in systemd, --ulimit memlock= in docker) or grant CAP_IPC_LOCK`,
    1,
    { cause: error },
  );
}

/** mlock's failures that mean "over the limit" (ENOMEM), "limit is zero" (EPERM), or "could not lock all" (EAGAIN). */
const LIMIT_CODES = new Set(["ENOMEM", "EPERM", "EAGAIN"]);

/** `paths`: as given on the command line, or already collected (collectFiles). */
export async function runLock(paths: readonly string[] | FileSet, options: LockOptions): Promise<number> {
  const set = Array.isArray(paths) ? collectFiles(paths) : (paths as FileSet);
  if (set.errors.length > 0) {
    reportErrors(set.errors.slice(1));
    throw new CliError(set.errors[0]!.message);
  }
  const maxSize = options.maxSize ?? DEFAULT_MAX_LOCK_SIZE;
  const tooLarge = (size: number, file: { path: string }): boolean => {
    if (size <= maxSize) return false;
    set.skipped++;
    set.notices.push(`skipped ${file.path}: ${formatBytes(size)} is larger than the --max-size of ${formatBytes(maxSize)}`);
    return true;
  };
  const wanted = set.files.reduce((n, f) => n + (f.size <= maxSize ? f.size : 0), 0);
  const mappings: MappedFile[] = [];
  const release = (): void => {
    for (const m of mappings) {
      try {
        if (!m.closed) m.unlock();
      } catch {
        /* closing unlocks too */
      }
      m.close();
    }
  };

  const locked: FileResidency[] = [];
  try {
    for (const file of set.files) {
      if (tooLarge(file.size, file)) continue;
      let m: MappedFile | undefined;
      try {
        // Mapped through a descriptor checked to be the regular file the walk found, and
        // no more of it than was checked against the cap (it may have grown since the walk).
        const { fd, size } = openEntry(file);
        try {
          if (!tooLarge(size, file)) m = mapFile(fd, { length: size });
        } finally {
          fs.closeSync(fd);
        }
      } catch (error) {
        if (error instanceof SkippedEntry) {
          set.skipped++;
          set.notices.push(error.message);
          continue;
        }
        throw new CliError(fileProblem(file.path, error).message, 1, { cause: error });
      }
      if (m === undefined) continue;
      mappings.push(m);
      try {
        m.lock();
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (typeof code === "string" && LIMIT_CODES.has(code)) throw limitMessage(wanted, error);
        throw error;
      }
      locked.push(residencyOf(m, file.path));
    }
  } catch (error) {
    release();
    throw error;
  }

  reportNotices(set);
  // Listen before saying we hold the files: a signal sent on seeing that line must find the handler.
  const keepAlive = setInterval(() => {}, 1 << 30); // the timer only keeps the event loop alive
  const interrupted = new Promise<NodeJS.Signals>((resolve) => {
    for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(s, () => resolve(s));
  });
  const total = totalOf(locked, set.directories);
  const lockedBytes = procStatusBytes("VmLck");
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ event: "locked", pid: process.pid, pageSize, total, lockedBytes })}\n`);
  } else {
    process.stdout.write(
      `Locked ${describeTotal(total, "locked")}\n` +
        `Holding them in memory (pid ${process.pid}); press Ctrl-C to release.\n`,
    );
  }

  const signal = await interrupted;
  clearInterval(keepAlive);
  release();
  const lockedAfter = procStatusBytes("VmLck");
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ event: "released", signal, files: total.files, lockedBytes: lockedAfter })}\n`);
  } else {
    process.stdout.write(
      `Released ${formatCount(total.files)} file${total.files === 1 ? "" : "s"} (${formatBytes(total.residentBytes)}) on ${signal}` +
        (lockedAfter !== undefined ? `; this process now locks ${formatBytes(lockedAfter)}` : "") +
        "\n",
    );
  }
  return EXIT_OK;
}
