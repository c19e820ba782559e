/**
 * On-disk formats of the log, each defined once, here.
 *
 * A log is a directory:
 *
 * ```
 *  <dir>/log.meta                    shared state: doorbell, writer slots, durable cursors
 *  <dir>/00000000000000000000.seg    segments, named by the sequence number of their first record
 *  <dir>/00000000000000001234.seg
 *  <dir>/locks/open.lock             shared while a process has the log open; exclusive for repair
 *  <dir>/locks/writer-NN.lock        held (flock) by the live process using writer slot NN
 * ```
 *
 * All integers are little-endian (the host order of every machine memmap runs
 * on); 64-bit sequence numbers are stored as two 32-bit halves (low first) and
 * read back as JavaScript numbers, exact up to 2^53.
 */
import { FRAME_HEADER_LENGTH } from "../core/framing.ts";

/** Bytes of the header page at the start of every segment and of the meta file. */
export const HEADER_PAGE_LENGTH = 4096;

/**
 * Segment header (the first {@link HEADER_PAGE_LENGTH} bytes of a segment).
 *
 * ```
 *  0        8         12              16              24           28
 *  +--------+---------+---------------+---------------+------------+--------------+
 *  | magic  | version | header length | base seq u64  | size u32   | index start  |
 *  | 8 B    | u32     | u32 (4096)    |               | file bytes | u32          |
 *  +--------+---------+---------------+---------------+------------+--------------+
 *  32             36               40           44        48               56          60
 *  +--------------+----------------+------------+---------+----------------+-----------+
 *  | index        | index interval | data start | flags   | created at f64 | header    |
 *  | entries u32  | u32 (bytes)    | u32        | u32 (0) | (ms, epoch)    | CRC32C    |
 *  +--------------+----------------+------------+---------+----------------+-----------+
 *  128: tail u32 — next free byte offset; == size once the segment is sealed (a hint:
 *       recovery recomputes it; on its own 64-byte line, it is the hot word)
 *  192: next base seq u64 — set when the segment is sealed (a hint, checked on open)
 * ```
 *
 * The header CRC covers bytes [0, 56). Then, at `index start`, the sparse
 * index: `index entries` u32 slots; slot k holds the byte offset of the frame
 * that covers byte `data start + k * index interval` (0: not recorded). At
 * `data start` (a multiple of 4096), frames (see ../core/framing.ts) fill the
 * segment to its end; the last frame is always a PADDING frame.
 */
export const SEGMENT_MAGIC = "MMLOGSEG";
export const SEGMENT_VERSION = 1;
export const SEG_MAGIC_OFFSET = 0;
export const SEG_MAGIC_LENGTH = 8;
export const SEG_VERSION_OFFSET = 8;
export const SEG_HEADER_LENGTH_OFFSET = 12;
export const SEG_BASE_SEQ_OFFSET = 16;
export const SEG_SIZE_OFFSET = 24;
export const SEG_INDEX_START_OFFSET = 28;
export const SEG_INDEX_ENTRIES_OFFSET = 32;
export const SEG_INDEX_INTERVAL_OFFSET = 36;
export const SEG_DATA_START_OFFSET = 40;
export const SEG_FLAGS_OFFSET = 44;
export const SEG_CREATED_AT_OFFSET = 48;
export const SEG_HEADER_CRC_OFFSET = 56;
/** The header CRC covers [0, SEG_HEADER_CRC_OFFSET). */
export const SEG_HEADER_CRC_LENGTH = SEG_HEADER_CRC_OFFSET;
export const SEG_TAIL_OFFSET = 128;
export const SEG_NEXT_BASE_OFFSET = 192;

/** Bytes of data between two sparse-index entries. */
export const INDEX_INTERVAL = 4096;
export const INDEX_ENTRY_LENGTH = 4;

/** Smallest and largest segment files. Offsets inside a segment fit an i32. */
export const MIN_SEGMENT_SIZE = 64 * 1024;
export const MAX_SEGMENT_SIZE = 1024 * 1024 * 1024;
export const DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024;

/** Where a segment of `size` bytes keeps its index and its data. */
export function segmentGeometry(size: number): { indexStart: number; indexEntries: number; dataStart: number } {
  const indexEntries = Math.ceil(size / INDEX_INTERVAL);
  const indexStart = HEADER_PAGE_LENGTH;
  const dataStart = indexStart + Math.ceil((indexEntries * INDEX_ENTRY_LENGTH) / HEADER_PAGE_LENGTH) * HEADER_PAGE_LENGTH;
  return { indexStart, indexEntries, dataStart };
}

/**
 * Record header: the log's own fields, inside the payload area of a frame
 * (../core/framing.ts owns bytes 0–8).
 *
 * ```
 *  0            4          6           8             12           16          24             32
 *  +------------+----------+-----------+-------------+------------+-----------+--------------+---------+
 *  | length i32 | type u16 | flags u16 | CRC32C u32  | reserved   | seq u64   | timestamp    | data …  |
 *  | (framing)  |          | bit 0: CRC| [4,8)+[12,…)| u32 (0)    |           | f64 ms epoch | pad to 8|
 *  +------------+----------+-----------+-------------+------------+-----------+--------------+---------+
 * ```
 *
 * `length` is 32 + the data's length. The `seq` field of the frame at the
 * tail is written before anyone claims that frame (by whoever advanced the
 * tail to it), so a writer learns its sequence number from the frame it
 * claims; a PADDING frame's `seq` is the base of the next segment. That is
 * why a data frame must leave {@link MIN_PADDING_LENGTH} bytes after it.
 */
export const RECORD_CRC_OFFSET = FRAME_HEADER_LENGTH; // 8
export const RECORD_RESERVED_OFFSET = 12;
export const RECORD_SEQ_OFFSET = 16;
export const RECORD_TIMESTAMP_OFFSET = 24;
export const RECORD_HEADER_LENGTH = 32;
/**
 * The CRC covers the frame's type and flags (bytes 4–8), then
 * [RECORD_CRC_COVERS_FROM, length): reserved, seq, timestamp and data. With
 * the type covered, a flip that turns a record into an ABORTED frame (which
 * readers skip) is caught; ABORTED frames sealed in a CRC log carry one too.
 */
export const RECORD_CRC_COVERS_FROM = RECORD_RESERVED_OFFSET;
/** Frame flag: the record carries a CRC32C. */
export const RECORD_FLAG_CRC = 1;
export const KNOWN_RECORD_FLAGS = RECORD_FLAG_CRC;
/** The smallest PADDING frame: framing header, CRC + reserved, and the next segment's base seq. */
export const MIN_PADDING_LENGTH = RECORD_SEQ_OFFSET + 8; // 24

/**
 * The meta file, `log.meta`.
 *
 * ```
 *  0        8         12          16                 20        24              28              32               40           44
 *  +--------+---------+-----------+------------------+---------+---------------+---------------+----------------+------------+
 *  | magic  | version | file      | segment size u32 | flags   | writer slots  | cursor slots  | created at f64 | header     |
 *  | 8 B    | u32     | bytes u32 | (new segments)   | bit0 CRC| u32 (64)      | u32 (128)     |                | CRC32C     |
 *  +--------+---------+-----------+------------------+---------+---------------+---------------+----------------+------------+
 *  128: doorbell seq u32, 132: doorbell waiters u32 (src/core/wait.ts; rung after every commit)
 *  256: newest segment base u64 (monotonic; a hint that also detects lost trailing segments)
 *  1024: writer slots, 64 × 32 bytes:
 *        +0 intent segment base u64 | +8 intent position u32 | +12 pid u32 | +16 acquired at f64
 *  4096: cursors, 128 × 64 bytes:
 *        +0 state u32 | +4 name length u32 | +8 seq word u64 | +16 time word u64 | +24 name (40 B UTF-8, zero-padded)
 *        state: 0 free, 0x32525543 ("CUR2") checked, 1 unchecked (written by memmap before the checks)
 *        seq word:  bit 63 checked | bits 53-62 check (10 bits) | bits 0-52 seq
 *        time word: bit 63 checked | bits 43-62 check (20 bits) | bits 0-42 updated at, ms since 1970
 *        unchecked words (bit 63 clear): the seq as a u64, the time as an f64 (never negative)
 * ```
 *
 * Each word's check is CRC32C of the name length, the 40-byte name field,
 * a kind byte and the word's value (see ./cursor-entry.ts); each word is one
 * atomic 64-bit store, so a commit is never half seen. A checked entry has
 * only checked words; an unchecked entry (state 1, from an older memmap) may
 * hold either kind while its first commit converts it.
 *
 * The header CRC covers bytes [0, 44).
 */
export const META_FILE_NAME = "log.meta";
export const META_MAGIC = "MMLOGMET";
export const META_VERSION = 1;
export const META_MAGIC_OFFSET = 0;
export const META_VERSION_OFFSET = 8;
export const META_FILE_LENGTH_OFFSET = 12;
export const META_SEGMENT_SIZE_OFFSET = 16;
export const META_FLAGS_OFFSET = 20;
export const META_WRITER_SLOTS_OFFSET = 24;
export const META_CURSOR_SLOTS_OFFSET = 28;
export const META_CREATED_AT_OFFSET = 32;
export const META_HEADER_CRC_OFFSET = 40;
export const META_HEADER_CRC_LENGTH = META_HEADER_CRC_OFFSET;
export const META_DOORBELL_SEQ_OFFSET = 128;
export const META_DOORBELL_WAITERS_OFFSET = 132;
export const META_NEWEST_BASE_OFFSET = 256;
/** Meta flag: new records carry a CRC32C unless the opener says otherwise. */
export const META_FLAG_CRC = 1;

export const WRITER_TABLE_OFFSET = 1024;
export const WRITER_SLOT_LENGTH = 32;
export const WRITER_SLOT_COUNT = 64;
export const WRITER_INTENT_BASE_OFFSET = 0;
export const WRITER_INTENT_POS_OFFSET = 8;
export const WRITER_PID_OFFSET = 12;
export const WRITER_ACQUIRED_AT_OFFSET = 16;

export const CURSOR_TABLE_OFFSET = 4096;
export const CURSOR_LENGTH = 64;
export const CURSOR_COUNT = 128;
export const CURSOR_STATE_OFFSET = 0;
export const CURSOR_NAME_LENGTH_OFFSET = 4;
export const CURSOR_SEQ_OFFSET = 8;
export const CURSOR_UPDATED_AT_OFFSET = 16;
export const CURSOR_NAME_OFFSET = 24;
export const CURSOR_NAME_MAX_LENGTH = CURSOR_LENGTH - CURSOR_NAME_OFFSET; // 40
export const CURSOR_FREE = 0;
/** An entry without checks, as memmap wrote them before cursors had checks (still read, converted on commit). */
export const CURSOR_IN_USE = 1;
/** An entry whose seq and time words carry checks ("CUR2" in a dump; far from 0 and 1 in bits). */
export const CURSOR_CHECKED = 0x32525543;
/** Bit 63 of the seq and time words (bit 31 of their high u32): the word carries a check. */
export const CURSOR_WORD_CHECKED_HI = 0x8000_0000;
export const CURSOR_SEQ_BITS = 53;
export const CURSOR_SEQ_CHECK_BITS = 10;
export const CURSOR_TIME_BITS = 43;
export const CURSOR_TIME_CHECK_BITS = 20;

export const META_FILE_LENGTH = CURSOR_TABLE_OFFSET + CURSOR_COUNT * CURSOR_LENGTH; // 12288

/** Segment file names: the base sequence number in 20 digits (the width of 2^64). */
export const SEGMENT_SUFFIX = ".seg";
const SEGMENT_NAME = /^(\d{20})\.seg$/;

export function segmentFileName(baseSeq: number): string {
  return String(baseSeq).padStart(20, "0") + SEGMENT_SUFFIX;
}

/** The base sequence number in a segment file name, or undefined if the name is not one. */
export function parseSegmentFileName(name: string): number | undefined {
  const match = SEGMENT_NAME.exec(name);
  if (match === null) return undefined;
  const base = Number(match[1]);
  return Number.isSafeInteger(base) ? base : undefined;
}

export const LOCK_DIR = "locks";
export const OPEN_LOCK_FILE = "open.lock";
export function writerLockFileName(slot: number): string {
  return `writer-${String(slot).padStart(2, "0")}.lock`;
}

/** Reads a u64 stored as two u32 halves at `byteOffset` (8-aligned) of `u32`. */
export function readU64(u32: Uint32Array, byteOffset: number): number {
  const i = byteOffset >>> 2;
  return u32[i]! + u32[i + 1]! * 0x1_0000_0000;
}

/**
 * Writes a u64 (a safe integer) as two u32 halves. Not one atomic store: it is
 * used only where every writer stores the same value, or before the word is
 * published (by an atomic store that follows it).
 */
export function writeU64(u32: Uint32Array, byteOffset: number, value: number): void {
  const i = byteOffset >>> 2;
  u32[i + 1] = Math.floor(value / 0x1_0000_0000);
  u32[i] = value >>> 0;
}
