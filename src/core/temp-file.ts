/**
 * Files that appear whole: built under a temporary name next to the target,
 * then linked (or renamed) into place. Used by createChannel() and
 * createRecordFile().
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
import { applyMode } from "./mapped-file.ts";

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

/** Creates the temporary file for `target` with exactly `mode`. */
export function createTemp(target: string, mode: number, hidden: boolean): { fd: number; temp: string } {
  const suffix = `.${randomBytes(8).toString("hex")}.tmp`;
  const temp = hidden ? path.join(path.dirname(target), `.${path.basename(target)}${suffix}`) : `${target}${suffix}`;
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
  try {
    fs.linkSync(temp, target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST")
      throw new MmapError("EEXIST", `EEXIST: file already exists, open '${target}' (${hint})`, {
        syscall: "link",
        path: target,
        errno: os.constants.errno.EEXIST,
      });
    throw targetError(error, target, "link");
  }
  fs.unlinkSync(temp);
}
