/**
 * State one open log shares between its writer side (./appender.ts, ./log.ts) and its
 * readers (./reader.ts): the meta file, the mapped segments, the damage found
 * on open, and the operations both sides need — finding where a sequence
 * number lives, finding the end, and unsticking a frame whose writer died.
 */
import * as path from "node:path";
import { MmapError } from "../core/errors.ts";
import { alignFrame } from "../core/framing.ts";
import { corrupt, type LogCorruptError } from "./damage.ts";
import { INDEX_INTERVAL, MIN_PADDING_LENGTH, RECORD_SEQ_OFFSET, WRITER_SLOT_COUNT, readU64 } from "./layout.ts";
import { isWriterSlotAlive } from "./locks.ts";
import type { Meta } from "./meta.ts";
import type { Durability } from "./options.ts";
import { completePadding, listSegmentBases, sealAborted, segmentPath } from "./recovery.ts";
import { Segment } from "./segment.ts";

/** A position in the log: a frame boundary in a segment, and the seq of the frame there. */
export interface Position {
  /** The mapped segment (acquired for the caller), or undefined when the segment `seq` starts is not created yet. */
  seg: Segment | undefined;
  pos: number;
  seq: number;
}

/** Unheld segment mappings kept (each holds its file's disk space if the file is deleted meanwhile). */
const IDLE_MAPPINGS = 4;

export class LogCore {
  readonly dir: string;
  readonly meta: Meta;
  readonly abandonTimeoutMs: number;
  /** Durability "batch" or "sync": segment headers are flushed at sealing, segments at creation. */
  readonly durable: boolean;
  /** Whether this process's records (and the ABORTED frames it seals) carry a CRC. */
  readonly crc: boolean;
  /** Opened with `readOnly`: segments are mapped read-only and nothing is written or repaired. */
  readonly readOnly: boolean;
  /** When > 0, tailing readers poll this often instead of parking on the doorbell (its meta file could not be mapped writable). */
  readonly pollMs: number;
  damage: LogCorruptError | undefined;
  /** The damaged seq, or Infinity: readers stop there. */
  damageSeq = Infinity;
  /** Mapped segments nobody holds, oldest first (see release()). */
  readonly #idle = new Set<Segment>();
  /** The segment bases last listed (for seek). */
  #listing: number[] | undefined;
  /** Mapped segments by base; shared by the writer and every reader of this log. */
  readonly #segments = new Map<number, Segment>();
  /** Paths of segments unmapped with unflushed writes: flush() fsyncs them. */
  readonly #releasedDirty = new Set<string>();
  /** Set when a cursor changed since the last flush. */
  #metaDirty = false;
  /** Durability "sync": a cursor commit is flushed there and then. */
  readonly #syncCursors: boolean;
  #closed = false;

  constructor(dir: string, meta: Meta, abandonTimeoutMs: number, durability: Durability, crc: boolean, readOnly = false, pollMs = 0) {
    this.dir = dir;
    this.crc = crc;
    this.readOnly = readOnly;
    this.pollMs = pollMs;
    this.meta = meta;
    this.abandonTimeoutMs = abandonTimeoutMs;
    this.durable = durability !== "none";
    this.#syncCursors = durability === "sync";
  }

  /** True once the log is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The log is closing: readers see it closed from now on. */
  markClosed(): void {
    this.#closed = true;
  }

  /** Called after a cursor changed: flushed now (durability "sync"), or by the next flush. */
  cursorCommitted(index: number): void {
    if (this.#syncCursors) this.meta.file.flush(...this.meta.cursorRange(index));
    else this.#metaDirty = true;
  }

  /** True when a cursor changed since the last flush. */
  get metaDirty(): boolean {
    return this.#metaDirty;
  }

  /** Whether a cursor changed since the last flush; the flush that asks takes care of it. */
  takeMetaDirty(): boolean {
    const dirty = this.#metaDirty;
    this.#metaDirty = false;
    return dirty;
  }

  /** True when segments were unmapped with unflushed writes. */
  get hasReleasedDirty(): boolean {
    return this.#releasedDirty.size > 0;
  }

  /** The files of segments unmapped with unflushed writes since the last call (the flush that asks fsyncs them). */
  takeReleasedDirty(): string[] {
    const files = [...this.#releasedDirty];
    this.#releasedDirty.clear();
    return files;
  }

  setDamage(error: LogCorruptError | undefined): void {
    this.damage = error;
    this.damageSeq = error?.seq ?? Infinity;
  }

  checkOpen(): void {
    if (this.#closed) throw new MmapError("ERR_CLOSED", "the log is closed", { path: this.dir });
  }

  /** Refuses `what` (something that writes) on a log opened read-only. */
  checkWritable(what: string): void {
    if (this.readOnly) throw new MmapError("ERR_READ_ONLY", `${what} is not allowed: the log was opened read-only`, { path: this.dir });
  }

  /** Maps the segment starting at `base` (or shares the mapping); undefined if there is no such file. */
  acquire(base: number): Segment | undefined {
    let seg = this.#segments.get(base);
    if (seg !== undefined) this.#idle.delete(seg);
    if (seg === undefined) {
      try {
        seg = Segment.open(segmentPath(this.dir, base), base, this.readOnly);
      } catch (error) {
        if ((error as MmapError).code === "ENOENT") return undefined;
        throw error;
      }
      this.#segments.set(base, seg);
    }
    seg.refs++;
    return seg;
  }

  /** Shares a mapping made elsewhere (a segment this process just created). */
  adopt(seg: Segment): Segment {
    const existing = this.#segments.get(seg.base);
    if (existing !== undefined && existing !== seg) {
      seg.close();
      existing.refs++;
      return existing;
    }
    this.#segments.set(seg.base, seg);
    seg.refs++;
    return seg;
  }

  /**
   * Drops a hold on a segment. The last few segments nobody holds stay
   * mapped (seeking back and forth would otherwise map them again and fault
   * their pages in again); older ones are unmapped.
   */
  release(seg: Segment | undefined): void {
    if (seg === undefined || --seg.refs > 0) return;
    this.#idle.add(seg);
    if (this.#idle.size > IDLE_MAPPINGS) this.#unmap(this.#idle.values().next().value!);
  }

  /** Unmaps an unheld segment now (retention dropped its file: let the disk space go). */
  forget(base: number): void {
    const seg = this.#segments.get(base);
    if (seg !== undefined && seg.refs === 0) this.#unmap(seg);
  }

  #unmap(seg: Segment): void {
    this.#idle.delete(seg);
    if (seg.dirtyHi > 0) this.#releasedDirty.add(seg.path);
    this.#segments.delete(seg.base);
    seg.close();
  }

  /** Segments mapped now (for flush). */
  mapped(): IterableIterator<Segment> {
    return this.#segments.values();
  }

  closeAll(): void {
    for (const seg of this.#segments.values()) seg.close();
    this.#segments.clear();
    this.#idle.clear();
  }

  bases(): number[] {
    return listSegmentBases(this.dir);
  }

  /** The first sequence number still in the log (retention drops old segments). */
  firstSeq(): number {
    const bases = this.bases();
    return bases.length === 0 ? 0 : bases[0]!;
  }

  /**
   * Enters the segment that starts at `base`. Undefined while it is not
   * created yet; an error if it existed and is gone (retention dropped it).
   */
  enter(base: number): Segment | undefined {
    const newest = this.meta.newestBase; // read first: it is raised only after a segment's file exists
    const seg = this.acquire(base);
    if (seg !== undefined) return seg;
    if (newest > base)
      throw new MmapError(
        "ERR_OUT_OF_RANGE",
        `records from seq ${base} are no longer in the log (segment ${path.basename(segmentPath(this.dir, base))} was dropped by retention); seek to log.firstSeq or later`,
        { path: this.dir },
      );
    return undefined;
  }

  /**
   * The end of the log: the first frame not yet committed (with
   * `includeClaimed`, not yet claimed). Walks from the
   * newest segment's tail hint (whose seq field is reliable: it is written
   * before the tail moves there), counting frames.
   */
  end(includeClaimed = false): Position {
    for (let attempt = 0; ; attempt++) {
      const bases = this.bases();
      const newest = Math.max(this.meta.newestBase, bases.length === 0 ? 0 : bases[bases.length - 1]!);
      const seg = this.acquire(newest) ?? (bases.length > 0 ? this.acquire(bases[bases.length - 1]!) : undefined);
      if (seg === undefined) {
        if (attempt < 50) continue; // dropped by retention while we looked
        throw new MmapError("ENOENT", `the log has no segment files '${this.dir}'`, { path: this.dir });
      }
      if (seg.tail === seg.size) {
        const next = seg.nextBaseHint;
        this.release(seg);
        if (next <= seg.base) throw corrupt(undefined, seg.path, "the segment is sealed but names no next segment");
        if (next <= newest && attempt < 50) continue; // its successor exists: look there
        return { seg: undefined, pos: 0, seq: next };
      }
      const found = walkToEnd(seg, includeClaimed);
      if (found.sealed) this.release(seg); // the next segment starts at found.seq
      return found.sealed ? { seg: undefined, pos: 0, seq: found.seq } : { seg, pos: found.pos, seq: found.seq };
    }
  }

  /** The seq the next append gets, from a segment the caller holds when it is still the newest (no directory listing). */
  nextSeqFrom(seg: Segment | undefined): number {
    // A damaged log ends where the damage starts, for every reader of it (and inspectLog) alike.
    if (this.damage !== undefined) return this.damageSeq;
    if (seg !== undefined && !seg.sealed && this.meta.newestBase <= seg.base) {
      const found = walkToEnd(seg, true);
      if (!found.sealed) return found.seq;
    }
    const end = this.end(true);
    this.release(end.seg);
    return end.seq;
  }

  /**
   * Where `seq` is: the segment whose base is the largest at or below it,
   * then a binary search of that segment's sparse index, then a short walk.
   * O(log n) in the records of the segment.
   */
  locate(seq: number): Position {
    // At or past the damage (onDamage "readPrefix"): nothing there can be read; the reader throws the damage.
    if (seq >= this.damageSeq) return { seg: undefined, pos: 0, seq };
    for (let attempt = 0; ; attempt++) {
      // The directory listing is cached; any miss looks again before giving up.
      const bases = attempt === 0 && this.#listing !== undefined ? this.#listing : (this.#listing = this.bases());
      if (bases.length === 0 || seq < bases[0]!) {
        if (attempt === 0) continue;
        throw new MmapError(
          "ERR_OUT_OF_RANGE",
          `seq ${seq} is before the first record kept in the log (${bases[0] ?? 0}); older segments were dropped by retention`,
          { path: this.dir },
        );
      }
      let lo = 0;
      let hi = bases.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (bases[mid]! <= seq) lo = mid;
        else hi = mid - 1;
      }
      const seg = this.acquire(bases[lo]!);
      if (seg === undefined) {
        if (attempt < 5) continue; // dropped while we looked
        throw new MmapError("ERR_OUT_OF_RANGE", `seq ${seq} is no longer in the log`, { path: this.dir });
      }
      let found: { pos: number; seq: number };
      try {
        found = seekInSegment(seg, seq);
      } catch (error) {
        this.release(seg);
        throw error;
      }
      if (found.seq === seq) return { seg, pos: found.pos, seq };
      // The walk ended (at the end of the data, or at the PADDING of a segment whose successor is missing) before `seq`.
      this.release(seg);
      if (attempt === 0 && lo === bases.length - 1) continue; // newer segments may exist
      throw new MmapError(
        "ERR_OUT_OF_RANGE",
        `seq ${seq} is beyond the end of the log (the next record will be ${found.seq})`,
        { path: this.dir },
      );
    }
  }

  /**
   * Called by a reader that has waited `abandonTimeoutMs` on a claimed
   * frame. A PADDING frame is completed by anyone. A record frame is sealed
   * ABORTED only if no live writer has it as its intent: the owner's intent
   * names the frame from before its claim until after its commit, and its
   * writer-slot lock proves it alive. True if the frame was unstuck.
   * Read-only, nothing is unstuck (that is a repair): the frame stays the
   * end of the readable records until another process commits or seals it.
   */
  resolveStuck(seg: Segment, pos: number): boolean {
    const lengthWord = Atomics.load(seg.i32, pos >>> 2);
    if (lengthWord >= 0) return true;
    if (this.readOnly) return false;
    const length = -lengthWord;
    if (length < MIN_PADDING_LENGTH || length > seg.size - pos) throw corrupt(undefined, seg.path, `claimed frame length ${lengthWord} at byte ${pos} is out of range`);
    if (pos + alignFrame(length) === seg.size) {
      completePadding(seg, pos, length);
      this.meta.doorbell.ring();
      return true;
    }
    for (let slot = 0; slot < WRITER_SLOT_COUNT; slot++) {
      if (this.meta.intentPos(slot) !== pos || this.meta.intentBase(slot) !== seg.base) continue;
      if (isWriterSlotAlive(this.dir, slot)) return false;
    }
    const sealed = sealAborted(seg, pos, this.crc);
    if (sealed && this.durable) seg.file.flush(pos, 8);
    this.meta.doorbell.ring();
    return true;
  }
}

/**
 * Walks from a segment's tail hint (whose seq field is reliable: it is
 * written before the tail moves there) past every committed frame (and
 * claimed ones, with `includeClaimed`), counting sequence numbers.
 */
function walkToEnd(seg: Segment, includeClaimed: boolean): { pos: number; seq: number; sealed: boolean } {
  let pos = seg.tail;
  if (pos === seg.size) return { pos, seq: seg.nextBaseHint, sealed: true };
  checkPosition(seg, pos);
  let seq = readU64(seg.u32, pos + RECORD_SEQ_OFFSET);
  for (;;) {
    if (pos + MIN_PADDING_LENGTH > seg.limit) throw corrupt(seq, seg.path, `the file ends at byte ${seg.limit} (truncated)`);
    const lengthWord = Atomics.load(seg.i32, pos >>> 2);
    if (lengthWord === 0 || (lengthWord < 0 && !includeClaimed)) return { pos, seq, sealed: false };
    const end = frameEnd(seg, pos, lengthWord, seq);
    if (end === seg.size) return { pos, seq, sealed: true };
    pos = end;
    seq++;
  }
}

/** Checks a frame position read from shared memory. */
export function checkPosition(seg: Segment, pos: number): void {
  if (pos < seg.dataStart || pos + MIN_PADDING_LENGTH > seg.size || (pos & 7) !== 0 || pos + MIN_PADDING_LENGTH > seg.limit)
    throw corrupt(undefined, seg.path, `tail ${pos} is out of range`);
}

/** The end of the frame at P with length word L (claimed or committed), validated. */
export function frameEnd(seg: Segment, pos: number, lengthWord: number, seq: number): number {
  const length = lengthWord < 0 ? -lengthWord : lengthWord;
  if (length < MIN_PADDING_LENGTH || length > seg.size - pos)
    throw corrupt(seq, seg.path, `frame length ${lengthWord} at byte ${pos} is out of range`);
  const end = pos + alignFrame(length);
  if (end > seg.limit) throw corrupt(seq, seg.path, `the file ends inside the frame at byte ${pos} (truncated)`);
  return end;
}

/** Sparse index entry `entry` → frame position, or 0 when absent or implausible (the index is untrusted). */
function indexEntry(seg: Segment, entry: number): number {
  const word = (seg.indexStart >>> 2) + entry;
  if (word >= seg.u32.length) return 0; // a truncated file
  const pos = seg.u32[word]!;
  const boundary = seg.dataStart + entry * INDEX_INTERVAL;
  if (pos < seg.dataStart || pos > boundary || (pos & 7) !== 0 || pos + MIN_PADDING_LENGTH > seg.limit) return 0;
  if (Atomics.load(seg.i32, pos >>> 2) === 0) return 0;
  return pos;
}

/** Binary search of the sparse index, then a walk: the frame of `seq`, or where the walk ended. */
export function seekInSegment(seg: Segment, seq: number): { pos: number; seq: number; sealed: boolean } {
  let bestPos = seg.dataStart;
  let bestSeq = seg.base;
  const tail = Math.min(seg.tail, seg.size);
  let lo = -1; // entries <= lo are known to be at or before `seq` (or absent)
  let hi = Math.min(seg.indexEntries, Math.floor((tail - 1 - seg.dataStart) / INDEX_INTERVAL) + 1); // entries >= hi are after it
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    let probe = mid;
    let pos = 0;
    while (probe > lo && (pos = indexEntry(seg, probe)) === 0) probe--;
    if (probe === lo) {
      lo = mid; // (lo, mid] hold no usable entry
      continue;
    }
    const probeSeq = readU64(seg.u32, pos + RECORD_SEQ_OFFSET);
    if (probeSeq < seg.base || probeSeq > seq) {
      hi = probe;
    } else {
      bestPos = pos;
      bestSeq = probeSeq;
      lo = mid;
    }
  }
  let pos = bestPos;
  let frameSeq = bestSeq;
  while (frameSeq < seq) {
    if (pos + MIN_PADDING_LENGTH > seg.limit) throw corrupt(frameSeq, seg.path, `the file ends at byte ${seg.limit} (truncated)`);
    const lengthWord = Atomics.load(seg.i32, pos >>> 2);
    if (lengthWord === 0) return { pos, seq: frameSeq, sealed: false };
    const end = frameEnd(seg, pos, lengthWord, frameSeq);
    if (end === seg.size) return { pos, seq: frameSeq, sealed: true };
    // Only DATA/ABORTED frames (and claimed ones) take a seq; this is one.
    pos = end;
    frameSeq++;
  }
  return { pos, seq: frameSeq, sealed: false };
}
