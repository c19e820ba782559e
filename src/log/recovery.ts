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
import { FrameType, alignFrame } from "../framing.ts";
import { corrupt, isCorrupt, type LogCorruptError } from "./damage.ts";
import { inDir, openInLog } from "./dir.ts";
import {
  KNOWN_RECORD_FLAGS, MIN_PADDING_LENGTH, RECORD_CRC_OFFSET, RECORD_FLAG_CRC,
  RECORD_HEADER_LENGTH, RECORD_SEQ_OFFSET, SEG_TAIL_OFFSET, parseSegmentFileName, readU64, segmentFileName,
  writeU64,
} from "./layout.ts";
import type { Meta } from "./meta.ts";
import { Segment, recordCrc } from "./segment.ts";

/** Sorted base sequence numbers of the segment files in `dir`. */
export function listSegmentBases(dir: string): number[] {
  const names = inDir(dir, (r) => fs.readdirSync(r)); // through the directory's descriptor (./dir.ts)
  const bases: number[] = [];
  for (const name of names) {
    const base = parseSegmentFileName(name);
    if (base !== undefined) bases.push(base);
  }
  return bases.sort((a, b) => a - b);
}

export function segmentPath(dir: string, base: number): string {
  return path.join(dir, segmentFileName(base));
}

export interface ScanOptions {
  /** Write repairs (only with the open lock held exclusively). */
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
  /** ABORTED frames seen, and claimed frames sealed as ABORTED by this scan. */
  aborted: number;
  /** Claimed, uncommitted frames seen (before repair). */
  claimed: number;
  /** Trailing claimed frames cut off by the repair. */
  rewound: number;
  /** The first damaged frame: `end`/`nextSeq` are where it starts. */
  damage: LogCorruptError | undefined;
}

/**
 * Walks every frame of a segment from its start, validating each one
 * (untrusted data: every length, type, flag, sequence number and, on
 * request, CRC) and, with `repair`, fixing what a crash left.
 */
export function scanSegment(seg: Segment, options: ScanOptions): SegmentScan {
  const { i32, u32, size, limit } = seg;
  let P = seg.dataStart;
  let E = seg.base;
  let records = 0;
  let aborted = 0;
  let claimed = 0;
  let sealed = false;
  let damage: LogCorruptError | undefined;
  let lastCommittedEnd = P;
  let lastCommittedSeq = E;
  const abandoned: number[] = [];
  const bad = (reason: string): void => {
    damage = corrupt(E, seg.path, reason);
  };

  for (;;) {
    if (P + MIN_PADDING_LENGTH > limit) {
      bad(`the file ends at byte ${limit} (truncated: the header says ${size})`);
      break;
    }
    const L = Atomics.load(i32, P >>> 2);
    if (L === 0) break;
    const n = L < 0 ? -L : L;
    if (n < MIN_PADDING_LENGTH || n > size - P) {
      bad(`frame length ${L} at byte ${P} is out of range`);
      break;
    }
    const end = P + alignFrame(n);
    if (end > limit) {
      bad(`the file ends inside the record at byte ${P} (truncated at ${limit}; the header says ${size})`);
      break;
    }
    const seqField = readU64(u32, P + RECORD_SEQ_OFFSET);
    if (seqField !== E) {
      bad(`the frame at byte ${P} says seq ${seqField}`);
      break;
    }
    const tf = u32[(P + 4) >>> 2]!;
    const type = tf & 0xffff;
    if (end === size) {
      // Only a PADDING frame reaches the segment's end.
      if (L > 0 && type !== FrameType.PADDING) {
        bad(`the last frame (at byte ${P}) is not PADDING (type ${type})`);
        break;
      }
      if (L < 0 && options.repair) completePadding(seg, P, n);
      sealed = true;
      P = end;
      break;
    }
    if (n < RECORD_HEADER_LENGTH || end + MIN_PADDING_LENGTH > size) {
      bad(`frame length ${L} at byte ${P} leaves no room for the segment's final PADDING`);
      break;
    }
    if (L < 0) {
      claimed++;
      abandoned.push(P);
    } else if (type === FrameType.DATA) {
      const flags = tf >>> 16;
      if ((flags & ~KNOWN_RECORD_FLAGS) !== 0) {
        bad(`unknown record flags 0x${flags.toString(16)} at byte ${P}`);
        break;
      }
      if (options.verifyCrc && (flags & RECORD_FLAG_CRC) !== 0 && recordCrc(seg.buffer, P, n) !== u32[(P + RECORD_CRC_OFFSET) >>> 2]) {
        bad(`the record's CRC32C does not match (bit flips in record at byte ${P})`);
        break;
      }
      records++;
      lastCommittedEnd = end;
      lastCommittedSeq = E + 1;
    } else if (type === FrameType.ABORTED) {
      const flags = tf >>> 16;
      if ((flags & ~KNOWN_RECORD_FLAGS) !== 0 || (options.verifyCrc && (flags & RECORD_FLAG_CRC) !== 0 && recordCrc(seg.buffer, P, n) !== u32[(P + RECORD_CRC_OFFSET) >>> 2])) {
        bad(`the ABORTED frame at byte ${P} fails its checks (bit flips?)`);
        break;
      }
      aborted++;
      lastCommittedEnd = end;
      lastCommittedSeq = E + 1;
    } else {
      bad(`unknown frame type ${type} at byte ${P}`);
      break;
    }
    E++;
    P = end;
  }

  if (damage === undefined && limit < size)
    bad(`the file is ${limit} bytes but its header says ${size} (truncated); the records end at byte ${P}`);

  let rewound = 0;
  if (options.repair && damage === undefined) {
    for (const pos of abandoned) {
      if (!sealed && pos >= lastCommittedEnd) continue; // trailing: cut off below
      sealAborted(seg, pos, options.crc === true);
      aborted++;
    }
    if (!sealed && P > lastCommittedEnd) {
      // Trailing frames nobody committed: no append returned their seq and no
      // reader passed them, so they are cut off and their seqs reused.
      rewound = abandoned.filter((pos) => pos >= lastCommittedEnd).length;
      seg.u8.fill(0, lastCommittedEnd, P);
      P = lastCommittedEnd;
      E = lastCommittedSeq;
    }
    if (!sealed) {
      // The free space must be zero (a machine crash can leave stray blocks):
      // writers claim a frame by swapping its length from 0.
      seg.u8.fill(0, P, P + RECORD_SEQ_OFFSET);
      writeU64(u32, P + RECORD_SEQ_OFFSET, E);
      zeroFrom(seg, P + MIN_PADDING_LENGTH);
    } else {
      seg.setNextBaseHint(E);
    }
    Atomics.store(i32, SEG_TAIL_OFFSET >>> 2, P);
  }
  return { end: P, nextSeq: E, sealed, records, aborted, claimed, rewound, damage };
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
  const L = Atomics.load(seg.i32, pos >>> 2);
  if (L >= 0) return false;
  seg.u32[(pos + 4) >>> 2] = FrameType.ABORTED | ((crc ? RECORD_FLAG_CRC : 0) << 16);
  if (crc) seg.u32[(pos + RECORD_CRC_OFFSET) >>> 2] = recordCrc(seg.buffer, pos, -L);
  return Atomics.compareExchange(seg.i32, pos >>> 2, L, -L) === L;
}

/** Zeroes every non-zero byte of [from, size): read with read(2) so untouched pages are not faulted in. */
function zeroFrom(seg: Segment, from: number): void {
  if (from >= seg.limit) return;
  const CHUNK = 1 << 20;
  const chunk = Buffer.alloc(CHUNK);
  const zeros = Buffer.alloc(CHUNK);
  const fd = openInLog(seg.path, fs.constants.O_RDONLY);
  try {
    for (let off = from; off < seg.limit; off += CHUNK) {
      const n = Math.min(CHUNK, seg.limit - off);
      const got = fs.readSync(fd, chunk, 0, n, off);
      if (got < n || chunk.compare(zeros, 0, n, 0, n) !== 0) seg.u8.fill(0, off, off + n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface LogCheck {
  /** Segment bases, oldest first, as found (before any truncation). */
  bases: number[];
  /** The next sequence number (after the good prefix). */
  nextSeq: number;
  damage: LogCorruptError | undefined;
  /** Where the damage is, for truncation: the damaged segment's base and the byte offset the good prefix ends at (undefined: the segment's header is bad or the segment is missing). */
  damageAt: { base: number; pos: number | undefined } | undefined;
  /** Per segment: sealed and the number of sequence numbers it holds, when known. */
  segments: { base: number; sealed: boolean; seqs: number; bytes: number }[];
  repaired: { aborted: number; rewound: number };
}

/**
 * Checks a whole log: every segment header, the chain of segments (none
 * missing or overlapping), and every frame of the newest segment (of every
 * segment with `full`). With `repair`, fixes crash leftovers as it goes.
 */
export function checkLog(dir: string, meta: Meta, options: ScanOptions & { full: boolean }): LogCheck {
  for (let attempt = 0; ; attempt++) {
    try {
      return checkOnce(dir, meta, options);
    } catch (error) {
      // A segment removed by retention in another process while we looked: look again.
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && attempt < 5) continue;
      throw error;
    }
  }
}

function checkOnce(dir: string, meta: Meta, options: ScanOptions & { full: boolean }): LogCheck {
  const bases = listSegmentBases(dir);
  const out: LogCheck = { bases, nextSeq: 0, damage: undefined, damageAt: undefined, segments: [], repaired: { aborted: 0, rewound: 0 } };
  const newest = meta.newestBase;
  if (bases.length === 0) {
    if (newest > 0) {
      out.damage = corrupt(newest, segmentPath(dir, newest), "the log has no segment files (the newest should be this one)");
      out.damageAt = { base: newest, pos: undefined };
      out.nextSeq = newest;
    }
    return out;
  }
  out.nextSeq = bases[0]!;
  for (let i = 0; i < bases.length; i++) {
    const base = bases[i]!;
    const last = i === bases.length - 1;
    let seg: Segment;
    try {
      seg = Segment.open(segmentPath(dir, base), base, !options.repair && options.readOnly === true);
    } catch (error) {
      if (!isCorrupt(error)) throw error;
      out.damage = error;
      out.damageAt = { base, pos: undefined };
      out.nextSeq = base;
      return out;
    }
    try {
      const bytes = seg.limit;
      let nextBase: number;
      let sealed: boolean;
      // A sealed segment's hint is trusted only when it agrees with the next file's name; else walk it.
      if (last || options.full || seg.limit < seg.size || !(seg.sealed && seg.nextBaseHint === bases[i + 1])) {
        const scan = scanSegment(seg, options);
        out.repaired.aborted += options.repair ? scan.aborted : 0;
        out.repaired.rewound += scan.rewound;
        out.segments.push({ base, sealed: scan.sealed, seqs: scan.nextSeq - base, bytes });
        out.nextSeq = scan.nextSeq;
        if (scan.damage !== undefined) {
          out.damage = scan.damage;
          out.damageAt = { base, pos: scan.end };
          return out;
        }
        if (!last && !scan.sealed) {
          out.damage = corrupt(scan.nextSeq, seg.path, `the segment ends at byte ${scan.end} but is not sealed, and a newer segment exists`);
          out.damageAt = { base, pos: scan.end };
          return out;
        }
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
          return out;
        }
        if (following < nextBase) {
          out.damage = corrupt(following, segmentPath(dir, following), `the segment overlaps ${path.basename(seg.path)}, which ends at seq ${nextBase}`);
          out.damageAt = { base: following, pos: undefined };
          out.nextSeq = following;
          return out;
        }
      } else {
        if (newest > base) {
          const missing = sealed ? nextBase : newest;
          out.damage = corrupt(missing, segmentPath(dir, missing), `segment files after ${path.basename(seg.path)} are missing (the newest was ${segmentFileName(newest)})`);
          out.damageAt = { base: missing, pos: undefined };
          return out;
        }
        if (options.repair && newest < base) meta.raiseNewestBase(base);
      }
    } finally {
      seg.close();
    }
  }
  return out;
}
