/**
 * One segment file of a log, mapped shared, with typed views over it. The
 * header (layout in ./layout.ts) is checked on open; frames are read and
 * written by ./log.ts, ./reader.ts and ./recovery.ts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FRAME_ALIGNMENT, FRAME_TYPE_OFFSET } from "../core/framing.ts";
import { pageSize, type MappedFile } from "../core/mapped-file.ts";
import { native } from "../core/native.ts";
import { corrupt } from "./damage.ts";
import {
  HEADER_PAGE_LENGTH, INDEX_INTERVAL, RECORD_CRC_COVERS_FROM, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, RECORD_SEQ_OFFSET, SEGMENT_MAGIC,
  SEGMENT_VERSION, SEG_BASE_SEQ_OFFSET, SEG_CREATED_AT_OFFSET, SEG_DATA_START_OFFSET, SEG_FLAGS_OFFSET,
  SEG_HEADER_CRC_LENGTH, SEG_HEADER_CRC_OFFSET, SEG_HEADER_LENGTH_OFFSET, SEG_INDEX_ENTRIES_OFFSET,
  SEG_INDEX_INTERVAL_OFFSET, SEG_INDEX_START_OFFSET, SEG_MAGIC_LENGTH, SEG_MAGIC_OFFSET, SEG_NEXT_BASE_OFFSET,
  SEG_SIZE_OFFSET, SEG_TAIL_OFFSET, SEG_VERSION_OFFSET, readU64, segmentFileName, segmentGeometry, writeU64,
} from "./layout.ts";
import { createTemp, fsyncLogDir, mapDescriptor, openInLog, removeInLog } from "./dir.ts";
import { linkIntoPlace } from "./meta.ts";

const encoder = new TextEncoder();
const TAIL_INDEX = SEG_TAIL_OFFSET >>> 2;
/**
 * Appends would stop for a page fault (a few µs) on every fresh page; the
 * writer keeps the next PREFAULT_CHUNK..2×PREFAULT_CHUNK bytes past its tail
 * faulted in on the thread pool instead (MappedFile.populateAsync).
 */
const PREFAULT_CHUNK = 1 << 20;

export class Segment {
  readonly path: string;
  readonly base: number;
  /** The segment's size as its header states it: where its last frame ends. */
  readonly size: number;
  /** Bytes actually present (less than `size` only for a truncated, damaged file). */
  readonly limit: number;
  readonly dataStart: number;
  readonly indexStart: number;
  readonly indexEntries: number;
  readonly createdAt: number;
  readonly file: MappedFile;
  readonly buffer: ArrayBuffer;
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly f64: Float64Array;
  readonly u8: Uint8Array;
  /** The mapping as a Buffer, for writing strings without a copy. */
  readonly buf: Buffer;
  /** Holders: the writer (active segment) and readers. Unmapped when it drops to 0. */
  refs = 0;
  /** Byte range written since the last flush, [dirtyLo, dirtyHi). */
  dirtyLo = Infinity;
  dirtyHi = 0;
  /** This process has asked for the pages before this offset to be faulted in. */
  #prefaulted = 0;

  private constructor(file: MappedFile, filePath: string, base: number, size: number, limit: number) {
    this.file = file;
    this.path = filePath;
    this.base = base;
    this.size = size;
    this.limit = limit;
    const geometry = segmentGeometry(size);
    this.dataStart = geometry.dataStart;
    this.indexStart = geometry.indexStart;
    this.indexEntries = geometry.indexEntries;
    this.buffer = file.buffer;
    this.i32 = new Int32Array(this.buffer, 0, limit >>> 2);
    this.u32 = new Uint32Array(this.buffer, 0, limit >>> 2);
    this.f64 = new Float64Array(this.buffer, 0, limit >>> 3);
    this.u8 = new Uint8Array(this.buffer, 0, limit);
    this.buf = Buffer.from(this.buffer, 0, limit);
    this.createdAt = this.f64[SEG_CREATED_AT_OFFSET >>> 3]!;
  }

  /** The next free byte offset (== size once sealed); a hint kept by writers. */
  get tail(): number {
    return Atomics.load(this.i32, TAIL_INDEX);
  }

  get sealed(): boolean {
    return this.tail === this.size;
  }

  /** The base of the next segment, once this one is sealed (0 before). */
  get nextBaseHint(): number {
    return readU64(this.u32, SEG_NEXT_BASE_OFFSET);
  }

  setNextBaseHint(base: number): void {
    writeU64(this.u32, SEG_NEXT_BASE_OFFSET, base);
  }

  /** Marks [from, to) as written, for the next flush. */
  touch(from: number, to: number): void {
    if (from < this.dirtyLo) this.dirtyLo = from;
    if (to > this.dirtyHi) this.dirtyHi = to;
  }

  /** Forgets the written range: a flush of it has been made (or started). */
  markClean(): void {
    this.dirtyLo = Infinity;
    this.dirtyHi = 0;
  }

  /**
   * Creates the segment whose first record is `base`: written completely
   * under a temporary name, then linked into place, so nobody ever sees half
   * a header. If another process got there first, its segment is opened.
   */
  static create(dir: string, base: number, size: number, durable: boolean): Segment {
    const final = path.join(dir, segmentFileName(base));
    const { tmp, fd } = createTemp(dir, segmentFileName(base)); // O_EXCL|O_NOFOLLOW, a random name, the log's file mode
    let file: MappedFile;
    try {
      file = mapDescriptor(fd, tmp, { access: "write", size });
    } catch (error) {
      removeInLog(tmp);
      throw error;
    } finally {
      fs.closeSync(fd);
    }
    let won = false;
    try {
      const geometry = segmentGeometry(size);
      const u32 = new Uint32Array(file.buffer, 0, HEADER_PAGE_LENGTH >>> 2);
      file.bytes.set(encoder.encode(SEGMENT_MAGIC), SEG_MAGIC_OFFSET);
      u32[SEG_VERSION_OFFSET >>> 2] = SEGMENT_VERSION;
      u32[SEG_HEADER_LENGTH_OFFSET >>> 2] = HEADER_PAGE_LENGTH;
      writeU64(u32, SEG_BASE_SEQ_OFFSET, base);
      u32[SEG_SIZE_OFFSET >>> 2] = size;
      u32[SEG_INDEX_START_OFFSET >>> 2] = geometry.indexStart;
      u32[SEG_INDEX_ENTRIES_OFFSET >>> 2] = geometry.indexEntries;
      u32[SEG_INDEX_INTERVAL_OFFSET >>> 2] = INDEX_INTERVAL;
      u32[SEG_DATA_START_OFFSET >>> 2] = geometry.dataStart;
      u32[SEG_FLAGS_OFFSET >>> 2] = 0;
      new Float64Array(file.buffer, 0, HEADER_PAGE_LENGTH >>> 3)[SEG_CREATED_AT_OFFSET >>> 3] = Date.now();
      u32[SEG_HEADER_CRC_OFFSET >>> 2] = native.crc32c(file.buffer, 0, SEG_HEADER_CRC_LENGTH, 0);
      u32[TAIL_INDEX] = geometry.dataStart;
      // The first frame's seq field: a writer learns its seq from the frame it claims.
      writeU64(new Uint32Array(file.buffer, geometry.dataStart, 8), RECORD_SEQ_OFFSET, base);
      if (durable) file.flush(0, geometry.dataStart + HEADER_PAGE_LENGTH);
      won = linkIntoPlace(tmp, final);
      if (won && durable) fsyncDir(dir);
    } catch (error) {
      file.close();
      removeInLog(tmp);
      throw error;
    }
    if (!won) {
      file.close();
      return Segment.open(final, base);
    }
    return new Segment(file, final, base, size, size);
  }

  /**
   * Maps an existing segment and checks its header; damage is an ERR_CORRUPT
   * naming `base` (from the file name) and the file. A file shorter than its
   * header says is mapped as far as it goes (`limit`): the scan reports where
   * its records stop.
   */
  static open(file: string, base: number, readOnly = false): Segment {
    // Through the log directory's descriptor, never following a symbolic link.
    const fd = openInLog(file, readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR);
    let mapped: MappedFile;
    let st: fs.Stats;
    try {
      st = fs.fstatSync(fd);
      if (st.isFile() && st.size < HEADER_PAGE_LENGTH)
        throw corrupt(base, file, `the segment file is ${st.size} bytes, shorter than its ${HEADER_PAGE_LENGTH}-byte header`);
      mapped = mapDescriptor(fd, file, { access: readOnly ? "read" : "write" });
    } finally {
      fs.closeSync(fd);
    }
    try {
      const reason = checkSegmentHeader(mapped.buffer, base);
      if (reason !== undefined) throw corrupt(base, file, reason);
      const size = new Uint32Array(mapped.buffer, 0, HEADER_PAGE_LENGTH >>> 2)[SEG_SIZE_OFFSET >>> 2]!;
      const limit = Math.min(size, st.size) & ~(FRAME_ALIGNMENT - 1);
      return new Segment(mapped, file, base, size, limit);
    } catch (error) {
      mapped.close();
      throw error;
    }
  }

  /** Called by a writer whose tail reached `pos`: keeps the pages ahead of it faulted in. */
  prefaultAhead(pos: number): void {
    if (pos + PREFAULT_CHUNK <= this.#prefaulted) return;
    const from = Math.max(this.#prefaulted, pos - (pos % pageSize));
    const to = Math.min(this.size, from + PREFAULT_CHUNK);
    this.#prefaulted = to < this.size ? to : Infinity;
    // A hint: pages it could not fault in are faulted on touch as before.
    if (to > from) this.file.populateAsync(from, to - from).catch(() => {});
  }

  close(): void {
    this.file.close();
  }
}

/**
 * Why the header page at the start of `buffer` (a segment's first
 * HEADER_PAGE_LENGTH bytes or more) is not a valid header of segment `base`,
 * or undefined when it is.
 */
export function checkSegmentHeader(buffer: ArrayBuffer, base: number): string | undefined {
  const u32 = new Uint32Array(buffer, 0, HEADER_PAGE_LENGTH >>> 2);
  const magic = new TextDecoder().decode(new Uint8Array(buffer, SEG_MAGIC_OFFSET, SEG_MAGIC_LENGTH));
  if (magic !== SEGMENT_MAGIC) return `bad header: magic ${JSON.stringify(magic)} (not a log segment)`;
  const version = u32[SEG_VERSION_OFFSET >>> 2]!;
  if (version !== SEGMENT_VERSION) return `bad header: unsupported version ${version} (this memmap reads version ${SEGMENT_VERSION})`;
  if (native.crc32c(buffer, 0, SEG_HEADER_CRC_LENGTH, 0) !== u32[SEG_HEADER_CRC_OFFSET >>> 2])
    return "bad header: its checksum does not match";
  if (u32[SEG_HEADER_LENGTH_OFFSET >>> 2] !== HEADER_PAGE_LENGTH) return "bad header: wrong header length";
  const headerBase = readU64(u32, SEG_BASE_SEQ_OFFSET);
  if (headerBase !== base) return `bad header: it says the segment starts at seq ${headerBase}, its name says ${base}`;
  const size = u32[SEG_SIZE_OFFSET >>> 2]!;
  if (size < MIN_SEGMENT_SIZE || size > MAX_SEGMENT_SIZE || size % HEADER_PAGE_LENGTH !== 0)
    return `bad header: segment size ${size} is out of range`;
  const geometry = segmentGeometry(size);
  if (
    u32[SEG_INDEX_START_OFFSET >>> 2] !== geometry.indexStart ||
    u32[SEG_INDEX_ENTRIES_OFFSET >>> 2] !== geometry.indexEntries ||
    u32[SEG_INDEX_INTERVAL_OFFSET >>> 2] !== INDEX_INTERVAL ||
    u32[SEG_DATA_START_OFFSET >>> 2] !== geometry.dataStart
  )
    return "bad header: the index geometry does not match the segment size";
  if (u32[SEG_FLAGS_OFFSET >>> 2] !== 0) return "bad header: unknown flags";
  const tail = u32[SEG_TAIL_OFFSET >>> 2]!;
  if (tail < geometry.dataStart || tail > size || tail % FRAME_ALIGNMENT !== 0) return `bad header: tail ${tail} is out of range`;
  return undefined;
}

/** The CRC32C a record frame carries (see RECORD_CRC_COVERS_FROM): its type and flags, then [12, length). */
export function recordCrc(buffer: ArrayBuffer, pos: number, length: number): number {
  const head = native.crc32c(buffer, pos + FRAME_TYPE_OFFSET, 4, 0);
  return native.crc32c(buffer, pos + RECORD_CRC_COVERS_FROM, length - RECORD_CRC_COVERS_FROM, head);
}

/** Makes a new directory entry durable (after creating or removing files). */
export function fsyncDir(dir: string): void {
  fsyncLogDir(dir);
}

/** The first 64 bytes of a segment's header, read with read(2) (no mapping). */
export function readHeaderPage(file: string): Buffer {
  const fd = openInLog(file, fs.constants.O_RDONLY);
  try {
    const header = Buffer.alloc(64);
    fs.readSync(fd, header, 0, 64, 0);
    return header;
  } finally {
    fs.closeSync(fd);
  }
}
