/**
 * The writer side of one open log: claiming frames at the tail, publishing
 * records, sealing full segments and moving on to the next.
 *
 * Appending, with any number of processes at once:
 *
 * 1. read the active segment's tail hint (the tail position); write the
 *    intent (segment, position) into this process's writer slot in the meta
 *    file;
 * 2. claim the frame at that position by swapping its length word from 0 to
 *    -length (compare-and-swap: the one atomic step that decides who owns
 *    it); if someone else owns it, help advance the tail past their frame
 *    and retry;
 * 3. read the frame's seq field (written by whoever advanced the tail to
 *    it), write seq + 1 into the next frame's seq field, advance the tail;
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
import { MmapError, invalidArg } from "../core/errors.ts";
import { FrameType, alignFrame } from "../core/framing.ts";
import { native } from "../core/native.ts";
import type { LogCore } from "./core.ts";
import { corrupt } from "./damage.ts";
import { removeInLog } from "./dir.ts";
import {
  INDEX_INTERVAL, MIN_PADDING_LENGTH, RECORD_CRC_OFFSET, RECORD_FLAG_CRC, RECORD_HEADER_LENGTH, RECORD_RESERVED_OFFSET,
  RECORD_SEQ_OFFSET, RECORD_TIMESTAMP_OFFSET, SEG_TAIL_OFFSET, WRITER_INTENT_POS_OFFSET, readU64, segmentFileName,
  segmentGeometry, writeU64,
} from "./layout.ts";
import { FileLock, acquireWriterSlot } from "./locks.ts";
import type { Meta } from "./meta.ts";
import type { Durability } from "./options.ts";
import { completePadding, listSegmentBases, sealAborted, segmentPath } from "./recovery.ts";
import { Segment, recordCrc } from "./segment.ts";

const TAIL_INDEX = SEG_TAIL_OFFSET >>> 2;
/** How often a step racing with other processes' roll-overs and retention is retried before giving up. */
const RACE_ATTEMPTS = 50;
const INDEX_SHIFT = Math.log2(INDEX_INTERVAL);

/** The frame this process claimed and has not committed yet. */
interface Claim {
  seg: Segment;
  /** Byte position of the frame in the segment. */
  pos: number;
  /** The frame's length: record header + record. */
  length: number;
  /** The sequence number the record gets. */
  seq: number;
}

/** A record as `append` takes it. */
export type RecordData = Uint8Array | ArrayBufferView | string;

export class Appender {
  readonly #core: LogCore;
  readonly #meta: Meta;
  readonly #dir: string;
  readonly #durability: Durability;
  /** Called after this process created a segment (retention runs there). */
  readonly #onSegmentCreated: () => void;
  /** The flags field of this process's records: whether they carry a CRC. */
  readonly #crcFlag: number;
  /** Largest record this log accepts (it must fit in an empty segment). */
  readonly maxRecordLength: number;

  #slot = -1;
  #slotLock: FileLock | undefined;
  /** Index in the meta file's u32 view of this writer slot's intent position. */
  #intentPosIndex = 0;
  /** The segment this writer appends to (held), once it has appended. */
  #active: Segment | undefined;
  #claim: Claim | undefined;
  /** The view `claim()` handed out, detached at commit or abort. */
  #claimView: Uint8Array | undefined;

  constructor(core: LogCore, durability: Durability, onSegmentCreated: () => void) {
    this.#core = core;
    this.#meta = core.meta;
    this.#dir = core.dir;
    this.#durability = durability;
    this.#onSegmentCreated = onSegmentCreated;
    this.#crcFlag = core.crc ? RECORD_FLAG_CRC : 0;
    const { dataStart } = segmentGeometry(core.meta.segmentSize);
    this.maxRecordLength = ((core.meta.segmentSize - dataStart - MIN_PADDING_LENGTH) & ~7) - RECORD_HEADER_LENGTH;
  }

  /** True while a record claimed by `claim()` is neither committed nor aborted. */
  get claimed(): boolean {
    return this.#claim !== undefined;
  }

  /** The seq the next append gets (from the active segment when it is still the newest). */
  nextSeq(): number {
    return this.#core.nextSeqFrom(this.#active);
  }

  tooLarge(byteLength: number): MmapError {
    return new MmapError("ERR_TOO_LARGE", `a record of ${byteLength} bytes does not fit in a segment (at most ${this.maxRecordLength} bytes with segmentSize ${this.#meta.segmentSize})`, { path: this.#dir });
  }

  /** The record's length in bytes; throws for anything not a record, or too large (`index`: its place in a batch). */
  byteLength(data: unknown, index?: number): number {
    let byteLength: number;
    if (typeof data === "string") byteLength = data.length <= 64 && isAscii(data) ? data.length : Buffer.byteLength(data, "utf8");
    else if (ArrayBuffer.isView(data)) byteLength = data.byteLength;
    else throw invalidArg(`a record must be a Uint8Array, another ArrayBufferView or a string, got ${data === null ? "null" : typeof data}${index === undefined ? "" : ` (at index ${index})`}`);
    if (byteLength > this.maxRecordLength) throw this.tooLarge(byteLength);
    return byteLength;
  }

  /** Appends one record; returns its seq. `deferSync`: with durability "sync", leave the msync to the caller. */
  append(data: RecordData, deferSync = false): number {
    const byteLength = this.byteLength(data);
    const claim = this.#claimFrame(RECORD_HEADER_LENGTH + byteLength);
    const seg = claim.seg;
    const at = claim.pos + RECORD_HEADER_LENGTH;
    if (typeof data === "string") {
      if (byteLength > 0) seg.buf.write(data, at, byteLength, "utf8");
    } else if (byteLength > 0) {
      const src = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, byteLength);
      if (byteLength <= 16) for (let i = 0; i < byteLength; i++) seg.u8[at + i] = src[i]!;
      else seg.u8.set(src, at);
    }
    return this.#publish(deferSync);
  }

  /** Claims room for a record of `byteLength` bytes (checked) and returns a view of it. */
  claim(byteLength: number): Uint8Array {
    if (byteLength > this.maxRecordLength) throw this.tooLarge(byteLength);
    const claim = this.#claimFrame(RECORD_HEADER_LENGTH + byteLength);
    const view = claim.seg.file.window(claim.pos + RECORD_HEADER_LENGTH, byteLength);
    this.#claimView = view;
    return view;
  }

  /** Publishes the record `claim()` returned; returns its seq. */
  commit(): number {
    this.#dropClaimView();
    return this.#publish(false);
  }

  /** Seals the claimed record ABORTED (its seq stays used). */
  abort(): void {
    const claim = this.#claim;
    if (claim === undefined) return;
    this.#dropClaimView();
    sealAborted(claim.seg, claim.pos, this.#crcFlag !== 0);
    this.#claim = undefined;
    this.#meta.doorbell.ring();
  }

  /** Lets go of the active segment and the writer slot (the log is closing). */
  close(): void {
    this.#active = undefined;
    this.#slotLock?.close();
  }

  #dropClaimView(): void {
    if (this.#claimView !== undefined) native.detach(this.#claimView.buffer as ArrayBuffer);
    this.#claimView = undefined;
  }

  #publish(deferSync: boolean): number {
    const { seg, pos, length, seq } = this.#claim!;
    const u32 = seg.u32;
    u32[(pos + 4) >>> 2] = FrameType.DATA | (this.#crcFlag << 16);
    u32[(pos + RECORD_RESERVED_OFFSET) >>> 2] = 0;
    seg.f64[(pos + RECORD_TIMESTAMP_OFFSET) >>> 3] = Date.now();
    if (this.#crcFlag !== 0) u32[(pos + RECORD_CRC_OFFSET) >>> 2] = recordCrc(seg.buffer, pos, length);
    // Commit: the last store, atomic and ordered after every byte above. A
    // compare-and-swap from -length (as fast here as a release store, and it
    // would refuse a frame someone sealed: only possible if we were dead).
    if (Atomics.compareExchange(seg.i32, pos >>> 2, -length, length) !== -length) {
      this.#claim = undefined;
      throw corrupt(seq, seg.path, `the claimed frame at byte ${pos} was changed by another process before its commit`);
    }
    this.#claim = undefined;
    // Sparse index: this frame covers the index boundaries in [pos, pos + aligned length).
    const rel = pos - seg.dataStart;
    const endRel = rel + ((length + 7) & ~7);
    const indexBase = seg.indexStart >>> 2;
    for (let entry = (rel + INDEX_INTERVAL - 1) >>> INDEX_SHIFT; entry << INDEX_SHIFT < endRel; entry++) u32[indexBase + entry] = pos;
    this.#meta.doorbell.ring();
    const dirtyEnd = pos + ((length + 7) & ~7) + MIN_PADDING_LENGTH;
    if (this.#durability === "sync" && !deferSync) seg.file.flush(pos, dirtyEnd - pos);
    else seg.touch(pos, dirtyEnd);
    return seq;
  }

  /** Writer slot: taken at the first append and kept until close. */
  #ensureSlot(): void {
    const { slot, lock } = acquireWriterSlot(this.#dir);
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
      if (seg === undefined && attempt >= RACE_ATTEMPTS) throw new MmapError("ENOENT", `the log's newest segment keeps disappearing '${this.#dir}'`, { path: this.#dir });
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
      seg = Segment.create(this.#dir, base, this.#meta.segmentSize, this.#core.durable);
    } catch (error) {
      if ((error as MmapError).code === "ENOENT") return undefined;
      throw error;
    }
    if (this.#meta.newestBase > base && seg.tail === seg.dataStart && Atomics.load(seg.i32, seg.dataStart >>> 2) === 0) {
      seg.close();
      removeInLog(segmentPath(this.#dir, base));
      return undefined;
    }
    return this.#core.adopt(seg);
  }

  /** Claims a frame of `length` bytes at the tail (the claim is also kept as #claim). */
  #claimFrame(length: number): Claim {
    const alignedLength = (length + 7) & ~7;
    let seg = this.#active ?? this.#activeSegment();
    const metaU32 = this.#meta.u32;
    for (;;) {
      const i32 = seg.i32;
      const size = seg.size;
      const tail = Atomics.load(i32, TAIL_INDEX);
      if (tail === size) {
        seg = this.#advance(seg);
        continue;
      }
      if (tail < seg.dataStart || tail + MIN_PADDING_LENGTH > size || (tail & 7) !== 0) throw corrupt(undefined, seg.path, `tail ${tail} is out of range`);
      if (tail + alignedLength + MIN_PADDING_LENGTH <= size) {
        // The intent, before the claim: proves ownership to anyone checking. A
        // plain store suffices: the compare-and-swap below is a full barrier.
        metaU32[this.#intentPosIndex] = tail;
        const found = Atomics.compareExchange(i32, tail >>> 2, 0, -length);
        if (found === 0) {
          const seq = readU64(seg.u32, tail + RECORD_SEQ_OFFSET);
          if (seq < seg.base || seq - seg.base > (tail - seg.dataStart) / RECORD_HEADER_LENGTH)
            throw corrupt(undefined, seg.path, `the frame at byte ${tail} has an impossible seq ${seq}`);
          writeU64(seg.u32, tail + alignedLength + RECORD_SEQ_OFFSET, seq + 1);
          Atomics.compareExchange(i32, TAIL_INDEX, tail, tail + alignedLength);
          const claim: Claim = { seg, pos: tail, length, seq };
          this.#claim = claim;
          seg.prefaultAhead(tail + alignedLength);
          return claim;
        }
        this.#help(seg, tail, found);
      } else {
        const found = Atomics.compareExchange(i32, tail >>> 2, 0, -(size - tail));
        if (found === 0) {
          this.#seal(seg, tail, size - tail);
          seg = this.#advance(seg);
          continue;
        }
        this.#help(seg, tail, found);
      }
    }
  }

  /** Moves the tail past the frame someone else claimed at `pos`, whose length word is `lengthWord` (every helper computes the same). */
  #help(seg: Segment, pos: number, lengthWord: number): void {
    const length = lengthWord < 0 ? -lengthWord : lengthWord;
    if (length < MIN_PADDING_LENGTH || length > seg.size - pos) throw corrupt(undefined, seg.path, `frame length ${lengthWord} at byte ${pos} is out of range`);
    const end = pos + alignFrame(length);
    if (end === seg.size) {
      this.#seal(seg, pos, length);
      return;
    }
    if (length < RECORD_HEADER_LENGTH || end + MIN_PADDING_LENGTH > seg.size) throw corrupt(undefined, seg.path, `frame length ${lengthWord} at byte ${pos} is out of range`);
    const seq = readU64(seg.u32, pos + RECORD_SEQ_OFFSET);
    writeU64(seg.u32, end + RECORD_SEQ_OFFSET, seq + 1);
    Atomics.compareExchange(seg.i32, TAIL_INDEX, pos, end);
  }

  /** Completes the PADDING frame of `length` bytes at `pos` and seals the segment; anyone may (and will) do it. */
  #seal(seg: Segment, pos: number, length: number): void {
    completePadding(seg, pos, length);
    const next = readU64(seg.u32, pos + RECORD_SEQ_OFFSET);
    if (next <= seg.base || next - seg.base > (pos - seg.dataStart) / RECORD_HEADER_LENGTH)
      throw corrupt(undefined, seg.path, `the PADDING frame at byte ${pos} names an impossible next segment ${next}`);
    seg.setNextBaseHint(next);
    if (this.#core.durable) seg.file.flush(0, seg.dataStart);
    Atomics.compareExchange(seg.i32, TAIL_INDEX, pos, seg.size);
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
          const bases = listSegmentBases(this.#dir);
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
      if (target === undefined && attempt >= RACE_ATTEMPTS) throw new MmapError("ENOENT", `the log's newest segment is missing '${this.#dir}'`, { path: this.#dir });
    }
    if (target.base <= seg.base) {
      this.#core.release(target);
      throw corrupt(next, segmentPath(this.#dir, next), `the segment after ${segmentFileName(seg.base)} is missing`);
    }
    this.#core.release(seg);
    this.#active = target;
    this.#meta.setIntentBase(this.#slot, target.base);
    if (created) this.#onSegmentCreated();
    return target;
  }
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}
