/**
 * The `Log` class and `openLog()`: a thin facade over the parts of an open
 * log, each in its own file:
 *
 * - ./options.ts: the options, their defaults and their validation;
 * - ./open.ts: opening, creating, checking and repairing;
 * - ./appender.ts: the writer side (claim, help, seal, advance, publish);
 * - ./group-commit.ts: durability "batch" and `flush()`;
 * - ./retention.ts: dropping old segments;
 * - ./core.ts: the state the writer and the readers (./reader.ts) share.
 */
import * as path from "node:path";
import { MmapError, invalidArg } from "../core/errors.ts";
import { checkInteger } from "../core/validate.ts";
import { Appender } from "./appender.ts";
import type { LogCore } from "./core.ts";
import { isCorrupt, type LogCorruptError } from "./damage.ts";
import { GroupCommit } from "./group-commit.ts";
import { CURSOR_COUNT } from "./layout.ts";
import { FileLock, lockDir, withLock } from "./locks.ts";
import { Meta } from "./meta.ts";
import { openLogFiles, type LogRecovery, type OpenedLog } from "./open.ts";
import { LOCK_TIMEOUT_MS, checkLogOptions, checkRetention, type CheckedLogOptions, type Durability, type LogOptions, type RetentionOptions } from "./options.ts";
import { LogReader, type LogReaderOptions } from "./reader.ts";
import { dropOldSegments } from "./retention.ts";

export type { Durability, LogOptions, RetentionOptions } from "./options.ts";
export type { LogRecovery } from "./open.ts";

const Token = Symbol("Log");

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
 *
 * @throws {@link MmapError} `ERR_INVALID_ARG` for a bad option;
 * `ENOENT` when there is no log (and no `create`); `ERR_CORRUPT` for damage
 * (see {@link LogOptions.onDamage}); `ERR_BUSY` when another process holds
 * the log in a way this open cannot share (a repair that does not finish
 * in time); `ERR_INSECURE` for a directory or file another user could
 * change, or a symbolic link inside the log; `ERR_UNSUPPORTED` without
 * /proc; `EACCES`/`EPERM`/`EROFS` when a write is needed and not allowed;
 * and the errno of any other failed system call, with `path`.
 */
export function openLog(dir: string, options?: LogOptions): Log {
  if (typeof dir !== "string" || dir.length === 0) throw invalidArg("dir must be a non-empty path");
  const checked = checkLogOptions(options);
  return new Log(Token, openLogFiles(dir, checked), checked);
}

/**
 * An open log. Appends are atomic and totally ordered across every process
 * appending at once; each returns its record's sequence number.
 */
export class Log {
  readonly #core: LogCore;
  readonly #openLock: FileLock | undefined;
  readonly #releaseDir: () => void;
  readonly #options: CheckedLogOptions;
  readonly #meta: Meta;
  readonly #readers = new Set<LogReader>();
  readonly #appender: Appender;
  readonly #groupCommit: GroupCommit;
  /** Largest record this log accepts (it must fit in an empty segment). */
  readonly maxRecordLength: number;
  /** What the open found and repaired. */
  readonly recovery: LogRecovery;
  /** The durability mode (see {@link Durability}). */
  readonly durability: Durability;

  /** @internal use openLog() */
  constructor(token: symbol, opened: OpenedLog, options: CheckedLogOptions) {
    if (token !== Token) throw new TypeError("use openLog() to open a log");
    const core = opened.core;
    this.#core = core;
    this.#releaseDir = opened.releaseDir;
    this.#meta = core.meta;
    this.#openLock = opened.openLock;
    this.#options = options;
    this.recovery = opened.recovery;
    this.durability = options.durability;
    this.#appender = new Appender(core, options.durability, () => this.#retainAfterRollOver());
    this.#groupCommit = new GroupCommit(core, options);
    this.maxRecordLength = this.#appender.maxRecordLength;
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
    return this.#appender.nextSeq();
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
    const seq = this.#appender.append(data);
    this.#groupCommit.appended(1);
    return seq;
  }

  /** Appends several records (each one atomic; other processes' records may fall between them). Returns their sequence numbers. */
  appendBatch(list: readonly (Uint8Array | ArrayBufferView | string)[]): number[] {
    this.#checkWritable("appendBatch()");
    if (!Array.isArray(list)) throw invalidArg("appendBatch expects an array of records");
    for (let i = 0; i < list.length; i++) this.#appender.byteLength(list[i], i); // all valid before any is appended
    const seqs = new Array<number>(list.length);
    const sync = this.durability === "sync";
    for (let i = 0; i < list.length; i++) seqs[i] = this.#appender.append(list[i]!, !sync);
    if (sync) this.#groupCommit.syncTouched();
    this.#groupCommit.appended(list.length);
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
    return this.#appender.claim(checkInteger("byteLength", byteLength));
  }

  /** Publishes the record claimed by `claim()`; returns its sequence number. */
  commit(): number {
    this.#core.checkOpen();
    this.#core.checkWritable("commit()");
    if (!this.#appender.claimed) throw new MmapError("ERR_BUSY", "commit() needs a claim() first");
    const seq = this.#appender.commit();
    this.#groupCommit.appended(1);
    return seq;
  }

  /** Abandons the record claimed by `claim()`: it becomes ABORTED (skipped by readers; its seq stays used). */
  abort(): void {
    this.#core.checkOpen();
    this.#core.checkWritable("abort()");
    this.#appender.abort();
  }

  /** Resolves when every record this log appended before the call is on disk (msync/fdatasync off the JS thread). */
  async flush(): Promise<void> {
    this.#core.checkOpen();
    this.#core.checkWritable("flush()");
    await this.#groupCommit.flush();
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
    return dropOldSegments(this.#core, checkRetention(policy), this.durability);
  }

  /**
   * Closes the log and its readers. A claimed record not committed is
   * aborted; with durability "batch" or "sync", pending writes are flushed
   * first. Idempotent.
   */
  close(): void {
    if (this.#core.closed) return;
    if (this.#appender.claimed) this.abort();
    this.#groupCommit.close();
    for (const reader of [...this.#readers]) reader.close();
    this.#core.markClosed();
    // Wake this process's tailing readers so they see the close (read-only: without writing the doorbell).
    if (this.readOnly) this.#meta.wakeWaiters();
    else this.#meta.doorbell.ringAlways();
    this.#core.closeAll();
    this.#meta.close();
    this.#appender.close(); // the writer slot: free for others once this process no longer maps the meta file
    this.#openLock?.close();
    this.#releaseDir();
  }

  /** `using log = openLog(…)` closes it at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }

  #checkWritable(what: string): void {
    this.#core.checkOpen();
    this.#core.checkWritable(what);
    if (this.#core.damage !== undefined) throw this.#core.damage;
    if (this.#appender.claimed) throw new MmapError("ERR_BUSY", "a claimed record is not committed yet: call commit() or abort() first");
  }

  /** After this process created a segment: the log's retention option applies. */
  #retainAfterRollOver(): void {
    if (this.#options.retention === undefined) return;
    try {
      this.retain();
    } catch (error) {
      // A malformed cursor: nothing is dropped (it could need any record); log.retain() and readers report it.
      if (!isCorrupt(error)) throw error;
    }
  }
}
