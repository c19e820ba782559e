/** memmap's own error codes, each for one kind of failure. */
export type MmapOwnErrorCode =
  | "ERR_INVALID_ARG" // a bad argument, caught before any system call
  | "ERR_OUT_OF_RANGE" // an offset or length outside the mapping or file
  | "ERR_MISALIGNED" // a typed view whose offset is not a multiple of its element size
  | "ERR_TOO_LARGE" // larger than one ArrayBuffer can be (use window())
  | "ERR_CLOSED" // the object was closed
  | "ERR_STALE" // the file shrank under the mapping; its pages were replaced by zeros
  | "ERR_CORRUPT" // data read from a file failed validation
  | "ERR_SCHEMA_MISMATCH" // a record file's layout differs from the one given
  | "ERR_TIMEOUT" // a wait ran out of time
  | "ERR_ABORTED" // a wait was cancelled by an AbortSignal
  | "ERR_PEER_GONE" // the process on the other side of a channel is gone
  | "ERR_FULL" // no room left (a channel ring, a record file that cannot grow)
  | "ERR_BUSY" // the operation conflicts with one in progress
  | "ERR_READ_ONLY" // a write to something opened read-only (a log opened with readOnly)
  | "ERR_INSECURE" // a file or directory another user could change or use to redirect a write (owner, mode, a symbolic link, a hard link): refused
  | "ERR_UNSUPPORTED" // something this system lacks (logs need /proc), or valid data memmap cannot map faithfully (a /proc file that reports size 0, a big-endian .npy)
  | "ERR_TOO_MANY_MAPPINGS" // the addon's table of live mappings is full
  | "ERR_MISSING_DEPENDENCY" // an optional peer dependency a feature needs is not installed (the message says what to install)
  | "ERR_NO_STREAM" // a JetStream stream the bridge needs does not exist
  | "ERR_SUBJECT_MISMATCH" // a JetStream subject that holds another log's records, or a stream that does not take the subject
  | "ERR_NO_ADDON" // neither a local build nor a prebuilt native addon loads on this platform
  | "ERR_INTERNAL"; // a failure that carried no code (a bug in memmap: please report it)

/**
 * The name of an errno value (`ENOENT`, `EACCES`, `E2BIG`, …), as `node:fs`
 * and `os.constants.errno` spell them: `E` and upper case. A name that starts
 * with `ERR` is not one, so that a misspelled `ERR_…` code does not compile
 * as an errno name (`ERANGE`, `EROFS` and the other `ER…` names still do).
 */
export type ErrnoCode =
  | `E${"A" | "B" | "C" | "D" | "E" | "F" | "G" | "H" | "I" | "J" | "K" | "L" | "M" | "N" | "O" | "P" | "Q" | "S" | "T" | "U" | "V" | "W" | "X" | "Y" | "Z" | "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9"}${Uppercase<string>}`
  | `ER${"A" | "B" | "C" | "D" | "E" | "F" | "G" | "H" | "I" | "J" | "K" | "L" | "M" | "N" | "O" | "P" | "Q" | "S" | "T" | "U" | "V" | "W" | "X" | "Y" | "Z"}${Uppercase<string>}`;

/**
 * Every failure in memmap is an {@link MmapError}: `code` is an errno name
 * (`ENOENT`, `EACCES`, …) when a system call failed, or one of memmap's own
 * `ERR_…` codes. The shape matches Node's own `fs` errors.
 */
export type MmapErrorCode = MmapOwnErrorCode | ErrnoCode;

/** Details of an {@link MmapError}: the failed system call, the path, the errno number, the cause. */
export interface MmapErrorOptions {
  syscall?: string | undefined;
  path?: string | undefined;
  errno?: number | undefined;
  cause?: unknown;
}

/**
 * The error memmap throws: `code` is an errno name (`ENOENT`, `EACCES`, …) when
 * a system call failed, or one of memmap's own `ERR_…` codes; `syscall` and
 * `path` say where, when known.
 */
export class MmapError extends Error {
  readonly code: MmapErrorCode;
  readonly syscall: string | undefined;
  readonly path: string | undefined;
  readonly errno: number | undefined;

  constructor(code: MmapErrorCode, message: string, options: MmapErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.syscall = options.syscall;
    this.path = options.path;
    this.errno = options.errno;
  }

  override get name(): string {
    return "MmapError";
  }
}

interface SystemErrorLike {
  code?: unknown;
  syscall?: unknown;
  errno?: unknown;
  message?: unknown;
  path?: unknown;
}

/**
 * The code of an error thrown by the addon or by `node:fs`, or `ERR_INTERNAL`
 * when it has none. Those codes are errno names or memmap's own codes; a code
 * of Node's own (`ERR_FS_FILE_TOO_LARGE`, …) passes through unchanged, so the
 * type here is a promise about memmap's codes, not a check of Node's.
 */
export function codeOf(error: unknown): MmapErrorCode {
  const code = (error as SystemErrorLike | null | undefined)?.code;
  return typeof code === "string" ? (code as MmapErrorCode) : "ERR_INTERNAL";
}

/** Turns an error thrown by the addon or by `node:fs` into an MmapError; `path`, when given, is named in the message. */
export function toMmapError(error: unknown, path?: string): MmapError {
  if (error instanceof MmapError) return error;
  const e = (error ?? {}) as SystemErrorLike;
  const code = codeOf(error);
  const syscall = typeof e.syscall === "string" ? e.syscall : undefined;
  let message = typeof e.message === "string" ? e.message : String(error);
  // fs messages already name the path; the addon's do not.
  if (path !== undefined && !message.includes(path)) message += ` '${path}'`;
  const errno = typeof e.errno === "number" ? Math.abs(e.errno) : undefined;
  return new MmapError(code, message, { syscall, path, errno, cause: error });
}

/** Runs a system call wrapper and rethrows its failure as an MmapError. */
export function sys<T>(path: string | undefined, call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw toMmapError(error, path);
  }
}

export function invalidArg(message: string): MmapError {
  return new MmapError("ERR_INVALID_ARG", message);
}
