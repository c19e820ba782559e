/**
 * The log's writer side and `openLog()`.
 *
 * Appending, with any number of processes at once:
 *
 * 1. read the active segment's tail hint P; write the intent (segment, P)
 *    into this process's writer slot in the meta file;
 * 2. claim the frame at P by swapping its length word from 0 to -length
 *    (compare-and-swap: the one atomic step that decides who owns P); if
 *    someone else owns it, help advance the tail past their frame and retry;
 * 3. read the frame's seq field (written by whoever advanced the tail to P),
 *    write seq + 1 into the next frame's seq field, advance the tail;
 * 4. write header fields and data, then store +length (commit), ring the
 *    doorbell if anyone waits.
 *
 * Frames are claimed only at the tail, in order, so sequence numbers are
 * contiguous (but for ABORTED frames: a seq with no record) and follow
 * positions: a total order. A record that does not fit
 * claims a PADDING frame to the segment's end instead, which seals it; its
 * seq field is the next segment's base. Every step is idempotent or decided
 * by one compare-and-swap, so a writer killed between any two steps leaves
 * something the next process finishes (see ./recovery.ts and
 * LogCore.resolveStuck).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MmapError, invalidArg, toMmapError } from "../errors.ts";
import { FrameType, alignFrame } from "../framing.ts";
import { checkInteger } from "../mapped-file.ts";
import { validateBoolean, validateOneOf, validateOptions } from "../core/validate.ts";
import { native } from "../native.ts";
import { LogCore } from "./core.ts";
import { corrupt, isCorrupt, type LogCorruptError, type LogDamage } from "./damage.ts";
import {
  CURSOR_COUNT, CURSOR_LENGTH, CURSOR_TABLE_OFFSET, DEFAULT_SEGMENT_SIZE, INDEX_INTERVAL, MAX_SEGMENT_SIZE,
  META_FILE_NAME, META_FLAG_CRC, MIN_PADDING_LENGTH, MIN_SEGMENT_SIZE, OPEN_LOCK_FILE,
  RECORD_CRC_OFFSET, RECORD_FLAG_CRC, RECORD_HEADER_LENGTH, RECORD_RESERVED_OFFSET, RECORD_SEQ_OFFSET,
  RECORD_TIMESTAMP_OFFSET, SEG_CREATED_AT_OFFSET, SEG_SIZE_OFFSET, SEG_TAIL_OFFSET, WRITER_INTENT_POS_OFFSET, readU64, segmentFileName, segmentGeometry,
  writeU64,
} from "./layout.ts";
import { FileLock, acquireOpenLock, acquireSharedOpenLock, acquireWriterSlot, downgradeOpenLock, lockDir, withLock } from "./locks.ts";
import { checkMode, dirModeFor, inDir, mapInLog, openLogDir, removeDirInLog, removeInLog, viaDir } from "./dir.ts";
import { Meta } from "./meta.ts";
import { LogReader, type LogReaderOptions } from "./reader.ts";
import { checkLog, completePadding, listSegmentBases, sealAborted, segmentPath, type LogCheck } from "./recovery.ts";
import { Segment, fsyncDir, readHeaderPage, recordCrc } from "./segment.ts";

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

/** Which old segments `retain()` drops (oldest first; never the newest). */
export interface RetentionOptions {
  /** Keep at most this many segments. */
  maxSegments?: number;
  /** Keep at most this many bytes of segment files. */
  maxBytes?: number;
  /** Drop segments whose newest record is older than this. */
  maxAgeMs?: number;
  /** Drop segments even if a durable reader has not consumed them. Default false. */
  ignoreCursors?: boolean;
}

/** Options of {@link openLog}. */
export interface LogOptions {
  /** Create the directory and the log if missing. Default false. */
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
   */
  mode?: number;
  /** Bytes per segment file, for a log being created (a multiple of 4096, 64 KiB – 1 GiB). Default 64 MiB. */
  segmentSize?: number;
  /** Default "none". See {@link Durability}. */
  durability?: Durability;
  /** "batch": longest time between a record and its msync. Default 10 ms. */
  flushIntervalMs?: number;
  /** "batch": msync once this many records are pending. Default 1000. */
  flushRecords?: number;
  /** Records appended by this process carry a CRC32C. Default: what the log was created with (false). */
  crc?: boolean;
  /** Applied after each segment this process creates, and by `retain()`. */
  retention?: RetentionOptions;
  /** On open, check every frame of "tail" (the newest segment; default) or of "full" (every segment). */
  verify?: "tail" | "full";
  /**
   * What to do when the files are damaged: "throw" (default) an ERR_CORRUPT;
   * "readPrefix": open anyway, readers deliver the records before the damage
   * and then throw it, appends throw it; "truncate": cut the log where the
   * damage starts (damaged segments are moved to `damaged-<time>/`), then
   * append from there — needs no other process to have the log open.
   * Except with "truncate", an open that finds damage changes nothing (not
   * even what a crash left): see docs/log.md, Recovery.
   */
  onDamage?: "throw" | "readPrefix" | "truncate";
  /** How long a reader waits on a claimed frame before checking whether its writer died. Default 250 ms. */
  abandonTimeoutMs?: number;
  /**
   * Open for reading only, changing nothing in the log: no file is created,
   * nothing is repaired (not even with the log to itself), no writer slot is
   * taken, segments are mapped read-only. Appending, claiming, flushing,
   * retention, named readers and cursor changes throw ERR_READ_ONLY. A frame
   * a dead writer left claimed is not sealed: readers stop in front of it
   * (`next()` returns null, `for await` waits) until another process repairs
   * or commits it. Not with `create`, nor with onDamage "truncate". Default false.
   *
   * Tailing (`for await`) parks on the doorbell in `log.meta`, which counts
   * its sleepers in that file: so the meta file is mapped writable, and only
   * that count changes while a reader sleeps (it is back to its value when
   * the reader wakes). If `log.meta` cannot be opened for writing (EACCES,
   * EROFS), it is mapped read-only and tailing polls every 50 ms instead.
   */
  readOnly?: boolean;
}

/** What opening the log found and repaired. */
export interface LogRecovery {
  /** True when this process had the log to itself on open, and so could repair it (never with readOnly). */
  exclusive: boolean;
  /** Claimed frames of dead writers sealed as ABORTED. */
  abortedFrames: number;
  /** Trailing claimed frames of dead writers cut off (their seqs never reached anyone). */
  rewoundFrames: number;
  /** The damage found, if any. */
  damage?: LogDamage;
  /** With onDamage "truncate": where the log was cut and where the damaged files went. */
  truncated?: { seq: number; movedTo: string | undefined; movedFiles: string[] };
}

const OPTION_KEYS = new Set([
  "create", "mode", "segmentSize", "durability", "flushIntervalMs", "flushRecords", "crc", "retention", "verify",
  "onDamage", "abandonTimeoutMs", "readOnly",
]);
const RETENTION_KEYS = new Set(["maxSegments", "maxBytes", "maxAgeMs", "ignoreCursors"]);
const TAIL_INDEX = SEG_TAIL_OFFSET >>> 2;
const LOCK_TIMEOUT_MS = 10_000;
/** How often a step racing with other processes' roll-overs and retention is retried before giving up. */
const RACE_ATTEMPTS = 50;
const INDEX_SHIFT = Math.log2(INDEX_INTERVAL);
/** How often a read-only log's tailing readers look for new records when its meta file is not writable. */
const READ_ONLY_POLL_MS = 50;

interface Checked {
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

function checkOptions(given: LogOptions | undefined): Checked {
  const options = validateOptions(given, OPTION_KEYS, "openLog");
  const segmentSize = options.segmentSize === undefined ? DEFAULT_SEGMENT_SIZE : checkInteger("segmentSize", options.segmentSize);
  if (segmentSize < MIN_SEGMENT_SIZE || segmentSize > MAX_SEGMENT_SIZE || segmentSize % 4096 !== 0)
    throw invalidArg(`segmentSize must be a multiple of 4096 between ${MIN_SEGMENT_SIZE} and ${MAX_SEGMENT_SIZE}, got ${segmentSize}`);
  let retention: RetentionOptions | undefined;
  if (options.retention !== undefined) {
    const r = validateOptions(options.retention, RETENTION_KEYS, "openLog retention");
    retention = {};
    if (r.maxSegments !== undefined) {
      retention.maxSegments = checkInteger("retention.maxSegments", r.maxSegments);
      if (retention.maxSegments < 1) throw invalidArg("retention.maxSegments must be at least 1");
    }
    if (r.maxBytes !== undefined) retention.maxBytes = checkInteger("retention.maxBytes", r.maxBytes);
    if (r.maxAgeMs !== undefined) retention.maxAgeMs = nonNegative("retention.maxAgeMs", r.maxAgeMs, 0);
    retention.ignoreCursors = bool("retention.ignoreCursors", r.ignoreCursors) ?? false;
  }
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

/**
 * Opens (or with `create`, creates) the log in directory `dir`.
 *
 * ```ts
 * const log = openLog("/var/lib/app/events", { create: true, durability: "batch" });
 * const seq = log.append(JSON.stringify(event));
 * await log.flush();                       // on disk
 * for await (const { seq, data } of log.reader({ name: "indexer" })) { … }
 * ```
 *
 * Opening checks the files (see {@link LogOptions.verify}) and, if no other
 * process has the log open, repairs what a crash left behind (unless
 * {@link LogOptions.readOnly}: then it changes nothing). Damage is an
 * MmapError ERR_CORRUPT whose message names the first damaged sequence
 * number and the file (also as `error.seq` and `error.path`).
 */
export function openLog(dir: string, options?: LogOptions): Log {
  if (typeof dir !== "string" || dir.length === 0) throw invalidArg("dir must be a non-empty path");
  const o = checkOptions(options);
  // The directory is opened once and checked (owner, mode); every file inside is reached through its descriptor.
  const dirs = openLogDir(dir, { create: o.create, readOnly: o.readOnly, mode: o.mode, locks: lockDir(dir) });
  let lock: FileLock | undefined;
  let exclusive = false;
  let createdMeta = false;
  let meta: Meta | undefined;
  let pollMs = 0;
  try {
    if (!o.create) Meta.require(dir);
    const lockFile = path.join(lockDir(dir), OPEN_LOCK_FILE);
    if (o.readOnly) lock = acquireSharedOpenLock(lockFile, LOCK_TIMEOUT_MS);
    else ({ lock, exclusive } = acquireOpenLock(lockFile, LOCK_TIMEOUT_MS));
    // Made under the open lock: a process that holds it exclusively (and removes
    // leftover temporary files) then knows nobody is making a file meanwhile.
    if (o.create) createdMeta = Meta.create(dir, o.segmentSize, o.crc === true ? META_FLAG_CRC : 0);
    if (o.readOnly) ({ meta, pollMs } = openMetaForReading(dir));
    else meta = Meta.open(dir);
    dirs.setFileMode(o.mode ?? (meta.mode | 0o600)); // segments this writer adds: as the log was made (and writable by their owner)
    if (exclusive) removeTempFiles(dir);
    const crc = o.crc ?? (meta.flags & META_FLAG_CRC) !== 0;
    let check = checkLog(dir, meta, { repair: exclusive, readOnly: o.readOnly, verifyCrc: true, full: o.verify === "full", crc });
    const recovery: LogRecovery = { exclusive, abortedFrames: check.repaired.aborted, rewoundFrames: check.repaired.rewound };
    if (check.damage !== undefined) {
      recovery.damage = { seq: check.damage.seq ?? 0, file: check.damage.path ?? "", reason: check.damage.message };
      if (o.onDamage === "throw") throw check.damage;
      if (o.onDamage === "truncate") {
        if (!exclusive)
          throw new MmapError("ERR_BUSY", `cannot truncate the damaged log while other processes have it open (${check.damage.message})`, { path: dir });
        recovery.truncated = truncateAtDamage(dir, meta, check);
        check = checkLog(dir, meta, { repair: true, verifyCrc: true, full: false, crc });
        if (check.damage !== undefined) throw check.damage;
      }
    }
    if (listSegmentBases(dir).length === 0 && check.damage === undefined) {
      if (o.readOnly)
        throw new MmapError("ENOENT", `the log in '${dir}' has no segment file yet (the first writer to open it creates one); a read-only open creates nothing`, { path: dir });
      const base = meta.newestBase;
      Segment.create(dir, base, meta.segmentSize, o.durability !== "none").close();
      meta.raiseNewestBase(base);
    }
    if (exclusive) {
      // A sleeper count a killed reader left; only now: an open that throws, or finds damage, changes nothing.
      if (check.damage === undefined) meta.resetDoorbellWaiters();
      meta.file.flush();
      downgradeOpenLock(lock!, LOCK_TIMEOUT_MS); // exclusive: not read-only, so there is a lock
    }
    const core = new LogCore(dir, meta, o.abandonTimeoutMs, o.durability !== "none", crc, o.readOnly, pollMs);
    core.setDamage(check.damage);
    return new Log(Token, core, lock, o, recovery, dirs.release);
  } catch (error) {
    meta?.close();
    // A create that failed (a full disk, say) leaves nothing behind that would pin a retry to
    // this attempt's options; only with the log to ourselves (nobody else can be using it).
    if (exclusive && (createdMeta || dirs.createdLocks || dirs.createdDir)) removeFailedCreate(dir, createdMeta, dirs.createdLocks, dirs.createdDir);
    lock?.close();
    dirs.release();
    throw error;
  }
}

/** Removes what a failed create made: log.meta, the lock files and locks/, the directory. Best effort. */
function removeFailedCreate(dir: string, meta: boolean, locks: boolean, made: boolean): void {
  const attempt = (fn: () => void): void => {
    try {
      fn();
    } catch {
      /* report the create's own error */
    }
  };
  if (meta) attempt(() => removeInLog(path.join(dir, META_FILE_NAME)));
  if (locks) {
    const ld = lockDir(dir);
    attempt(() => {
      for (const name of fs.readdirSync(viaDir(ld))) removeInLog(path.join(ld, name));
    });
    attempt(() => removeDirInLog(ld));
  }
  if (made) attempt(() => fs.rmdirSync(dir));
}

/**
 * The meta file of a read-only open: mapped writable (shared) so tailing can
 * park on its doorbell, or, where this process may not write it, read-only
 * (private) with tailing polling instead (a write to a private mapping would
 * detach this process from the file's doorbell and hints).
 */
function openMetaForReading(dir: string): { meta: Meta; pollMs: number } {
  try {
    return { meta: Meta.open(dir), pollMs: 0 };
  } catch (error) {
    const code = (error as MmapError).code;
    if (code !== "EACCES" && code !== "EPERM" && code !== "EROFS") throw error;
    return { meta: Meta.open(dir, true), pollMs: READ_ONLY_POLL_MS };
  }
}

/**
 * Removes the temporary files of creators that died (exclusive open only:
 * every creator holds the open lock while it makes one, so none is live).
 */
function removeTempFiles(dir: string): void {
  for (const name of inDir(dir, (r) => fs.readdirSync(r))) if (name.startsWith(".") && name.endsWith(".tmp")) removeInLog(path.join(dir, name));
}

/** Cuts the log where the damage starts (exclusive open only). */
function truncateAtDamage(dir: string, meta: Meta, check: LogCheck): NonNullable<LogRecovery["truncated"]> {
  const at = check.damageAt!;
  const seq = check.damage!.seq ?? check.nextSeq;
  const move = check.bases.filter((b) => (at.pos === undefined ? b >= at.base : b > at.base));
  let movedTo: string | undefined;
  const movedFiles: string[] = [];
  if (move.length > 0) {
    movedTo = path.join(dir, `damaged-${Date.now()}`);
    const moved = movedTo;
    const mode = dirModeFor(meta.mode);
    inDir(moved, (r) => {
      fs.mkdirSync(r, mode);
      fs.chmodSync(r, mode); // exact, like every directory the log makes
    });
    for (const b of move) {
      const name = segmentFileName(b);
      inDir(path.join(dir, name), (from) => fs.renameSync(from, `${viaDir(moved)}/${name}`));
      movedFiles.push(name);
    }
  }
  if (at.pos !== undefined) {
    const file = segmentPath(dir, at.base);
    const size = readHeaderPage(file).readUInt32LE(SEG_SIZE_OFFSET); // the header was validated by the check
    if (inDir(file, (r) => fs.lstatSync(r)).size < size) mapInLog(file, { access: "write", size }).close(); // grow back (allocated)
    const seg = Segment.open(file, at.base);
    try {
      seg.u8.fill(0, at.pos, seg.limit);
      writeU64(seg.u32, at.pos + RECORD_SEQ_OFFSET, seq);
      seg.setNextBaseHint(0);
      Atomics.store(seg.i32, TAIL_INDEX, at.pos);
      seg.file.flush();
    } finally {
      seg.close();
    }
    meta.setNewestBase(at.base);
  } else {
    const left = listSegmentBases(dir);
    if (left.length === 0) {
      // Nothing before the damage is readable: the log goes on, empty, from the damaged seq (so it opens again).
      Segment.create(dir, seq, meta.segmentSize, true).close();
      meta.setNewestBase(seq);
    } else meta.setNewestBase(left[left.length - 1]!);
  }
  // A durable reader past the cut would skip the records appended there next.
  for (let i = 0; i < CURSOR_COUNT; i++) {
    let c;
    try {
      c = meta.cursorAt(i);
    } catch {
      continue; // a malformed entry stays as it is, reported wherever it is used
    }
    if (c !== undefined && c.seq > seq) meta.setCursorSeq(i, seq);
  }
  meta.file.flush();
  fsyncDir(dir);
  return { seq, movedTo, movedFiles };
}

const Token = Symbol("Log");

/**
 * An open log. Appends are atomic and totally ordered across every process
 * appending at once; each returns its record's sequence number.
 */
export class Log {
  readonly #core: LogCore;
  readonly #openLock: FileLock | undefined;
  readonly #releaseDir: () => void;
  readonly #options: Checked;
  readonly #meta: Meta;
  readonly #readers = new Set<LogReader>();
  readonly #crcFlag: number;
  /** Largest record this log accepts (it must fit in an empty segment). */
  readonly maxRecordLength: number;
  /** What the open found and repaired. */
  readonly recovery: LogRecovery;
  /** The durability mode (see {@link Durability}). */
  readonly durability: Durability;

  #slot = -1;
  #slotLock: FileLock | undefined;
  #intentPosIndex = 0;
  #active: Segment | undefined;
  // The frame claimed and not yet committed.
  #cSeg: Segment | undefined;
  #cPos = 0;
  #cLen = 0;
  #cSeq = 0;
  #claimView: Uint8Array | undefined;
  // Group commit.
  #appended = 0;
  #durable = 0;
  #unflushed = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #flushAgain = false;
  #flushError: unknown;

  /** @internal use openLog() */
  constructor(token: symbol, core: LogCore, openLock: FileLock | undefined, options: Checked, recovery: LogRecovery, releaseDir: () => void) {
    if (token !== Token) throw new TypeError("use openLog() to open a log");
    this.#core = core;
    this.#releaseDir = releaseDir;
    this.#meta = core.meta;
    this.#openLock = openLock;
    this.#options = options;
    this.recovery = recovery;
    this.durability = options.durability;
    this.#crcFlag = core.crc ? RECORD_FLAG_CRC : 0;
    const { dataStart } = segmentGeometry(core.meta.segmentSize);
    this.maxRecordLength = ((core.meta.segmentSize - dataStart - MIN_PADDING_LENGTH) & ~7) - RECORD_HEADER_LENGTH;
    core.onCursorCommit = (index) => {
      if (this.durability === "sync") this.#meta.file.flush(...this.#meta.cursorRange(index));
      else core.metaDirty = true;
    };
  }

  /** The log's directory. */
  get dir(): string {
    return this.#core.dir;
  }

  /** True once `close()` has run. */
  get closed(): boolean {
    return this.#core.closed;
  }

  /** Opened with `readOnly`: every method that writes throws ERR_READ_ONLY. */
  get readOnly(): boolean {
    return this.#core.readOnly;
  }

  /** Damage found on open with onDamage "readPrefix"; readers stop there. */
  get damage(): LogCorruptError | undefined {
    return this.#core.damage;
  }

  /** The sequence number the next append will get (unless another process appends first). */
  get nextSeq(): number {
    this.#core.checkOpen();
    return this.#core.nextSeqFrom(this.#active);
  }

  /** The first sequence number still in the log (older segments may have been dropped by retention). */
  get firstSeq(): number {
    this.#core.checkOpen();
    return this.#core.firstSeq();
  }

  /**
   * Appends one record and returns its sequence number. `data` is copied
   * into the mapped segment; a string is stored as UTF-8.
   */
  append(data: Uint8Array | ArrayBufferView | string): number {
    this.#checkWritable("append()");
    const seq = this.#appendOne(data);
    this.#afterAppend(1);
    return seq;
  }

  /** Appends several records (each one atomic; other processes' records may fall between them). Returns their sequence numbers. */
  appendBatch(list: readonly (Uint8Array | ArrayBufferView | string)[]): number[] {
    this.#checkWritable("appendBatch()");
    if (!Array.isArray(list)) throw invalidArg("appendBatch expects an array of records");
    for (let i = 0; i < list.length; i++) this.#byteLength(list[i], i); // all valid before any is appended
    const seqs = new Array<number>(list.length);
    const sync = this.durability === "sync";
    for (let i = 0; i < list.length; i++) seqs[i] = this.#appendOne(list[i]!, !sync);
    if (sync) this.#syncTouched();
    this.#afterAppend(list.length);
    return seqs;
  }

  /**
   * Claims room for a record of `byteLength` bytes and returns it as a
   * Uint8Array into the mapped segment: write the record there, then call
   * `commit()`. Readers wait at a claimed record, so commit promptly. The
   * view is detached by `commit()`/`abort()`.
   */
  claim(byteLength: number): Uint8Array {
    this.#checkWritable("claim()");
    const n = checkInteger("byteLength", byteLength);
    if (n > this.maxRecordLength) throw this.#tooLarge(n);
    this.#claimFrame(RECORD_HEADER_LENGTH + n);
    const view = this.#cSeg!.file.window(this.#cPos + RECORD_HEADER_LENGTH, n);
    this.#claimView = view;
    return view;
  }

  /** Publishes the record claimed by `claim()`; returns its sequence number. */
  commit(): number {
    this.#core.checkOpen();
    this.#core.checkWritable("commit()");
    if (this.#cSeg === undefined) throw new MmapError("ERR_BUSY", "commit() needs a claim() first");
    this.#dropClaimView();
    const seq = this.#publish(false);
    this.#afterAppend(1);
    return seq;
  }

  /** Abandons the record claimed by `claim()`: it becomes ABORTED (skipped by readers; its seq stays used). */
  abort(): void {
    this.#core.checkOpen();
    this.#core.checkWritable("abort()");
    if (this.#cSeg === undefined) return;
    this.#dropClaimView();
    sealAborted(this.#cSeg, this.#cPos, this.#crcFlag !== 0);
    this.#cSeg = undefined;
    this.#meta.doorbell.ring();
  }

  /** Resolves when every record this log appended before the call is on disk (msync/fdatasync off the JS thread). */
  async flush(): Promise<void> {
    this.#core.checkOpen();
    this.#core.checkWritable("flush()");
    const target = this.#appended;
    for (;;) {
      if (this.#flushError !== undefined) {
        const error = this.#flushError;
        this.#flushError = undefined;
        throw toMmapError(error);
      }
      if (this.#durable >= target && !this.#core.metaDirty && this.#core.releasedDirty.size === 0 && !this.#hasDirty()) return;
      await (this.#flushing ?? this.#startFlush());
    }
  }

  /**
   * A reader. `from`: "start" (default), "end", or a sequence number. With a
   * `name`, the reader's position is durable: it resumes from its last
   * `commit()` (and `from` only applies the first time the name is used).
   */
  reader(options: LogReaderOptions = {}): LogReader {
    this.#core.checkOpen();
    const reader = new LogReader(this.#core, options, () => this.#readers.delete(reader));
    this.#readers.add(reader);
    return reader;
  }

  /** Durable readers' names and positions. */
  cursors(): { name: string; seq: number; updatedAt: number }[] {
    this.#core.checkOpen();
    return this.#meta.cursors();
  }

  /** Forgets a durable reader (so retention no longer keeps records for it). True if it existed. */
  deleteCursor(name: string): boolean {
    this.#core.checkOpen();
    this.#core.checkWritable("deleteCursor()");
    Meta.cursorName(name);
    return withLock(path.join(lockDir(this.dir), "meta.lock"), LOCK_TIMEOUT_MS, () => {
      // Slot by slot: a malformed slot elsewhere does not keep a good one from
      // being deleted, and one with a readable name but a damaged seq can be.
      for (let i = 0; i < CURSOR_COUNT; i++) {
        if (this.#meta.cursorNameAt(i) !== name) continue;
        this.#meta.removeCursor(i);
        return true;
      }
      return false;
    });
  }

  /**
   * Drops old segments by the given policy (default: the log's `retention`
   * option): oldest first, never the newest, and never one holding records
   * a durable reader has not consumed unless `ignoreCursors`. Readers that
   * have a dropped segment mapped keep reading it. Returns the files dropped.
   */
  retain(policy: RetentionOptions | undefined = this.#options.retention): string[] {
    this.#core.checkOpen();
    this.#core.checkWritable("retain()");
    if (policy === undefined) return [];
    const p = checkOptions({ retention: policy }).retention!;
    const bases = listSegmentBases(this.dir);
    if (bases.length <= 1) return [];
    this.#meta.raiseNewestBase(bases[bases.length - 1]!); // so no writer re-creates a dropped segment
    let minCursor = Infinity;
    if (p.ignoreCursors !== true) {
      const cursors = this.#meta.cursors(); // ERR_CORRUPT for a malformed one: it could need any record
      minCursor = Math.min(Infinity, ...cursors.map((c) => c.seq));
      const ahead = cursors.find((c) => c.seq > bases[bases.length - 1]!);
      if (ahead !== undefined) {
        // Past the newest segment's base: it must not be past the end either (a damaged cursor would let everything go).
        const end = this.#core.end();
        this.#core.release(end.seg);
        const bad = cursors.find((c) => c.seq > end.seq);
        if (bad !== undefined) throw corrupt(undefined, this.#meta.path, `durable reader "${bad.name}" is at seq ${bad.seq}, past the end of the log (${end.seq}): its cursor is damaged`);
      }
    }
    const sizes = bases.map((b) => fileSize(segmentPath(this.dir, b)));
    let count = bases.length;
    let bytes = sizes.reduce((a, b) => a + b, 0);
    const now = Date.now();
    const dropped: string[] = [];
    for (let i = 0; i < bases.length - 1; i++) {
      const over =
        (p.maxSegments !== undefined && count > p.maxSegments) ||
        (p.maxBytes !== undefined && bytes > p.maxBytes) ||
        // every record of segment i is older than the next segment's creation
        (p.maxAgeMs !== undefined && createdAt(segmentPath(this.dir, bases[i + 1]!)) < now - p.maxAgeMs);
      if (!over || bases[i + 1]! > minCursor) break;
      const file = segmentPath(this.dir, bases[i]!);
      removeInLog(file);
      this.#core.forget(bases[i]!);
      dropped.push(file);
      count--;
      bytes -= sizes[i]!;
    }
    if (dropped.length > 0 && this.durability !== "none") fsyncDir(this.dir);
    return dropped;
  }

  /**
   * Closes the log and its readers. A claimed record not committed is
   * aborted; with durability "batch" or "sync", pending writes are flushed
   * first. Idempotent.
   */
  close(): void {
    if (this.#core.closed) return;
    if (this.#cSeg !== undefined) this.abort();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.durability !== "none") {
      try {
        for (const seg of this.#core.mapped()) if (seg.dirtyHi > 0) seg.file.flush(seg.dirtyLo, seg.dirtyHi - seg.dirtyLo);
        if (this.#core.metaDirty) this.#meta.file.flush(CURSOR_TABLE_OFFSET, CURSOR_COUNT * CURSOR_LENGTH);
      } catch {
        /* closing anyway: the data is in the page cache */
      }
    }
    for (const reader of [...this.#readers]) reader.close();
    this.#core.closed = true;
    // Wake this process's tailing readers so they see the close (read-only: without writing the doorbell).
    if (this.readOnly) this.#meta.wakeWaiters();
    else this.#meta.doorbell.ringAlways();
    this.#core.closeAll();
    this.#active = undefined;
    this.#meta.close();
    this.#slotLock?.close();
    this.#openLock?.close();
    this.#releaseDir();
  }

  /** close(), for `using log = openLog(…)`. */
  /** `using log = openLog(…)` closes it at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }

  // ---- appending ---------------------------------------------------------------

  #checkWritable(what: string): void {
    this.#core.checkOpen();
    this.#core.checkWritable(what);
    if (this.#core.damage !== undefined) throw this.#core.damage;
    if (this.#cSeg !== undefined) throw new MmapError("ERR_BUSY", "a claimed record is not committed yet: call commit() or abort() first");
  }

  #tooLarge(n: number): MmapError {
    return new MmapError("ERR_TOO_LARGE", `a record of ${n} bytes does not fit in a segment (at most ${this.maxRecordLength} bytes with segmentSize ${this.#meta.segmentSize})`, { path: this.dir });
  }

  #byteLength(data: unknown, index?: number): number {
    let n: number;
    if (typeof data === "string") n = data.length <= 64 && isAscii(data) ? data.length : Buffer.byteLength(data, "utf8");
    else if (ArrayBuffer.isView(data)) n = data.byteLength;
    else throw invalidArg(`a record must be a Uint8Array, another ArrayBufferView or a string, got ${data === null ? "null" : typeof data}${index === undefined ? "" : ` (at index ${index})`}`);
    if (n > this.maxRecordLength) throw this.#tooLarge(n);
    return n;
  }

  #appendOne(data: Uint8Array | ArrayBufferView | string, deferSync = false): number {
    const n = this.#byteLength(data);
    this.#claimFrame(RECORD_HEADER_LENGTH + n);
    const seg = this.#cSeg!;
    const at = this.#cPos + RECORD_HEADER_LENGTH;
    if (typeof data === "string") {
      if (n > 0) seg.buf.write(data, at, n, "utf8");
    } else if (n > 0) {
      const src = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, n);
      if (n <= 16) for (let i = 0; i < n; i++) seg.u8[at + i] = src[i]!;
      else seg.u8.set(src, at);
    }
    return this.#publish(deferSync);
  }

  #publish(deferSync: boolean): number {
    const seg = this.#cSeg!;
    const P = this.#cPos;
    const L = this.#cLen;
    const u32 = seg.u32;
    u32[(P + 4) >>> 2] = FrameType.DATA | (this.#crcFlag << 16);
    u32[(P + RECORD_RESERVED_OFFSET) >>> 2] = 0;
    seg.f64[(P + RECORD_TIMESTAMP_OFFSET) >>> 3] = Date.now();
    if (this.#crcFlag !== 0) u32[(P + RECORD_CRC_OFFSET) >>> 2] = recordCrc(seg.buffer, P, L);
    // Commit: the last store, atomic and ordered after every byte above. A
    // compare-and-swap from -L (as fast here as a release store, and it
    // would refuse a frame someone sealed: only possible if we were dead).
    if (Atomics.compareExchange(seg.i32, P >>> 2, -L, L) !== -L) {
      this.#cSeg = undefined;
      throw corrupt(this.#cSeq, seg.path, `the claimed frame at byte ${P} was changed by another process before its commit`);
    }
    this.#cSeg = undefined;
    // Sparse index: this frame covers the index boundaries in [P, P + aligned length).
    const rel = P - seg.dataStart;
    const endRel = rel + ((L + 7) & ~7);
    const indexBase = seg.indexStart >>> 2;
    for (let k = (rel + INDEX_INTERVAL - 1) >>> INDEX_SHIFT; k << INDEX_SHIFT < endRel; k++) u32[indexBase + k] = P;
    this.#meta.doorbell.ring();
    const dirtyEnd = P + ((L + 7) & ~7) + MIN_PADDING_LENGTH;
    if (this.durability === "sync" && !deferSync) seg.file.flush(P, dirtyEnd - P);
    else seg.touch(P, dirtyEnd);
    return this.#cSeq;
  }

  #afterAppend(count: number): void {
    this.#appended += count;
    if (this.durability === "sync") {
      this.#durable = this.#appended;
      return;
    }
    if (this.durability !== "batch") return;
    this.#unflushed += count;
    if (this.#unflushed >= this.#options.flushRecords) void this.#startFlush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.#startFlush();
      }, this.#options.flushIntervalMs);
      this.#timer.unref();
    }
  }

  /** Writer slot: taken at the first append and kept until close. */
  #ensureSlot(): void {
    const { slot, lock } = acquireWriterSlot(this.dir);
    this.#slot = slot;
    this.#slotLock = lock;
    this.#meta.initSlot(slot);
    this.#intentPosIndex = (this.#meta.slotOffset(slot) + WRITER_INTENT_POS_OFFSET) >>> 2;
  }

  #activeSegment(): Segment {
    if (this.#slot < 0) this.#ensureSlot();
    let seg: Segment | undefined;
    for (let attempt = 1; seg === undefined; attempt++) {
      const end = this.#core.end();
      seg = end.seg ?? this.#core.acquire(end.seq) ?? this.#createSegment(end.seq);
      // Undefined: the log moved past end.seq meanwhile (other processes rolled over and dropped it): look again.
      if (seg === undefined && attempt >= RACE_ATTEMPTS) throw new MmapError("ENOENT", `the log's newest segment keeps disappearing '${this.dir}'`, { path: this.dir });
    }
    this.#meta.raiseNewestBase(seg.base);
    this.#meta.setIntentBase(this.#slot, seg.base);
    this.#active = seg;
    return seg;
  }

  /**
   * Creates (or, if another process won, opens) the segment starting at
   * `base`; undefined if the log has moved past it: the winner's file was
   * already dropped by retention, or the file just linked re-created a
   * segment that was sealed and dropped while this process looked (a newer
   * segment exists, so `base` was sealed, yet the file is empty): it is
   * removed again, before anyone can have claimed a frame in it.
   */
  #createSegment(base: number): Segment | undefined {
    let seg: Segment;
    try {
      seg = Segment.create(this.dir, base, this.#meta.segmentSize, this.#core.durable);
    } catch (error) {
      if ((error as MmapError).code === "ENOENT") return undefined;
      throw error;
    }
    if (this.#meta.newestBase > base && seg.tail === seg.dataStart && Atomics.load(seg.i32, seg.dataStart >>> 2) === 0) {
      seg.close();
      removeInLog(segmentPath(this.dir, base));
      return undefined;
    }
    return this.#core.adopt(seg);
  }

  /** Claims a frame of length L at the tail; sets #cSeg/#cPos/#cSeq/#cLen. */
  #claimFrame(L: number): void {
    const AL = (L + 7) & ~7;
    let seg = this.#active ?? this.#activeSegment();
    const metaU32 = this.#meta.u32;
    for (;;) {
      const i32 = seg.i32;
      const size = seg.size;
      const P = Atomics.load(i32, TAIL_INDEX);
      if (P === size) {
        seg = this.#advance(seg);
        continue;
      }
      if (P < seg.dataStart || P + MIN_PADDING_LENGTH > size || (P & 7) !== 0) throw corrupt(undefined, seg.path, `tail ${P} is out of range`);
      if (P + AL + MIN_PADDING_LENGTH <= size) {
        // The intent, before the claim: proves ownership to anyone checking. A
        // plain store suffices: the compare-and-swap below is a full barrier.
        metaU32[this.#intentPosIndex] = P;
        const r = Atomics.compareExchange(i32, P >>> 2, 0, -L);
        if (r === 0) {
          const seq = readU64(seg.u32, P + RECORD_SEQ_OFFSET);
          if (seq < seg.base || seq - seg.base > (P - seg.dataStart) / RECORD_HEADER_LENGTH)
            throw corrupt(undefined, seg.path, `the frame at byte ${P} has an impossible seq ${seq}`);
          writeU64(seg.u32, P + AL + RECORD_SEQ_OFFSET, seq + 1);
          Atomics.compareExchange(i32, TAIL_INDEX, P, P + AL);
          this.#cSeg = seg;
          this.#cPos = P;
          this.#cLen = L;
          this.#cSeq = seq;
          seg.prefaultAhead(P + AL);
          return;
        }
        this.#help(seg, P, r);
      } else {
        const r = Atomics.compareExchange(i32, P >>> 2, 0, -(size - P));
        if (r === 0) {
          this.#seal(seg, P, size - P);
          seg = this.#advance(seg);
          continue;
        }
        this.#help(seg, P, r);
      }
    }
  }

  /** Moves the tail past a frame someone else claimed at P (every helper computes the same). */
  #help(seg: Segment, P: number, r: number): void {
    const n = r < 0 ? -r : r;
    if (n < MIN_PADDING_LENGTH || n > seg.size - P) throw corrupt(undefined, seg.path, `frame length ${r} at byte ${P} is out of range`);
    const end = P + alignFrame(n);
    if (end === seg.size) {
      this.#seal(seg, P, n);
      return;
    }
    if (n < RECORD_HEADER_LENGTH || end + MIN_PADDING_LENGTH > seg.size) throw corrupt(undefined, seg.path, `frame length ${r} at byte ${P} is out of range`);
    const seq = readU64(seg.u32, P + RECORD_SEQ_OFFSET);
    writeU64(seg.u32, end + RECORD_SEQ_OFFSET, seq + 1);
    Atomics.compareExchange(seg.i32, TAIL_INDEX, P, end);
  }

  /** Completes the PADDING frame at P and seals the segment; anyone may (and will) do it. */
  #seal(seg: Segment, P: number, n: number): void {
    completePadding(seg, P, n);
    const next = readU64(seg.u32, P + RECORD_SEQ_OFFSET);
    if (next <= seg.base || next - seg.base > (P - seg.dataStart) / RECORD_HEADER_LENGTH)
      throw corrupt(undefined, seg.path, `the PADDING frame at byte ${P} names an impossible next segment ${next}`);
    seg.setNextBaseHint(next);
    if (this.#core.durable) seg.file.flush(0, seg.dataStart);
    Atomics.compareExchange(seg.i32, TAIL_INDEX, P, seg.size);
    this.#meta.doorbell.ring();
  }

  /** The writer's next segment after the sealed `seg`: opened, or created by whoever gets there first. */
  #advance(seg: Segment): Segment {
    const next = seg.nextBaseHint;
    if (next <= seg.base) throw corrupt(undefined, seg.path, "the segment is sealed but names no next segment");
    let target: Segment | undefined;
    let created = false;
    for (let attempt = 1; target === undefined; attempt++) {
      const newest = this.#meta.newestBase;
      if (newest > next) {
        // The log moved on while this writer was idle; never re-create a segment retention dropped.
        target = this.#core.acquire(newest);
        if (target === undefined) {
          const bases = listSegmentBases(this.dir);
          target = bases.length > 0 ? this.#core.acquire(bases[bases.length - 1]!) : undefined;
        }
      } else {
        target = this.#core.acquire(next);
        if (target === undefined) {
          target = this.#createSegment(next);
          created = target !== undefined;
        }
        if (target !== undefined) {
          this.#meta.raiseNewestBase(next);
          this.#meta.doorbell.ring();
        }
      }
      if (target === undefined && attempt >= RACE_ATTEMPTS) throw new MmapError("ENOENT", `the log's newest segment is missing '${this.dir}'`, { path: this.dir });
    }
    if (target.base <= seg.base) {
      this.#core.release(target);
      throw corrupt(next, segmentPath(this.dir, next), `the segment after ${segmentFileName(seg.base)} is missing`);
    }
    this.#core.release(seg);
    this.#active = target;
    this.#meta.setIntentBase(this.#slot, target.base);
    if (created && this.#options.retention !== undefined) {
      try {
        this.retain();
      } catch (error) {
        // A malformed cursor: nothing is dropped (it could need any record); log.retain() and readers report it.
        if (!isCorrupt(error)) throw error;
      }
    }
    return target;
  }

  #syncTouched(): void {
    for (const seg of this.#core.mapped()) {
      if (seg.dirtyHi === 0) continue;
      seg.file.flush(seg.dirtyLo, seg.dirtyHi - seg.dirtyLo);
      seg.dirtyLo = Infinity;
      seg.dirtyHi = 0;
    }
  }

  #hasDirty(): boolean {
    for (const seg of this.#core.mapped()) if (seg.dirtyHi > 0) return true;
    return false;
  }

  #dropClaimView(): void {
    if (this.#claimView !== undefined) native.detach(this.#claimView.buffer as ArrayBuffer);
    this.#claimView = undefined;
  }

  /** Starts one group commit of everything written so far (or marks that another must follow the running one). */
  #startFlush(): Promise<void> {
    if (this.#flushing !== undefined) {
      this.#flushAgain = true;
      return this.#flushing;
    }
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const target = this.#appended;
    const jobs: Promise<void>[] = [];
    for (const seg of this.#core.mapped()) {
      if (seg.dirtyHi === 0) continue;
      jobs.push(seg.file.flushAsync(seg.dirtyLo, seg.dirtyHi - seg.dirtyLo));
      seg.dirtyLo = Infinity;
      seg.dirtyHi = 0;
    }
    for (const file of this.#core.releasedDirty) jobs.push(datasync(file));
    this.#core.releasedDirty.clear();
    if (this.#core.metaDirty) {
      this.#core.metaDirty = false;
      jobs.push(this.#meta.file.flushAsync(CURSOR_TABLE_OFFSET, CURSOR_COUNT * CURSOR_LENGTH));
    }
    this.#unflushed = 0;
    const run = Promise.all(jobs).then(
      () => {
        if (this.#durable < target) this.#durable = target;
      },
      (error: unknown) => {
        this.#flushError = error;
      },
    );
    this.#flushing = run.finally(() => {
      this.#flushing = undefined;
      if (this.#flushAgain && !this.#core.closed) {
        this.#flushAgain = false;
        void this.#startFlush();
      }
    });
    return this.#flushing;
  }
}

async function datasync(file: string): Promise<void> {
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(viaDir(file), fs.constants.O_RDWR | fs.constants.O_NOFOLLOW);
    await handle.datasync();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error; // dropped by retention: nothing to keep
  } finally {
    await handle?.close();
  }
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

function fileSize(file: string): number {
  try {
    return fs.lstatSync(viaDir(file)).size;
  } catch {
    return 0;
  }
}

/** A segment's creation time, from its header (read, not mapped). */
function createdAt(file: string): number {
  try {
    return readHeaderPage(file).readDoubleLE(SEG_CREATED_AT_OFFSET);
  } catch {
    return Infinity;
  }
}
