/**
 * Reading a log: `next()` walks committed frames, validating each one (the
 * files are untrusted), skipping ABORTED frames and crossing segments at
 * their PADDING; `for await` and `waitNext()` wait for appends with the
 * channel's strategies (../core/wait.ts), polling the frame at the reader's
 * position and sleeping on the meta file's doorbell (a shared futex).
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import { MmapError, invalidArg } from "../core/errors.ts";
import { FrameType } from "../core/framing.ts";
import { checkInteger, validateBoolean, validateInteger, validateOptions } from "../core/validate.ts";
import { Doorbell, checkStrategy, timeoutOf, type WaitStrategy } from "../core/wait.ts";
import { type LogCore, type Position } from "./core.ts";
import { checkClaimed, corrupt } from "./damage.ts";
import {
  KNOWN_RECORD_FLAGS, META_DOORBELL_SEQ_OFFSET, META_DOORBELL_WAITERS_OFFSET, MIN_PADDING_LENGTH, RECORD_CRC_OFFSET, RECORD_FLAG_CRC,
  RECORD_HEADER_LENGTH, RECORD_SEQ_OFFSET, RECORD_TIMESTAMP_OFFSET,
} from "./layout.ts";
import { withLock, lockDir } from "./locks.ts";
import { Meta } from "./meta.ts";
import { LOCK_TIMEOUT_MS } from "./options.ts";
import { recordCrc, type Segment } from "./segment.ts";
import * as path from "node:path";

/** One record: its sequence number, its data, and when it was appended. */
export interface LogRecord {
  seq: number;
  /** A zero-copy view into the mapped segment: valid until the reader's next call (copy it to keep it). */
  data: Uint8Array;
  /** When the record was appended (milliseconds since the epoch, from the writer's clock). */
  timestamp: number;
}

/** Options of {@link Log.reader}. */
export interface LogReaderOptions {
  /**
   * Where to start: "start" (the oldest record kept), "end" (only new
   * records), or a sequence number. A named reader with a committed cursor
   * starts at its cursor instead.
   * @default "start"
   */
  from?: "start" | "end" | number;
  /**
   * Makes the position durable under this name (up to 40 bytes of UTF-8): see {@link LogReader.commit}.
   * @default undefined (an anonymous reader: its position is not kept)
   */
  name?: string;
  /**
   * Check the CRC32C of records that carry one.
   * @default true
   */
  verifyCrc?: boolean;
  /**
   * Ends `for await` iteration with an ERR_ABORTED error when it fires.
   * @default undefined (iteration ends only when the reader or log closes)
   */
  signal?: AbortSignal;
  /**
   * How `for await` (`tail()`) and `waitNext()` wait for the next record:
   * the channel's strategies (docs/channel.md, "Waiting").
   * - `"spin"`: polls the log (lowest latency, a CPU core at 100%); `for await`
   *   lets the event loop run between slices of 0.1 ms of polling;
   * - `"yield"`: the same, with sched_yield() between polls;
   * - `"futex"`: polls `spin` times, then sleeps on the log's doorbell;
   * - `"adaptive"`: polls as long as polling has been paying off for this
   *   reader (at most about 0.1 ms, during which `for await` holds the event
   *   loop), then sleeps: a reader of a busy log catches records without a
   *   wake-up, one of a quiet log sleeps almost at once.
   * @default "adaptive"
   * @throws {MmapError} ERR_INVALID_ARG for any other value.
   */
  strategy?: WaitStrategy;
  /**
   * Polls before a wait sleeps ("futex"), or the most ("adaptive").
   * @default 2000 for waitNext(), 200 for `for await` ("futex"); about 0.1 ms of polls ("adaptive")
   * @throws {MmapError} ERR_INVALID_ARG unless an integer from 0 to 1e9.
   */
  spin?: number;
}

/** Options of {@link LogReader.waitNext}. */
export interface WaitNextOptions {
  /**
   * Milliseconds to wait for a record; Infinity waits until one comes.
   * @default Infinity
   */
  timeoutMs?: number;
}

const READER_KEYS = new Set(["from", "name", "verifyCrc", "signal", "strategy", "spin"]);
/** With "spin" or "yield", `for await` polls this long between turns of the event loop (ms). */
const POLL_SLICE_MS = 0.1;

/**
 * A reader of a log. Any number of readers, in any number of processes, read
 * the same log independently. Get one from `log.reader()`; close it when done
 * (closing the log closes its readers).
 */
export class LogReader {
  /** The durable name, if any. */
  readonly name: string | undefined;
  /** How this reader waits for appends (the `strategy` option). */
  readonly strategy: WaitStrategy;
  readonly #core: LogCore;
  readonly #spin: number | undefined;
  /** The log's doorbell, with this reader's own adaptive polling budget. */
  #bell: Doorbell | undefined;
  readonly #verify: boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #onClose: () => void;
  /** The current segment; undefined while the segment starting at #seq is not created yet. */
  #seg: Segment | undefined;
  #pos = 0;
  /** The seq of the frame at #pos: the next record this reader returns (or skips, if ABORTED). */
  #seq = 0;
  #cursor = -1;
  #closed = false;
  #skipped = 0;

  /** @internal use log.reader() */
  constructor(core: LogCore, options: LogReaderOptions, onClose: () => void) {
    validateOptions(options, READER_KEYS, "reader");
    const { from = "start", name, verifyCrc, signal, spin } = options;
    this.strategy = checkStrategy(options.strategy, "adaptive");
    this.#spin = spin === undefined ? undefined : validateInteger(spin, "spin", 0, 1e9);
    if (from !== "start" && from !== "end" && typeof from !== "number")
      throw invalidArg(`from must be "start", "end" or a sequence number, got ${JSON.stringify(from)}`);
    if (typeof from === "number") checkInteger("from", from);
    if (verifyCrc !== undefined) validateBoolean(verifyCrc, "verifyCrc");
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArg("signal must be an AbortSignal");
    if (name !== undefined) core.checkWritable("a named reader (its position is kept in the log's meta file)");
    const nameBytes = name === undefined ? undefined : Meta.cursorName(name);
    this.#core = core;
    this.#verify = verifyCrc ?? true;
    this.#signal = signal;
    this.#onClose = onClose;
    this.name = name;

    const meta = core.meta;
    const existing = name === undefined ? -1 : meta.findCursor(name);
    if (existing >= 0) {
      this.#cursor = existing;
      this.#resume(meta.cursorSeq(existing));
      return;
    }
    this.#set(from === "start" ? core.locate(core.firstSeq()) : from === "end" ? core.end() : core.locate(from));
    if (name !== undefined && nameBytes !== undefined) {
      const lockFile = path.join(lockDir(core.dir), "meta.lock");
      const [index, created] = withLock(lockFile, LOCK_TIMEOUT_MS, (): [number, boolean] => {
        const again = meta.findCursor(name);
        if (again >= 0) return [again, false];
        return [meta.addCursor(nameBytes, this.#seq), true];
      });
      this.#cursor = index;
      if (!created) this.#resume(meta.cursorSeq(index)); // another process created it meanwhile
      else core.cursorCommitted(index);
    }
  }

  /** The sequence number of the next record `next()` returns (or of the end of the log). */
  get position(): number {
    return this.#seq;
  }

  /**
   * Sequence numbers this reader has passed without a record: ABORTED frames
   * (a writer called `abort()`, or was killed between claiming a record and
   * committing it; see "Gaps" in docs/log.md for exactly when). A gap shows
   * as a jump in `seq` from one record to the next.
   */
  get skipped(): number {
    return this.#skipped;
  }

  /** True once the reader (or its log) is closed. */
  get closed(): boolean {
    return this.#closed || this.#core.closed;
  }

  /**
   * The next record, or null at the end of what has been committed (or at
   * a record still being written). Never blocks; `for await` waits.
   */
  next(): LogRecord | null {
    if (this.#closed) throw new MmapError("ERR_CLOSED", "the reader is closed");
    const core = this.#core;
    if (core.closed) throw new MmapError("ERR_CLOSED", "the log is closed", { path: core.dir });
    let seg = this.#seg;
    for (;;) {
      if (this.#seq >= core.damageSeq) throw core.damage!;
      if (seg === undefined) {
        seg = core.enter(this.#seq);
        if (seg === undefined) return null;
        this.#seg = seg;
        this.#pos = seg.dataStart;
      }
      const pos = this.#pos;
      if (pos + MIN_PADDING_LENGTH > seg.limit) throw corrupt(this.#seq, seg.path, `the file ends at byte ${seg.limit} (truncated)`);
      const lengthWord = Atomics.load(seg.i32, pos >>> 2);
      if (lengthWord < 0) {
        checkClaimed(seg, pos, lengthWord, this.#seq); // a damaged length word is no frame to wait for
        return null;
      }
      if (lengthWord === 0) {
        if (isHole(core, seg, pos)) {
          if (pos === seg.dataStart && seg.tail === pos)
            // Never written to, and the log moved on: a segment retention dropped, re-created by a slow appender (see isRecreated).
            throw new MmapError("ERR_OUT_OF_RANGE", `records from seq ${seg.base} are no longer in the log (dropped by retention); seek to log.firstSeq or later`, { path: core.dir });
          throw corrupt(this.#seq, seg.path, `a zero length word at byte ${pos}, behind the segment's tail (records are missing)`);
        }
        return null;
      }
      const seq = this.#seq;
      if (lengthWord < MIN_PADDING_LENGTH || lengthWord > seg.size - pos) throw corrupt(seq, seg.path, `frame length ${lengthWord} at byte ${pos} is out of range`);
      const end = pos + ((lengthWord + 7) & ~7);
      if (end > seg.limit) throw corrupt(seq, seg.path, `the file ends inside the record at byte ${pos} (truncated)`);
      const u32 = seg.u32;
      const storedSeq = u32[(pos + RECORD_SEQ_OFFSET) >>> 2]! + u32[(pos + RECORD_SEQ_OFFSET + 4) >>> 2]! * 0x1_0000_0000;
      if (storedSeq !== seq) throw corrupt(seq, seg.path, `the frame at byte ${pos} says seq ${storedSeq}`);
      const typeAndFlags = u32[(pos + 4) >>> 2]!;
      const type = typeAndFlags & 0xffff;
      if (type === FrameType.DATA) {
        if (lengthWord < RECORD_HEADER_LENGTH || end + MIN_PADDING_LENGTH > seg.size) throw corrupt(seq, seg.path, `record length ${lengthWord} at byte ${pos} is out of range`);
        const flags = typeAndFlags >>> 16;
        if ((flags & ~KNOWN_RECORD_FLAGS) !== 0) throw corrupt(seq, seg.path, `unknown record flags 0x${flags.toString(16)} at byte ${pos}`);
        if ((flags & RECORD_FLAG_CRC) !== 0 && this.#verify && recordCrc(seg.buffer, pos, lengthWord) !== u32[(pos + RECORD_CRC_OFFSET) >>> 2])
          throw corrupt(seq, seg.path, `the record's CRC32C does not match (bit flips in record at byte ${pos})`);
        this.#pos = end;
        this.#seq = seq + 1;
        return {
          seq,
          data: new Uint8Array(seg.buffer, pos + RECORD_HEADER_LENGTH, lengthWord - RECORD_HEADER_LENGTH),
          timestamp: seg.f64[(pos + RECORD_TIMESTAMP_OFFSET) >>> 3]!,
        };
      }
      if (type === FrameType.ABORTED) {
        if (end + MIN_PADDING_LENGTH > seg.size) throw corrupt(seq, seg.path, `frame length ${lengthWord} at byte ${pos} is out of range`);
        const flags = typeAndFlags >>> 16;
        if ((flags & ~KNOWN_RECORD_FLAGS) !== 0 || ((flags & RECORD_FLAG_CRC) !== 0 && this.#verify && recordCrc(seg.buffer, pos, lengthWord) !== u32[(pos + RECORD_CRC_OFFSET) >>> 2]))
          throw corrupt(seq, seg.path, `the ABORTED frame at byte ${pos} fails its checks (bit flips?)`);
        this.#pos = end;
        this.#seq = seq + 1;
        this.#skipped++;
        continue;
      }
      if (type === FrameType.PADDING) {
        if (end !== seg.size) throw corrupt(seq, seg.path, `a PADDING frame at byte ${pos} does not reach the segment's end`);
        // The next segment starts at seq (this frame's seq field).
        core.release(seg);
        seg = this.#seg = undefined;
        continue;
      }
      throw corrupt(seq, seg.path, `unknown frame type ${type} at byte ${pos}`);
    }
  }

  /**
   * The next record, blocking the thread until one is committed (for
   * workers and dedicated processes: the event loop does not run
   * meanwhile), waiting with the reader's `strategy`. Returns null when
   * `timeoutMs` passes first.
   * @throws {MmapError} ERR_CLOSED if the reader or the log is closed;
   * ERR_INVALID_ARG for a bad `timeoutMs`; whatever next() throws.
   */
  waitNext(options?: WaitNextOptions): LogRecord | null {
    validateOptions(options, ["timeoutMs"], "waitNext");
    const timeout = timeoutOf(options);
    const deadline = timeout < 0 ? Infinity : performance.now() + timeout;
    const core = this.#core;
    for (;;) {
      const record = this.next();
      if (record !== null) return record;
      const left = deadline - performance.now();
      if (left <= 0) return null;
      if (core.pollMs > 0) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.min(left, core.pollMs)); // no doorbell: look again later
        continue;
      }
      const until = this.#until();
      const wait = until.claimed === undefined ? left : Math.min(left, core.abandonTimeoutMs);
      const ok = this.#doorbell().waitUntil(until.ready, {
        strategy: this.strategy,
        ...(this.#spin === undefined ? {} : { spin: this.#spin }),
        ...(wait === Infinity ? {} : { timeoutMs: wait }),
      });
      if (!ok && until.claimed !== undefined && wait < left && !this.closed) core.resolveStuck(until.claimed, this.#pos);
    }
  }

  /** Moves to `seq` (O(log n): segment by name, then the segment's sparse index). */
  seek(seq: number): void {
    this.#checkOpen();
    checkInteger("seq", seq);
    this.#set(this.#core.locate(seq));
  }

  /**
   * Makes this reader's position durable (named readers only): a reader
   * opened later with the same name resumes at `seq` (default: the current
   * position, i.e. after the last record returned). Commit after
   * processing for at-least-once delivery.
   */
  commit(seq: number = this.#seq): void {
    this.#checkOpen();
    this.#core.checkWritable("reader.commit()");
    if (this.#cursor < 0) throw new MmapError("ERR_INVALID_ARG", "commit() needs a named reader: log.reader({ name })");
    checkInteger("seq", seq);
    if (seq > this.#seq) {
      // Past what this reader has reached: only up to the end of the committed records.
      const end = this.#core.end();
      this.#core.release(end.seg);
      if (seq > end.seq)
        throw new MmapError("ERR_OUT_OF_RANGE", `cannot commit seq ${seq}: the log's committed records end at ${end.seq}`, { path: this.#core.dir });
    }
    this.#core.meta.setCursorSeq(this.#cursor, seq);
    this.#core.cursorCommitted(this.#cursor);
  }

  /**
   * Tails the log: yields every record, then waits for new ones with the
   * reader's `strategy` (the default polls only while that pays off, then
   * sleeps on the shared futex), until the log or reader is closed or the
   * signal fires (ERR_ABORTED).
   */
  async *tail(options: { signal?: AbortSignal } = {}): AsyncGenerator<LogRecord, void, undefined> {
    const signal = options.signal ?? this.#signal;
    for (;;) {
      if (this.#closed || this.#core.closed) return;
      const record = this.next();
      if (record !== null) {
        yield record;
        continue;
      }
      await this.#waitForProgress(signal);
    }
  }

  /** `for await (const rec of reader)`: the records from the position on, waiting for new ones (see tail()). */
  /** `for await (const record of reader)`: the same as `reader.tail()`, with the reader's `signal` option. */
  [Symbol.asyncIterator](): AsyncGenerator<LogRecord, void, undefined> {
    return this.tail();
  }

  /** Releases the reader's segment. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#core.closed) this.#core.release(this.#seg);
    this.#seg = undefined;
    this.#onClose();
  }

  /** close(), for `using`. */
  /** `using reader = log.reader(…)` closes it at the end of the scope. */
  [Symbol.dispose](): void {
    this.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new MmapError("ERR_CLOSED", "the reader is closed");
    this.#core.checkOpen();
  }

  #set(position: Position): void {
    this.#core.release(this.#seg);
    this.#seg = position.seg;
    this.#pos = position.pos;
    this.#seq = position.seq;
  }

  /**
   * Resumes at a committed cursor. One behind the first record kept resumes
   * there (retention with ignoreCursors dropped its records). One past the
   * end of the log cannot have been committed (commit() refuses it): the
   * file is damaged, and resuming anywhere would skip records or replay
   * others, so it is ERR_CORRUPT naming the cursor.
   */
  #resume(seq: number): void {
    const core = this.#core;
    const first = core.firstSeq();
    if (seq < first) seq = first;
    const end = core.end();
    const last = Math.min(end.seq, core.damageSeq);
    if (seq > last) {
      core.release(end.seg);
      throw corrupt(undefined, core.meta.path, `durable reader "${this.name}" is at seq ${seq}, past the end of the log (${last}): its cursor is damaged`);
    }
    if (seq === end.seq) {
      this.#set(end);
      return;
    }
    core.release(end.seg);
    this.#set(core.locate(seq));
  }

  /** Sleeps until the frame at the reader's position changes, the log or reader closes, or the signal fires. */
  async #waitForProgress(signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.#sleep(signal);
    } catch (error) {
      // Closing the log unmaps the doorbell under a parked wait: that ends the iteration.
      if (this.#closed || this.#core.closed) return;
      throw error;
    }
  }

  async #sleep(signal: AbortSignal | undefined): Promise<void> {
    const core = this.#core;
    if (core.pollMs > 0) {
      await pause(core.pollMs, signal); // no doorbell to park on: look again later
      return;
    }
    const until = this.#until();
    // On a record being written: if it stays so, check whether its writer died.
    const ok = await this.#waitAsync(until.ready, until.claimed === undefined ? Infinity : core.abandonTimeoutMs, signal);
    if (!ok && until.claimed !== undefined && !this.closed) core.resolveStuck(until.claimed, this.#pos);
  }

  /**
   * What the reader waits for at its position: the frame there is written
   * (committed or claimed), committed (`claimed`: a writer holds it; it may
   * have died), or the segment the reader is at is created; or the reader or
   * its log is closed.
   */
  #until(): { ready: () => boolean; claimed: Segment | undefined } {
    const core = this.#core;
    const seg = this.#seg;
    if (seg === undefined) {
      const base = this.#seq;
      return { ready: () => this.#closed || core.closed || core.meta.newestBase >= base, claimed: undefined };
    }
    const index = this.#pos >>> 2;
    if (Atomics.load(seg.i32, index) < 0) return { ready: () => this.#closed || core.closed || Atomics.load(seg.i32, index) >= 0, claimed: seg };
    return { ready: () => this.#closed || core.closed || Atomics.load(seg.i32, index) !== 0, claimed: undefined };
  }

  /**
   * Waits for `ready()` without blocking the event loop for long: "spin" and
   * "yield" poll in slices of POLL_SLICE_MS with a turn of the event loop
   * in between; "adaptive" polls for its learned budget, then (like
   * "futex") parks on one of the addon's waiter threads. False on timeout.
   */
  async #waitAsync(ready: () => boolean, timeoutMs: number, signal: AbortSignal | undefined): Promise<boolean> {
    const bell = this.#doorbell();
    const strategy = this.strategy;
    const spin = this.#spin === undefined ? {} : { spin: this.#spin };
    if (strategy === "spin" || strategy === "yield") {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        if (bell.waitUntil(ready, { strategy, ...spin, timeoutMs: Math.max(0, Math.min(POLL_SLICE_MS, deadline - performance.now())) })) return true;
        if (performance.now() >= deadline) return false;
        await nextTurn();
        if (signal?.aborted) throw new MmapError("ERR_ABORTED", "the wait was aborted", { cause: signal.reason });
      }
    }
    // "adaptive": the polls of a synchronous wait that gives up at once (learning, per reader, whether polling pays).
    if (strategy === "adaptive" && bell.waitUntil(ready, { strategy, ...spin, timeoutMs: 0 })) return true;
    return bell.waitUntilAsync(ready, { signal, ...(strategy === "adaptive" ? { spin: 0 } : spin), ...(timeoutMs === Infinity ? {} : { timeoutMs }) });
  }

  /** The log's doorbell, as a handle of this reader's (each learns its own adaptive budget). */
  #doorbell(): Doorbell {
    this.#bell ??= new Doorbell(this.#core.meta.file.buffer, META_DOORBELL_SEQ_OFFSET, META_DOORBELL_WAITERS_OFFSET);
    return this.#bell;
  }
}

/**
 * A zero length word is the end of the committed records only at the tail:
 * appenders claim frames in order, and move the tail (or seal the segment, or
 * start a newer one) only past a claimed frame. A zero word the tail has
 * passed is a hole (damage). The word is read again after the tail, so an
 * append racing with this check is not mistaken for one.
 */
function isHole(core: LogCore, seg: Segment, pos: number): boolean {
  const tail = seg.tail;
  if (tail <= pos && core.meta.newestBase <= seg.base) return false;
  return Atomics.load(seg.i32, pos >>> 2) === 0;
}

/** Sleeps `ms` milliseconds; ERR_ABORTED if the signal fires first. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new MmapError("ERR_ABORTED", "the wait was aborted", { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
}
