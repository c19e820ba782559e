/**
 * How the log reports damage it finds in its files: an MmapError with code
 * ERR_CORRUPT whose message names the sequence number and the file where the
 * damage starts; the same two facts are on the error as `seq` and `path`.
 */
import { MmapError } from "../core/errors.ts";
import { INDEX_INTERVAL, MIN_PADDING_LENGTH, RECORD_HEADER_LENGTH, RECORD_SEQ_OFFSET, readU64 } from "./layout.ts";
import type { Segment } from "./segment.ts";

/** Where a log's files stop being trustworthy. */
export interface LogDamage {
  /** The first sequence number that cannot be read; the records before it are intact. */
  seq: number;
  /** The file where the damage starts. */
  file: string;
  /** What is wrong, in words. */
  reason: string;
}

/** An ERR_CORRUPT MmapError that also carries the damaged sequence number. */
export type LogCorruptError = MmapError & { readonly seq: number | undefined };

export function corrupt(seq: number | undefined, file: string, reason: string): LogCorruptError {
  const where = seq === undefined ? `in ${file}` : `at seq ${seq} in ${file}`;
  const error = new MmapError("ERR_CORRUPT", `log damaged ${where}: ${reason}`, { path: file });
  Object.defineProperty(error, "seq", { value: seq, enumerable: true });
  return error as LogCorruptError;
}

export function damageOf(error: LogCorruptError, reason: string): LogDamage {
  return { seq: error.seq ?? 0, file: error.path ?? "", reason };
}

export function isCorrupt(error: unknown): error is LogCorruptError {
  return error instanceof MmapError && error.code === "ERR_CORRUPT";
}

/**
 * A claimed frame (length word < 0) that a reader meets: a writer may still
 * be writing it, so the reader waits there. It is one only if its length is
 * in range and its seq field says `seq` (stored before anyone could claim the
 * frame); otherwise it is a damaged length word, and waiting would hide every
 * record after it.
 */
export function checkClaimed(seg: Segment, pos: number, lengthWord: number, seq: number): void {
  const length = -lengthWord;
  if (length < MIN_PADDING_LENGTH || length > seg.size - pos) throw corrupt(seq, seg.path, `frame length ${lengthWord} at byte ${pos} is out of range`);
  const stored = readU64(seg.u32, pos + RECORD_SEQ_OFFSET);
  if (stored !== seq) throw corrupt(seq, seg.path, `the claimed frame at byte ${pos} says seq ${stored}`);
}

/**
 * A frame the sparse index records inside the frame [pos, end) with seq
 * `seq`, or undefined. Each index entry whose boundary that frame covers
 * holds `pos` (or 0: not recorded yet). One that points further in, at
 * what looks like a later frame (a length word, and a seq field that fits
 * between), is a frame the walk would jump over: the length at `pos` is
 * damaged. Without CRCs this catches a length that jumps into the zeros
 * past the end where the tail hint cannot (frames past a tail hint left
 * behind by a power failure). An entry pointing at payload bytes is a
 * damaged entry, not a lost frame: ignored here (seeks validate entries).
 */
export function skippedFrame(seg: Segment, pos: number, end: number, seq: number): number | undefined {
  const first = Math.ceil((pos - seg.dataStart) / INDEX_INTERVAL);
  for (let entry = first; entry < seg.indexEntries && seg.dataStart + entry * INDEX_INTERVAL < end; entry++) {
    const word = (seg.indexStart >>> 2) + entry;
    if (word >= seg.u32.length) return undefined; // a truncated file: reported where its frames stop
    const at = seg.u32[word]!;
    if (at <= pos || at >= end || (at & 7) !== 0 || at + MIN_PADDING_LENGTH > seg.limit || seg.i32[at >>> 2] === 0) continue;
    const atSeq = readU64(seg.u32, at + RECORD_SEQ_OFFSET);
    if (atSeq > seq && atSeq - seq <= (at - pos) / RECORD_HEADER_LENGTH) return at;
  }
  return undefined;
}
