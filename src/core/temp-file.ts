/**
 * Files that appear whole: built under a temporary name next to the target,
 * then linked (or renamed) into place: writeAtomically(), used by
 * createChannel() and createRecordFile(). The log builds its meta file and
 * segments the same way with the same temporary names (tempName) and the
 * same no-clobber link (linkNoClobber), but through its directory's
 * descriptor (src/log/dir.ts), so it calls those two pieces, not
 * writeAtomically().
 *
 * The temporary name is unguessable (crypto.randomBytes) and made new
 * (O_CREAT|O_EXCL|O_NOFOLLOW), so a name planted in a shared directory can
 * neither be predicted nor followed. Errors name the path the caller gave,
 * never the temporary one.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { MmapError, codeOf } from "./errors.ts";
import { applyMode } from "./open-file.ts";

/** "ENOENT: no such file or directory, open '/x/.y.tmp'" -> "no such file or directory" */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const m = /^[A-Z0-9_]+: ([^,]+)/.exec(message);
  return m ? m[1]! : message;
}

/** A system error of a step on a temporary file, reported against the target path. */
export function targetError(error: unknown, target: string, syscall: string): MmapError {
  if (error instanceof MmapError && error.path === target) return error;
  const e = error as NodeJS.ErrnoException;
  const code = codeOf(error);
  return new MmapError(code, `${code}: ${reasonOf(error)}, ${syscall} '${target}'`, {
    syscall,
    path: target,
    errno: typeof e?.errno === "number" ? Math.abs(e.errno) : undefined,
    cause: error,
  });
}

/**
 * Fails with EISDIR when `target` is a directory (creating a file there can
 * only fail, later and with a confusing error); with EEXIST, saying `hint`,
 * when it exists and `replace` is false.
 */
export function checkTarget(target: string, replace: boolean, hint: string): void {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(target);
  } catch {
    return; // missing (or unreadable): creating it says what is wrong
  }
  if (st.isDirectory())
    throw new MmapError("EISDIR", `EISDIR: is a directory, open '${target}' (give the path of a file to create)`, {
      syscall: "open",
      path: target,
      errno: os.constants.errno.EISDIR,
    });
  if (!replace)
    throw new MmapError("EEXIST", `EEXIST: file already exists, open '${target}' (${hint})`, {
      syscall: "open",
      path: target,
      errno: os.constants.errno.EEXIST,
    });
}

/**
 * The one temporary-name format: hidden, next to `final` in `dir`, with the
 * creator's pid and 96 random bits, so that a planted name is never guessed
 * (and, created O_EXCL, never opened). The log removes leftover ".*.tmp"
 * names when it repairs.
 */
export function tempName(dir: string, final: string): string {
  return path.join(dir, `.${final}.${process.pid}.${randomBytes(12).toString("hex")}.tmp`);
}

/** Creates the temporary file for `target` with exactly `mode`. */
export function createTemp(target: string, mode: number): { fd: number; temp: string } {
  const temp = tempName(path.dirname(target), path.basename(target));
  let fd: number;
  try {
    fd = fs.openSync(temp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
  } catch (error) {
    throw targetError(error, target, "open");
  }
  try {
    applyMode(fd, mode, target);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw error;
  }
  return { fd, temp };
}

/**
 * link(2) `from` to `to`, which follows no symbolic link and never clobbers:
 * false when `to` exists (someone else won). Other errors name `target`.
 */
export function linkNoClobber(from: string, to: string, target: string): boolean {
  try {
    fs.linkSync(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw targetError(error, target, "link");
  }
}

/**
 * Puts the complete temporary file in place: rename() over whatever is there
 * with `replace`, else link() (which never clobbers: EEXIST, saying `hint`).
 * The temporary name is gone afterwards either way.
 */
export function publishTemp(temp: string, target: string, replace: boolean, hint: string): void {
  if (replace) {
    try {
      fs.renameSync(temp, target);
    } catch (error) {
      throw targetError(error, target, "rename");
    }
    return;
  }
  if (!linkNoClobber(temp, target, target)) {
    fs.unlinkSync(temp);
    throw new MmapError("EEXIST", `EEXIST: file already exists, open '${target}' (${hint})`, {
      syscall: "link",
      path: target,
      errno: os.constants.errno.EEXIST,
    });
  }
  fs.unlinkSync(temp);
}

/**
 * Creates `target` whole: builds it under a fresh temporary name with exactly
 * `mode`, lets `init` fill it through its descriptor, then puts it in place
 * (publishTemp: rename with `replace`, else a link that never clobbers).
 * Nobody ever opens a half-made file; on failure the temporary name is gone
 * and errors name `target`. `init` may return a step to run once the file
 * is in place or has failed to get there (e.g. to drop a lock it took).
 * Returns the descriptor of the file now at `target`; the caller closes it.
 */
export function writeAtomically(
  target: string,
  mode: number,
  init: (fd: number) => (() => void) | void,
  options: { replace: boolean; hint: string },
): number {
  checkTarget(target, options.replace, options.hint);
  const { fd, temp } = createTemp(target, mode);
  let linked = false;
  try {
    const after = init(fd);
    try {
      publishTemp(temp, target, options.replace, options.hint);
    } finally {
      after?.();
    }
    linked = true;
    return fd;
  } catch (error) {
    if (!linked) fs.rmSync(temp, { force: true });
    fs.closeSync(fd);
    throw error;
  }
}
