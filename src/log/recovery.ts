/**
 * Checking a log's files on open, and repairing what a crash leaves behind.
 *
 * What a crash can leave (a process SIGKILLed at any instant):
 * - frames claimed (length < 0) whose writer died before committing;
 * - a PADDING frame claimed but not committed, or a sealed segment whose
 *   successor was never created;
 * - a tail hint that lags behind the frames.
 * None of these is damage. The process that opens the log while nobody else
 * has it open (it holds the open lock exclusively, so every writer that
 * could be mid-append is dead) repairs them: trailing claimed frames are cut
 * off (their sequence numbers were never returned to anyone), claimed frames
 * followed by committed ones are sealed as ABORTED, PADDING is completed,
 * the tail is recomputed and anything after it is zeroed. While other
 * processes have the log open, the same cases are repaired live, by whoever
 * notices, once the owner is proved dead (see Log / LogCore).
 *
 * Everything else — a committed frame with a bad length, type, flags,
 * sequence number or CRC; a file shorter than its header says; a missing
 * segment; a bad header — is damage, reported as ERR_CORRUPT with the first
 * sequence number and the file affected. The frames before it stay readable.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FrameType, alignFrame } from "../core/framing.ts";
import { corrupt, isCorrupt, skippedFrame, type LogCorruptError } from "./damage.ts";
import { inDir, openInLog, removeInLog } from "./dir.ts";
import {
  HEADER_PAGE_LENGTH, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, SEG_SIZE_OFFSET, segmentGeometry,
  KNOWN_RECORD_FLAGS, MIN_PADDING_LENGTH, RECORD_CRC_OFFSET, RECORD_FLAG_CRC,
  RECORD_HEADER_LENGTH, RECORD_SEQ_OFFSET, SEG_TAIL_OFFSET, parseSegmentFileName, readU64, segmentFileName,
  WRITER_SLOT_COUNT, writeU64,
} from "./layout.ts";
import type { Meta } from "./meta.ts";
import { Segment, recordCrc } from "./segment.ts";

/**
 * Sorted base sequence numbers of the segment files in `dir`, leaving out
 * re-created segments at the head (see isRecreated).
 */
export function listSegmentBases(dir: string): number[] {
  const bases = listSegmentFiles(dir);
  while (bases.length > 1 && isRecreated(dir, bases[0]!)) bases.shift();
  return bases;
}

/** Sorted base sequence numbers of every segment file in `dir`. */
export function listSegmentFiles(dir: string): number[] {
  const names = inDir(dir, (resolved) => fs.readdirSync(resolved)); // through the directory's descriptor (./dir.ts)
  const bases: number[] = [];
  for (const name of names) {
    const base = parseSegmentFileName(name);
    if (base !== undefined) bases.push(base);
  }
  return bases.sort((a, b) => a - b);
}

/**
 * True when the oldest segment file is one a slow appender re-created after
 * retention had dropped it (it looked for the segment after its sealed one,
 * found none, and linked a new one into place after the log had moved on):
 * no frame was ever claimed in it (tail and first length word as created),
 * yet a newer segment follows it — which a healthy log never has, since a
 * segment is sealed (its frames all claimed) before the next one is created.
 * Its creator removes it again as soon as it notices (Log #createSegment), an
 * exclusive open removes one a crashed creator left, and nobody reads it
 * meanwhile. It holds no record, so it is no damage; were it a damaged
 * segment whose every frame was lost, nothing in it could be read either.
 */
export function isRecreated(dir: string, base: number): boolean {
  const head = readPrefixOf(segmentPath(dir, base), HEADER_PAGE_LENGTH);
  if (head === undefined || head.length < HEADER_PAGE_LENGTH) return false;
  const size = head.readUInt32LE(SEG_SIZE_OFFSET);
  if (size < MIN_SEGMENT_SIZE || size > MAX_SEGMENT_SIZE || size % HEADER_PAGE_LENGTH !== 0) return false;
  const { dataStart } = segmentGeometry(size);
  if (head.readUInt32LE(SEG_TAIL_OFFSET) !== dataStart) return false;
  const first = readPrefixOf(segmentPath(dir, base), 4, dataStart);
  return first !== undefined && first.length === 4 && first.readInt32LE(0) === 0;
}

/** `length` bytes of a file from `position` (fewer at its end), or undefined if it is gone. */
export function readPrefixOf(file: string, length: number, position = 0): Buffer | undefined {
  let fd: number;
  try {
    fd = openInLog(file, fs.constants.O_RDONLY); // through the directory's descriptor, no symbolic links
  } catch {
    return undefined;
  }
  try {
    const buffer = Buffer.alloc(length);
    return buffer.subarray(0, fs.readSync(fd, buffer, 0, length, position));
  } finally {
    fs.closeSync(fd);
  }
}

export function segmentPath(dir: string, base: number): string {
  return path.join(dir, segmentFileName(base));
}

export interface ScanOptions {
  /** Write repairs (only with the open lock held exclusively), once the whole log is checked and found free of damage. */
  repair: boolean;
  /** Map files read-only (inspection). */
  readOnly?: boolean;
  /** Give the ABORTED frames the repair seals a CRC. */
  crc?: boolean;
  /** Check the CRC of records that carry one. */
  verifyCrc: boolean;
}

export interface SegmentScan {
  /** Byte offset after the last good frame (the segment size once sealed). */
  end: number;
  /** Sequence number of the frame at `end`; the next segment's base once sealed. */
  nextSeq: number;
  sealed: boolean;
  /** DATA records seen. */
  records: number;
  /** ABORTED frames seen (not counting the claimed frames a repair would seal). */
  aborted: number;
  /** Claimed, uncommitted frames seen. */
  claimed: number;
  /** The first damaged frame: `end`/`nextSeq` are where it starts. */
  damage: LogCorruptError | undefined;
  // What a repair would do (see repairSegment): nothing is written by the scan.
  /** Positions of the claimed record frames. */
  abandoned: number[];
  /** A claimed PADDING frame (its sealer died before completing it). */
  padding: { pos: number; length: number } | undefined;
  /** The end and next seq of the last committed (DATA or ABORTED) frame: claimed frames after it are trailing. */
  lastCommittedEnd: number;
  lastCommittedSeq: number;
}

/**
 * Walks every frame of a segment from its start, validating each one
 * (untrusted data: every length, type, flag, sequence number and, on
 * request, CRC). It writes nothing: what a repair would change is in the
 * result, for repairSegment once the whole log is known to be free of damage.
 *
 * `newest`: the segment may be the log's active one, so its frames may end
 * before its last byte. The end (a zero length word) is then proved to be
 * one: every byte after it must be zero but the seq field a writer stores
 * there before anyone claims the frame (frames are claimed only at the
 * tail, in order, so a crash leaves nothing past the last claimed frame).
 * Anything else there (a zeroed length word in front of records, a page
 * lost by a power failure) is damage. `live`: other processes may be
 * appending meanwhile: bytes found past the end are damage only if the
 * zero length word is still zero after they were seen (an appender claims
 * a frame before it writes past it).
 *
 * In any other segment (a newer one follows it, so it was sealed) a zero
 * length word is damage.
 */
export function scanSegment(seg: Segment, options: ScanOptions & { newest: boolean; live: boolean }): SegmentScan {
  const { i32, u32, size, limit } = seg;
  let pos = seg.dataStart;
  let seq = seg.base;
  let records = 0;
  let aborted = 0;
  let claimed = 0;
  let sealed = false;
  let damage: LogCorruptError | undefined;
  let lastCommittedEnd = pos;
  let lastCommittedSeq = seq;
  let padding: SegmentScan["padding"];
  let zeroFrom = 0; // live: bytes before this were seen zero past an earlier end
  // Every value the tail hint ever held is the start of a frame (it moves only
  // from a frame's start to its end): a frame that runs past it has a damaged
  // length, and the frames it jumps over would be lost. Without CRCs this is
  // what catches a length flipped to land in the zeros past the end.
  const tailHint = seg.tail;
  const abandoned: number[] = [];
  const bad = (reason: string): void => {
    damage = corrupt(seq, seg.path, reason);
  };

  for (;;) {
    if (pos + MIN_PADDING_LENGTH > limit) {
      bad(`the file ends at byte ${limit} (truncated: the header says ${size})`);
      break;
    }
    const lengthWord = Atomics.load(i32, pos >>> 2);
    if (lengthWord === 0) {
      if (!options.newest) {
        bad(`a zero length word at byte ${pos} inside a sealed segment (a newer segment follows it): records are missing`);
        break;
      }
      // The tail only ever moves past claimed frames: a tail hint past this word means frames were here.
      const tail = seg.tail;
      if (tail > pos && (!options.live || Atomics.load(i32, pos >>> 2) === 0)) {
        bad(`a zero length word at byte ${pos}, but the segment's tail is at byte ${tail}: records are missing`);
        break;
      }
      const stray = firstNonZero(seg, pos, seq, Math.max(zeroFrom, pos + MIN_PADDING_LENGTH));
      if (stray === undefined) break;
      if (options.live && Atomics.load(i32, pos >>> 2) !== 0) {
        zeroFrom = stray; // an appender claimed it meanwhile: walk on
        continue;
      }
      bad(`a zero length word at byte ${pos} is followed by data at byte ${stray} (a zeroed length word or a lost page, not a crash: the records after it would be lost)`);
      break;
    }
    const length = lengthWord < 0 ? -lengthWord : lengthWord;
    if (length < MIN_PADDING_LENGTH || length > size - pos) {
      bad(`frame length ${lengthWord} at byte ${pos} is out of range`);
      break;
    }
    const end = pos + alignFrame(length);
    if (pos < tailHint && end > tailHint) {
      bad(`frame length ${lengthWord} at byte ${pos} runs past the segment's tail at byte ${tailHint} (a frame always starts there): the length is damaged`);
      break;
    }
    if (end > limit) {
      bad(`the file ends inside the record at byte ${pos} (truncated at ${limit}; the header says ${size})`);
      break;
    }
    const seqField = readU64(u32, pos + RECORD_SEQ_OFFSET);
    if (seqField !== seq) {
      bad(`the frame at byte ${pos} says seq ${seqField}`);
      break;
    }
    const skipped = skippedFrame(seg, pos, end, seq);
    if (skipped !== undefined) {
      bad(`frame length ${lengthWord} at byte ${pos} jumps over the frame at byte ${skipped} (the sparse index has it): the length is damaged`);
      break;
    }
    const typeAndFlags = u32[(pos + 4) >>> 2]!;
    const type = typeAndFlags & 0xffff;
    if (end === size) {
      // Only a PADDING frame reaches the segment's end.
      if (lengthWord > 0 && type !== FrameType.PADDING) {
        bad(`the last frame (at byte ${pos}) is not PADDING (type ${type})`);
        break;
      }
      if (lengthWord < 0) padding = { pos, length };
      sealed = true;
      pos = end;
      break;
    }
    if (length < RECORD_HEADER_LENGTH || end + MIN_PADDING_LENGTH > size) {
      bad(`frame length ${lengthWord} at byte ${pos} leaves no room for the segment's final PADDING`);
      break;
    }
    if (lengthWord < 0) {
      claimed++;
      abandoned.push(pos);
    } else if (type === FrameType.DATA) {
      const flags = typeAndFlags >>> 16;
      if ((flags & ~KNOWN_RECORD_FLAGS) !== 0) {
        bad(`unknown record flags 0x${flags.toString(16)} at byte ${pos}`);
        break;
      }
      if (options.verifyCrc && (flags & RECORD_FLAG_CRC) !== 0 && recordCrc(seg.buffer, pos, length) !== u32[(pos + RECORD_CRC_OFFSET) >>> 2]) {
        bad(`the record's CRC32C does not match (bit flips in record at byte ${pos})`);
        break;
      }
      records++;
      lastCommittedEnd = end;
      lastCommittedSeq = seq + 1;
    } else if (type === FrameType.ABORTED) {
      const flags = typeAndFlags >>> 16;
      if ((flags & ~KNOWN_RECORD_FLAGS) !== 0 || (options.verifyCrc && (flags & RECORD_FLAG_CRC) !== 0 && recordCrc(seg.buffer, pos, length) !== u32[(pos + RECORD_CRC_OFFSET) >>> 2])) {
        bad(`the ABORTED frame at byte ${pos} fails its checks (bit flips?)`);
        break;
      }
      aborted++;
      lastCommittedEnd = end;
      lastCommittedSeq = seq + 1;
    } else {
      bad(`unknown frame type ${type} at byte ${pos}`);
      break;
    }
    seq++;
    pos = end;
  }

  if (damage === undefined && limit < size)
    bad(`the file is ${limit} bytes but its header says ${size} (truncated); the records end at byte ${pos}`);

  return { end: pos, nextSeq: seq, sealed, records, aborted, claimed, damage, abandoned, padding, lastCommittedEnd, lastCommittedSeq };
}

/**
 * Repairs what a crash left in a segment, as found by scanSegment (no damage):
 * completes a claimed PADDING, seals claimed frames followed by committed
 * ones as ABORTED, cuts off trailing claimed frames (no append returned their
 * seqs and no reader passed them, so they are reused), and sets the tail.
 * Only with the open lock held exclusively. Returns what it did.
 */
export function repairSegment(seg: Segment, scan: SegmentScan, crc: boolean): { aborted: number; rewound: number } {
  const { u32, i32 } = seg;
  let aborted = 0;
  let rewound = 0;
  if (scan.padding !== undefined) completePadding(seg, scan.padding.pos, scan.padding.length);
  for (const pos of scan.abandoned) {
    if (!scan.sealed && pos >= scan.lastCommittedEnd) rewound++; // trailing: cut off below
    else if (sealAborted(seg, pos, crc)) aborted++;
  }
  let tail = scan.end;
  if (scan.sealed) seg.setNextBaseHint(scan.nextSeq);
  else {
    // Past tail every byte was proved zero but the seq field of the frame at tail.
    const from = rewound > 0 ? scan.lastCommittedEnd : tail;
    const to = tail + MIN_PADDING_LENGTH;
    if (rewound > 0) {
      // The cut frames' bytes first, then (once those are on disk) the first
      // one's header: a power failure in between leaves a claimed frame
      // followed by zeros, which the next open cuts off again.
      seg.u8.fill(0, from + MIN_PADDING_LENGTH, to);
      seg.file.flush(from, to - from);
    }
    seg.u8.fill(0, from, from + RECORD_SEQ_OFFSET);
    writeU64(u32, from + RECORD_SEQ_OFFSET, rewound > 0 ? scan.lastCommittedSeq : scan.nextSeq);
    tail = from;
  }
  if (Atomics.load(i32, SEG_TAIL_OFFSET >>> 2) !== tail) Atomics.store(i32, SEG_TAIL_OFFSET >>> 2, tail);
  if (rewound > 0 || aborted > 0 || scan.padding !== undefined) {
    // On disk before anything is appended over it: a later power failure
    // must not bring cut frames back behind new records.
    seg.file.flush(0, HEADER_PAGE_LENGTH);
    for (const pos of scan.abandoned) if (pos < tail) seg.file.flush(pos, RECORD_HEADER_LENGTH);
    if (scan.padding !== undefined) seg.file.flush(scan.padding.pos, 8);
    if (!scan.sealed) seg.file.flush(tail, MIN_PADDING_LENGTH);
  }
  return { aborted, rewound };
}

/** Completes a PADDING frame whose sealer may have died: the same stores the sealer makes, so racing is harmless. */
export function completePadding(seg: Segment, pos: number, length: number): void {
  seg.u32[(pos + 4) >>> 2] = FrameType.PADDING;
  Atomics.compareExchange(seg.i32, pos >>> 2, -length, length);
}

/**
 * Seals a claimed frame whose writer is dead (or gave up) as ABORTED: readers
 * skip it; its seq stays used. Racing sealers store the same bytes.
 */
export function sealAborted(seg: Segment, pos: number, crc: boolean): boolean {
  const lengthWord = Atomics.load(seg.i32, pos >>> 2);
  if (lengthWord >= 0) return false;
  seg.u32[(pos + 4) >>> 2] = FrameType.ABORTED | ((crc ? RECORD_FLAG_CRC : 0) << 16);
  if (crc) seg.u32[(pos + RECORD_CRC_OFFSET) >>> 2] = recordCrc(seg.buffer, pos, -lengthWord);
  return Atomics.compareExchange(seg.i32, pos >>> 2, lengthWord, -lengthWord) === lengthWord;
}

/**
 * The first byte at or after `from` that is not zero, or undefined; a zero
 * length word at pos may be followed by its seq field (pos + 16, 8 bytes: 0 or
 * `seq`), which a writer stores before anyone claims the frame at pos. Read
 * with read(2), so the pages of a sparse segment are not faulted in.
 */
function firstNonZero(seg: Segment, pos: number, seq: number, from: number): number | undefined {
  for (let i = pos; i < pos + RECORD_SEQ_OFFSET; i++) if (seg.u8[i] !== 0) return i;
  const storedSeq = readU64(seg.u32, pos + RECORD_SEQ_OFFSET);
  if (storedSeq !== 0 && storedSeq !== seq) return pos + RECORD_SEQ_OFFSET;
  if (from >= seg.limit) return undefined;
  const CHUNK = 1 << 20;
  const chunk = Buffer.alloc(Math.min(CHUNK, seg.limit - from));
  const zeros = Buffer.alloc(chunk.length);
  const fd = openInLog(seg.path, fs.constants.O_RDONLY);
  try {
    for (let off = from; off < seg.limit; off += CHUNK) {
      const wanted = Math.min(CHUNK, seg.limit - off);
      const got = fs.readSync(fd, chunk, 0, wanted, off);
      if (chunk.compare(zeros, 0, got, 0, got) !== 0) for (let i = 0; i < got; i++) if (chunk[i] !== 0) return off + i;
      if (got < wanted) return undefined; // the file shrank: the caller's mapping says where it ends
    }
  } finally {
    fs.closeSync(fd);
  }
  return undefined;
}

export interface LogCheck {
  /** Segment bases, oldest first, as found (before any truncation). */
  bases: number[];
  /** The next sequence number (after the good prefix). */
  nextSeq: number;
  damage: LogCorruptError | undefined;
  /** Where the damage is, for truncation: the damaged segment's base and the byte offset the good prefix ends at (undefined: the segment's header is bad or the segment is missing). */
  damageAt: { base: number; pos: number | undefined } | undefined;
  /** Per segment: sealed and the number of sequence numbers it holds, when known; with `aborted`, how many of them are ABORTED frames (known when it was walked). */
  segments: { base: number; sealed: boolean; seqs: number; bytes: number; aborted?: number }[];
  repaired: { aborted: number; rewound: number };
}

interface CheckRun {
  check: LogCheck;
  /** Segments whose scan found something to repair (exclusive opens only repair them, and only without damage). */
  plan: { base: number; scan: SegmentScan }[];
  /** The newest-segment hint to raise to (exclusive repair). */
  raiseNewest: number | undefined;
  /** Re-created segments left at the head by an appender that died before removing them (exclusive repair). */
  recreated: number[];
}

/** How many times a check that did not hold still (segments rolled over or dropped meanwhile) is repeated. */
const LIVE_ATTEMPTS = 50;

/**
 * Checks a whole log: every segment header, the chain of segments (none
 * missing or overlapping), and every frame of the newest segment (of every
 * segment with `full`). Nothing is written while checking. With `repair`
 * (the open lock held exclusively), what a crash left is then repaired —
 * only if no damage was found: an open that reports damage has changed
 * nothing.
 *
 * Without `repair`, other processes may be appending, rolling segments over
 * and dropping old ones (retention) while the directory is listed and the
 * files are read: a file listed and gone, or a listing taken halfway through
 * a roll-over, is no damage. Such a check is repeated, and damage is
 * reported only once the same damage is found twice in a row.
 */
export function checkLog(dir: string, meta: Meta, options: ScanOptions & { full: boolean }): LogCheck {
  const live = !options.repair;
  let previous: string | undefined;
  for (let attempt = 1; ; attempt++) {
    let run: CheckRun;
    try {
      run = checkOnce(dir, meta, options, live);
    } catch (error) {
      // A segment dropped by retention in another process while we looked: look again.
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && attempt < LIVE_ATTEMPTS) continue;
      throw error;
    }
    const { check } = run;
    if (check.damage === undefined) {
      if (options.repair) applyRepairs(dir, meta, run, options.crc === true);
      return check;
    }
    if (!live || attempt >= LIVE_ATTEMPTS) return check;
    const key = `${check.damage.seq} ${check.damage.message}`;
    if (key === previous) return check;
    previous = key;
  }
}

function applyRepairs(dir: string, meta: Meta, run: CheckRun, crc: boolean): void {
  for (const { base, scan } of run.plan) {
    const seg = Segment.open(segmentPath(dir, base), base);
    try {
      const done = repairSegment(seg, scan, crc);
      run.check.repaired.aborted += done.aborted;
      run.check.repaired.rewound += done.rewound;
    } finally {
      seg.close();
    }
  }
  if (run.raiseNewest !== undefined) meta.raiseNewestBase(run.raiseNewest);
  for (const base of run.recreated) removeInLog(segmentPath(dir, base));
}

function checkOnce(dir: string, meta: Meta, options: ScanOptions & { full: boolean }, live: boolean): CheckRun {
  // The hint first: it is raised only once its segment's file exists, so
  // every segment up to it is in the listing below unless retention dropped it.
  const newest = meta.newestBase;
  const files = listSegmentFiles(dir);
  const bases = listSegmentBases(dir);
  const out: LogCheck = { bases, nextSeq: 0, damage: undefined, damageAt: undefined, segments: [], repaired: { aborted: 0, rewound: 0 } };
  const run: CheckRun = { check: out, plan: [], raiseNewest: undefined, recreated: files.filter((base) => base < (bases[0] ?? 0)) };
  if (bases.length === 0) {
    if (newest > 0) {
      out.damage = corrupt(newest, segmentPath(dir, newest), "the log has no segment files (the newest should be this one)");
      out.damageAt = { base: newest, pos: undefined };
      out.nextSeq = newest;
    }
    return run;
  }
  out.nextSeq = bases[0]!;
  const appendedTo = intentSegments(meta);
  for (let i = 0; i < bases.length; i++) {
    const base = bases[i]!;
    const last = i === bases.length - 1;
    let seg: Segment;
    try {
      seg = Segment.open(segmentPath(dir, base), base, options.readOnly === true);
    } catch (error) {
      if (!isCorrupt(error)) throw error;
      out.damage = error;
      out.damageAt = { base, pos: undefined };
      out.nextSeq = base;
      return run;
    }
    try {
      const bytes = seg.limit;
      let nextBase: number;
      let sealed: boolean;
      // A sealed segment's hint is trusted only when it agrees with the next file's name; else walk it.
      // One holding a claimed frame where a writer's intent says it was appending is walked too (a writer killed holding a claim).
      const walk = last || options.full || claimedAtIntent(seg, appendedTo.get(base)) || seg.limit < seg.size || !(seg.sealed && seg.nextBaseHint === bases[i + 1]);
      if (walk) {
        const scan = scanSegment(seg, { ...options, newest: last, live });
        out.segments.push({ base, sealed: scan.sealed, seqs: scan.nextSeq - base, bytes, aborted: scan.aborted });
        out.nextSeq = scan.nextSeq;
        if (scan.damage !== undefined) {
          out.damage = scan.damage;
          out.damageAt = { base, pos: scan.end };
          return run;
        }
        if (!last && !scan.sealed) {
          out.damage = corrupt(scan.nextSeq, seg.path, `the segment ends at byte ${scan.end} but is not sealed, and a newer segment exists`);
          out.damageAt = { base, pos: scan.end };
          return run;
        }
        if (options.repair && (last || scan.claimed > 0 || scan.padding !== undefined || !seg.sealed || seg.nextBaseHint !== scan.nextSeq))
          run.plan.push({ base, scan });
        nextBase = scan.nextSeq;
        sealed = scan.sealed;
      } else {
        nextBase = seg.nextBaseHint;
        sealed = true;
        out.segments.push({ base, sealed, seqs: nextBase - base, bytes });
        out.nextSeq = nextBase;
      }
      if (!last) {
        const following = bases[i + 1]!;
        if (following > nextBase) {
          out.damage = corrupt(nextBase, segmentPath(dir, nextBase), `the segment file is missing (${path.basename(seg.path)} ends at seq ${nextBase}, the next file starts at ${following})`);
          out.damageAt = { base: nextBase, pos: undefined };
          return run;
        }
        if (following < nextBase) {
          out.damage = corrupt(following, segmentPath(dir, following), `the segment overlaps ${path.basename(seg.path)}, which ends at seq ${nextBase}`);
          out.damageAt = { base: following, pos: undefined };
          out.nextSeq = following;
          return run;
        }
      } else {
        if (newest > base) {
          const missing = sealed ? nextBase : newest;
          out.damage = corrupt(missing, segmentPath(dir, missing), `segment files after ${path.basename(seg.path)} are missing (the newest was ${segmentFileName(newest)})`);
          out.damageAt = { base: missing, pos: undefined };
          return run;
        }
        if (options.repair && newest < base) run.raiseNewest = base;
      }
    } finally {
      seg.close();
    }
  }
  return run;
}

/**
 * Where writers were appending, by the intents in their slots (a writer
 * stores its intent before it claims a frame): segment base → positions.
 * A writer killed holding a claim leaves the claim there, maybe in a segment
 * that others have sealed since: without this, a check that walks only the
 * newest segment would not find it, and readers would stop at it.
 */
function intentSegments(meta: Meta): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (let slot = 0; slot < WRITER_SLOT_COUNT; slot++) {
    const pos = meta.intentPos(slot);
    if (pos === 0) continue;
    const base = meta.intentBase(slot);
    out.set(base, [...(out.get(base) ?? []), pos]);
  }
  return out;
}

/** True if a frame at one of the intents' positions is claimed (a length word < 0): the segment is then walked. */
function claimedAtIntent(seg: Segment, positions: number[] | undefined): boolean {
  return (positions ?? []).some((pos) => pos >= seg.dataStart && (pos & 7) === 0 && pos + MIN_PADDING_LENGTH <= seg.limit && Atomics.load(seg.i32, pos >>> 2) < 0);
}
