/**
 * The options of `openLog()`: their types, their defaults and their
 * validation (every option is checked before anything is opened).
 */
import { invalidArg } from "../core/errors.ts";
import { checkInteger, validateBoolean, validateOneOf, validateOptions } from "../core/validate.ts";
import { checkMode } from "./dir.ts";
import { DEFAULT_SEGMENT_SIZE, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE } from "./layout.ts";

/**
 * What `append` promises when it returns:
 * - `"none"`: the record is in the page cache — it survives the process
 *   crashing, not the machine;
 * - `"batch"`: as "none", and a background msync (group commit) runs at
 *   most `flushIntervalMs` later or once `flushRecords` records are pending;
 *   `await log.flush()` resolves when everything appended before it is on disk;
 * - `"sync"`: the record is on disk (msync before returning).
 */
export type Durability = "none" | "batch" | "sync";

/**
 * Which old segments `retain()` drops (oldest first; never the newest). A
 * limit left out does not apply; with none, nothing is dropped. A bad value
 * is an `ERR_INVALID_ARG` from {@link openLog} or `retain()`.
 */
export interface RetentionOptions {
  /**
   * Keep at most this many segments (an integer, at least 1).
   * @default undefined (no limit on the count)
   */
  maxSegments?: number;
  /**
   * Keep at most this many bytes of segment files (an integer).
   * @default undefined (no limit on the bytes)
   */
  maxBytes?: number;
  /**
   * Drop segments whose newest record is older than this many milliseconds.
   * @default undefined (no limit on the age)
   */
  maxAgeMs?: number;
  /**
   * Drop segments even if a durable reader has not consumed them.
   * @default false
   */
  ignoreCursors?: boolean;
}

/**
 * Options of {@link openLog}; every one is checked before anything is
 * opened, and a bad value or an unknown key is an `ERR_INVALID_ARG`.
 */
export interface LogOptions {
  /**
   * Create the directory and the log if missing. Not with `readOnly`.
   * @default false
   */
  create?: boolean;
  /**
   * Permission bits of the files the log creates (log.meta, segments, lock
   * files), applied exactly (fchmod after creating: the umask does not
   * narrow them); directories get the same bits plus search (x) wherever
   * read is allowed (0o644 gives 0o755). At most 0o777, and the owner must
   * be able to read and write. Default 0o600 (directories 0o700) when
   * creating; a writer that opens an existing log without `mode` gives the
   * segments it adds the mode of `log.meta`. Passing a mode also allows an
   * existing log directory to be writable by group or others as far as that
   * mode says (see docs/security.md).
   * @default 0o600 when creating (directories 0o700); else the mode of `log.meta`
   */
  mode?: number;
  /**
   * Bytes per segment file, for a log being created: a multiple of 4096 from
   * 64 KiB to 1 GiB. An existing log keeps the size it was created with.
   * @default 67108864 (64 MiB)
   */
  segmentSize?: number;
  /**
   * What `append` promises when it returns. See {@link Durability}.
   * @default "none"
   */
  durability?: Durability;
  /**
   * "batch": the longest time in milliseconds between a record and its msync
   * (a non-negative number).
   * @default 10
   */
  flushIntervalMs?: number;
  /**
   * "batch": msync once this many records are pending (an integer, at least 1).
   * @default 1000
   */
  flushRecords?: number;
  /**
   * Records appended by this process carry a CRC32C.
   * @default undefined (what the log was created with; a log is created without)
   */
  crc?: boolean;
  /**
   * Applied after each segment this process creates, and by `retain()`.
   * @default undefined (segments are kept until `retain()` is given a policy)
   */
  retention?: RetentionOptions;
  /**
   * On open, check every frame of "tail" (the newest segment) or of "full"
   * (every segment).
   * @default "tail"
   */
  verify?: "tail" | "full";
  /**
   * What to do when the files are damaged: "throw" (default) an ERR_CORRUPT;
   * "readPrefix": open anyway, readers deliver the records before the damage
   * and then throw it, appends throw it; "truncate": cut the log where the
   * damage starts (damaged segments are moved to `damaged-<time>/`), then
   * append from there — needs no other process to have the log open.
   * Except with "truncate", an open that finds damage changes nothing (not
   * even what a crash left): see docs/log.md, Recovery.
   * @default "throw"
   */
  onDamage?: "throw" | "readPrefix" | "truncate";
  /**
   * How long, in milliseconds, a reader waits on a claimed frame before
   * checking whether its writer died (a non-negative number).
   * @default 250
   */
  abandonTimeoutMs?: number;
  /**
   * Open for reading only, changing nothing in the log: no file is created,
   * nothing is repaired (not even with the log to itself), no writer slot is
   * taken, segments are mapped read-only. Appending, claiming, flushing,
   * retention, named readers and cursor changes throw ERR_READ_ONLY. A frame
   * a dead writer left claimed is not sealed: readers stop in front of it
   * (`next()` returns null, `for await` waits) until another process repairs
   * or commits it. Not with `create`, nor with onDamage "truncate".
   *
   * Tailing (`for await`) parks on the doorbell in `log.meta`, which counts
   * its sleepers in that file: so the meta file is mapped writable, and only
   * that count changes while a reader sleeps (it is back to its value when
   * the reader wakes). If `log.meta` cannot be opened for writing (EACCES,
   * EROFS), it is mapped read-only and tailing polls every 50 ms instead.
   * @default false
   */
  readOnly?: boolean;
}

const OPTION_KEYS = new Set([
  "create", "mode", "segmentSize", "durability", "flushIntervalMs", "flushRecords", "crc", "retention", "verify",
  "onDamage", "abandonTimeoutMs", "readOnly",
]);
const RETENTION_KEYS = new Set(["maxSegments", "maxBytes", "maxAgeMs", "ignoreCursors"]);

/** How long the log waits for one of its lock files (open, meta) before giving up. */
export const LOCK_TIMEOUT_MS = 10_000;

/** {@link LogOptions} checked, with every default filled in. */
export interface CheckedLogOptions {
  create: boolean;
  mode: number | undefined;
  segmentSize: number;
  durability: Durability;
  flushIntervalMs: number;
  flushRecords: number;
  crc: boolean | undefined;
  retention: RetentionOptions | undefined;
  verify: "tail" | "full";
  onDamage: "throw" | "readPrefix" | "truncate";
  abandonTimeoutMs: number;
  readOnly: boolean;
}

function choice<T extends string>(name: string, value: unknown, choices: readonly T[], fallback: T): T {
  return value === undefined ? fallback : validateOneOf(value, name, choices);
}

function bool(name: string, value: unknown): boolean | undefined {
  return value === undefined ? undefined : validateBoolean(value, name);
}

function nonNegative(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0)
    throw invalidArg(`${name} must be a non-negative number, got ${String(value)}`);
  return value;
}

/** Checks `openLog()`'s options and fills in the defaults; ERR_INVALID_ARG for anything wrong. */
export function checkLogOptions(given: LogOptions | undefined): CheckedLogOptions {
  const options = validateOptions(given, OPTION_KEYS, "openLog");
  const segmentSize = options.segmentSize === undefined ? DEFAULT_SEGMENT_SIZE : checkInteger("segmentSize", options.segmentSize);
  if (segmentSize < MIN_SEGMENT_SIZE || segmentSize > MAX_SEGMENT_SIZE || segmentSize % 4096 !== 0)
    throw invalidArg(`segmentSize must be a multiple of 4096 between ${MIN_SEGMENT_SIZE} and ${MAX_SEGMENT_SIZE}, got ${segmentSize}`);
  const retention = options.retention === undefined ? undefined : checkRetention(options.retention);
  const flushRecords = options.flushRecords === undefined ? 1000 : checkInteger("flushRecords", options.flushRecords);
  if (flushRecords < 1) throw invalidArg("flushRecords must be at least 1");
  const create = bool("create", options.create) ?? false;
  const readOnly = bool("readOnly", options.readOnly) ?? false;
  const onDamage = choice("onDamage", options.onDamage, ["throw", "readPrefix", "truncate"], "throw");
  if (readOnly && create) throw invalidArg("readOnly and create cannot be combined: a read-only open creates nothing");
  if (readOnly && onDamage === "truncate") throw invalidArg('readOnly and onDamage "truncate" cannot be combined: truncating writes (use "throw" or "readPrefix")');
  return {
    create,
    mode: checkMode(options.mode),
    segmentSize,
    durability: choice("durability", options.durability, ["none", "batch", "sync"], "none"),
    flushIntervalMs: nonNegative("flushIntervalMs", options.flushIntervalMs, 10),
    flushRecords,
    crc: bool("crc", options.crc),
    retention,
    verify: choice("verify", options.verify, ["tail", "full"], "tail"),
    onDamage,
    abandonTimeoutMs: nonNegative("abandonTimeoutMs", options.abandonTimeoutMs, 250),
    readOnly,
  };
}

/** Checks a retention policy (the `retention` option, or `log.retain()`'s argument). */
export function checkRetention(given: RetentionOptions): RetentionOptions {
  const policy = validateOptions(given, RETENTION_KEYS, "openLog retention");
  const retention: RetentionOptions = {};
  if (policy.maxSegments !== undefined) {
    retention.maxSegments = checkInteger("retention.maxSegments", policy.maxSegments);
    if (retention.maxSegments < 1) throw invalidArg("retention.maxSegments must be at least 1");
  }
  if (policy.maxBytes !== undefined) retention.maxBytes = checkInteger("retention.maxBytes", policy.maxBytes);
  if (policy.maxAgeMs !== undefined) retention.maxAgeMs = nonNegative("retention.maxAgeMs", policy.maxAgeMs, 0);
  retention.ignoreCursors = bool("retention.ignoreCursors", policy.ignoreCursors) ?? false;
  return retention;
}
