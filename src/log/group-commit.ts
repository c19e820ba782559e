/**
 * Group commit: with durability "batch", one background msync covers every
 * record appended since the last one — started at most `flushIntervalMs`
 * after a record, or once `flushRecords` records are pending — and
 * `log.flush()` resolves once everything appended before it is on disk. The
 * msyncs (and the fdatasyncs of segments unmapped with unflushed writes) run
 * off the JS thread; a failed one is thrown by the next `flush()`.
 */
import * as fs from "node:fs";
import { toMmapError } from "../core/errors.ts";
import type { LogCore } from "./core.ts";
import { viaDir } from "./dir.ts";
import { CURSOR_COUNT, CURSOR_LENGTH, CURSOR_TABLE_OFFSET } from "./layout.ts";
import type { Meta } from "./meta.ts";
import type { CheckedLogOptions } from "./options.ts";

export class GroupCommit {
  readonly #core: LogCore;
  readonly #meta: Meta;
  readonly #options: Pick<CheckedLogOptions, "durability" | "flushIntervalMs" | "flushRecords">;
  /** Records appended by this log so far. */
  #appended = 0;
  /** Of those, how many are known to be on disk. */
  #durable = 0;
  /** Appended since the last group commit started. */
  #unflushed = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  /** Something was written while a group commit ran: another must follow it. */
  #flushAgain = false;
  #flushError: unknown;

  constructor(core: LogCore, options: Pick<CheckedLogOptions, "durability" | "flushIntervalMs" | "flushRecords">) {
    this.#core = core;
    this.#meta = core.meta;
    this.#options = options;
  }

  /** Called after `count` records were appended: counts them and, with "batch", schedules their msync. */
  appended(count: number): void {
    this.#appended += count;
    const durability = this.#options.durability;
    if (durability === "sync") {
      this.#durable = this.#appended;
      return;
    }
    if (durability !== "batch") return;
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

  /** Resolves when every record appended before the call is on disk. */
  async flush(): Promise<void> {
    const target = this.#appended;
    for (;;) {
      if (this.#flushError !== undefined) {
        const error = this.#flushError;
        this.#flushError = undefined;
        throw toMmapError(error);
      }
      if (this.#durable >= target && !this.#core.metaDirty && !this.#core.hasReleasedDirty && !this.#hasDirty()) return;
      await (this.#flushing ?? this.#startFlush());
    }
  }

  /** msyncs every segment written since its last flush, now (appendBatch with durability "sync"). */
  syncTouched(): void {
    for (const seg of this.#core.mapped()) {
      if (seg.dirtyHi === 0) continue;
      seg.file.flush(seg.dirtyLo, seg.dirtyHi - seg.dirtyLo);
      seg.markClean();
    }
  }

  /** The log is closing: no more group commits; with "batch" or "sync", what is pending is flushed now (best effort). */
  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#options.durability === "none") return;
    try {
      for (const seg of this.#core.mapped()) if (seg.dirtyHi > 0) seg.file.flush(seg.dirtyLo, seg.dirtyHi - seg.dirtyLo);
      if (this.#core.metaDirty) this.#meta.file.flush(CURSOR_TABLE_OFFSET, CURSOR_COUNT * CURSOR_LENGTH);
    } catch {
      /* closing anyway: the data is in the page cache */
    }
  }

  #hasDirty(): boolean {
    for (const seg of this.#core.mapped()) if (seg.dirtyHi > 0) return true;
    return false;
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
      seg.markClean();
    }
    for (const file of this.#core.takeReleasedDirty()) jobs.push(datasync(file));
    if (this.#core.takeMetaDirty()) jobs.push(this.#meta.file.flushAsync(CURSOR_TABLE_OFFSET, CURSOR_COUNT * CURSOR_LENGTH));
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

/** fdatasync of a segment file this process no longer maps. */
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
