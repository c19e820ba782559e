/**
 * The log's meta file (layout in ./layout.ts): the doorbell appenders ring,
 * the newest segment's base, the writer slots' intents, the durable cursors.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as os from "node:os";
import { codeOf, invalidArg, MmapError } from "../core/errors.ts";
import { type MappedFile } from "../core/mapped-file.ts";
import { native } from "../core/native.ts";
import { Doorbell } from "../core/wait.ts";
import { corrupt } from "./damage.ts";
import { type CursorEntry, decodeCursor, nameCrc, seqWord, timeWord, wordValue } from "./cursor-entry.ts";
import { createTemp, inDir, mapDescriptor, openInLog, removeInLog, viaDir } from "./dir.ts";
import { linkNoClobber } from "../core/temp-file.ts";
import {
  CURSOR_CHECKED, CURSOR_COUNT, CURSOR_FREE, CURSOR_IN_USE, CURSOR_LENGTH, CURSOR_NAME_LENGTH_OFFSET, CURSOR_NAME_MAX_LENGTH,
  CURSOR_NAME_OFFSET, CURSOR_SEQ_OFFSET, CURSOR_STATE_OFFSET, CURSOR_TABLE_OFFSET, CURSOR_UPDATED_AT_OFFSET,
  MAX_SEGMENT_SIZE, META_CREATED_AT_OFFSET, META_CURSOR_SLOTS_OFFSET, META_DOORBELL_SEQ_OFFSET,
  META_DOORBELL_WAITERS_OFFSET, META_FILE_LENGTH, META_FILE_LENGTH_OFFSET, META_FILE_NAME, META_FLAGS_OFFSET,
  META_HEADER_CRC_LENGTH, META_HEADER_CRC_OFFSET, META_MAGIC, META_MAGIC_OFFSET, META_NEWEST_BASE_OFFSET,
  META_SEGMENT_SIZE_OFFSET, META_VERSION, META_VERSION_OFFSET, META_WRITER_SLOTS_OFFSET, MIN_SEGMENT_SIZE,
  WRITER_ACQUIRED_AT_OFFSET, WRITER_INTENT_BASE_OFFSET, WRITER_INTENT_POS_OFFSET, WRITER_PID_OFFSET,
  WRITER_SLOT_COUNT, WRITER_SLOT_LENGTH, WRITER_TABLE_OFFSET, readU64, writeU64,
} from "./layout.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export type { CursorEntry } from "./cursor-entry.ts";

/** How many times an entry that fails its checks is read again while it keeps changing (a commit or add under way). */
const CURSOR_REREADS = 1000;

/** Publishes a complete temporary file under `final`; false if `final` already exists (someone else won). */
export function linkIntoPlace(tmp: string, final: string): boolean {
  try {
    // link(2) follows no symbolic link, and fails if `final` exists: the first creator wins.
    return linkNoClobber(viaDir(tmp), viaDir(final), final);
  } finally {
    removeInLog(tmp);
  }
}

export class Meta {
  readonly path: string;
  readonly file: MappedFile;
  readonly u32: Uint32Array;
  readonly u8: Uint8Array;
  readonly f64: Float64Array;
  readonly big: BigInt64Array;
  readonly doorbell: Doorbell;
  /** Size of segments this log creates. */
  readonly segmentSize: number;
  readonly flags: number;
  /** The meta file's permission bits: the mode of the files a writer adds to the log unless its `mode` option says otherwise. */
  readonly mode: number;

  private constructor(file: MappedFile, filePath: string, mode: number) {
    this.file = file;
    this.mode = mode;
    this.path = filePath;
    const buffer = file.buffer;
    this.u32 = new Uint32Array(buffer);
    this.u8 = new Uint8Array(buffer);
    this.f64 = new Float64Array(buffer);
    this.big = new BigInt64Array(buffer);
    this.segmentSize = this.u32[META_SEGMENT_SIZE_OFFSET >>> 2]!;
    this.flags = this.u32[META_FLAGS_OFFSET >>> 2]!;
    this.doorbell = new Doorbell(buffer, META_DOORBELL_SEQ_OFFSET, META_DOORBELL_WAITERS_OFFSET);
  }

  /** True if the log in `dir` has a meta file; ENOENT "no log" otherwise (EACCES and others as they are). */
  static require(dir: string): void {
    const filePath = path.join(dir, META_FILE_NAME);
    try {
      inDir(filePath, (resolved) => fs.lstatSync(resolved));
    } catch (error) {
      if ((error as MmapError).code !== "ENOENT") throw error;
      throw new MmapError("ENOENT", `no log in '${dir}' (missing ${META_FILE_NAME}; pass create: true to make one)`, { path: dir, syscall: "open", errno: os.constants.errno.ENOENT });
    }
  }

  /**
   * Writes a new meta file unless one exists; true if this call made it.
   * Written under a fresh temporary name (O_EXCL, no symbolic link followed)
   * and linked into place complete, so concurrent creators agree on one.
   */
  static create(dir: string, segmentSize: number, flags: number): boolean {
    const final = path.join(dir, META_FILE_NAME);
    try {
      inDir(final, (resolved) => fs.lstatSync(resolved));
      return false;
    } catch (error) {
      if ((error as MmapError).code !== "ENOENT") throw error;
    }
    const { tmp, fd } = createTemp(dir, META_FILE_NAME);
    let mapped: MappedFile;
    try {
      mapped = mapDescriptor(fd, tmp, { access: "write", size: META_FILE_LENGTH });
    } catch (error) {
      removeInLog(tmp);
      throw error;
    } finally {
      fs.closeSync(fd);
    }
    try {
      const u32 = new Uint32Array(mapped.buffer);
      mapped.bytes.set(encoder.encode(META_MAGIC), META_MAGIC_OFFSET);
      u32[META_VERSION_OFFSET >>> 2] = META_VERSION;
      u32[META_FILE_LENGTH_OFFSET >>> 2] = META_FILE_LENGTH;
      u32[META_SEGMENT_SIZE_OFFSET >>> 2] = segmentSize;
      u32[META_FLAGS_OFFSET >>> 2] = flags;
      u32[META_WRITER_SLOTS_OFFSET >>> 2] = WRITER_SLOT_COUNT;
      u32[META_CURSOR_SLOTS_OFFSET >>> 2] = CURSOR_COUNT;
      new Float64Array(mapped.buffer)[META_CREATED_AT_OFFSET >>> 3] = Date.now();
      u32[META_HEADER_CRC_OFFSET >>> 2] = native.crc32c(mapped.buffer, 0, META_HEADER_CRC_LENGTH, 0);
      mapped.flush();
    } catch (error) {
      removeInLog(tmp);
      throw error;
    } finally {
      mapped.close();
    }
    return linkIntoPlace(tmp, final);
  }

  /** Maps and validates an existing meta file (`readOnly`: a private mapping, for inspection). */
  static open(dir: string, readOnly = false): Meta {
    const filePath = path.join(dir, META_FILE_NAME);
    const fd = openInLog(filePath, readOnly ? fs.constants.O_RDONLY : fs.constants.O_RDWR);
    try {
      const st = fs.fstatSync(fd);
      if (st.isFile() && st.size !== META_FILE_LENGTH)
        throw corrupt(undefined, filePath, `the meta file is ${st.size} bytes, expected ${META_FILE_LENGTH}`);
      const file = mapDescriptor(fd, filePath, { access: readOnly ? "read" : "write" });
      try {
        const reason = validateHeader(file);
        if (reason !== undefined) throw corrupt(undefined, filePath, reason);
        return new Meta(file, filePath, st.mode & 0o777);
      } catch (error) {
        file.close();
        throw error;
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  close(): void {
    this.file.close();
  }

  get newestBase(): number {
    return Number(Atomics.load(this.big, META_NEWEST_BASE_OFFSET >>> 3));
  }

  /** Raises the newest-segment hint to `base` (never lowers it). */
  raiseNewestBase(base: number): void {
    const i = META_NEWEST_BASE_OFFSET >>> 3;
    const want = BigInt(base);
    for (;;) {
      const cur = Atomics.load(this.big, i);
      if (cur >= want) return;
      if (Atomics.compareExchange(this.big, i, cur, want) === cur) return;
    }
  }

  /** Sets the hint outright; only during an exclusive repair. */
  setNewestBase(base: number): void {
    Atomics.store(this.big, META_NEWEST_BASE_OFFSET >>> 3, BigInt(base));
  }

  /** Clears the waiter count a killed waiter may have left behind (exclusive repair only). */
  resetDoorbellWaiters(): void {
    Atomics.store(this.u32, META_DOORBELL_WAITERS_OFFSET >>> 2, 0);
  }

  /**
   * Wakes the waiters parked on the doorbell without changing its words (a
   * read-only log's close: its own tailing readers see the close; others
   * recheck and sleep again).
   */
  wakeWaiters(): void {
    native.futexWake(this.file.buffer, META_DOORBELL_SEQ_OFFSET, 0x7fffffff);
  }

  // ---- writer slots -------------------------------------------------------

  slotOffset(slot: number): number {
    return WRITER_TABLE_OFFSET + slot * WRITER_SLOT_LENGTH;
  }

  initSlot(slot: number): void {
    const offset = this.slotOffset(slot);
    writeU64(this.u32, offset + WRITER_INTENT_BASE_OFFSET, 0);
    Atomics.store(this.u32, (offset + WRITER_INTENT_POS_OFFSET) >>> 2, 0);
    this.u32[(offset + WRITER_PID_OFFSET) >>> 2] = process.pid;
    this.f64[(offset + WRITER_ACQUIRED_AT_OFFSET) >>> 3] = Date.now();
  }

  setIntentBase(slot: number, base: number): void {
    const offset = this.slotOffset(slot);
    Atomics.store(this.u32, (offset + WRITER_INTENT_POS_OFFSET) >>> 2, 0);
    writeU64(this.u32, offset + WRITER_INTENT_BASE_OFFSET, base);
  }

  intentBase(slot: number): number {
    return readU64(this.u32, this.slotOffset(slot) + WRITER_INTENT_BASE_OFFSET);
  }

  intentPos(slot: number): number {
    return Atomics.load(this.u32, (this.slotOffset(slot) + WRITER_INTENT_POS_OFFSET) >>> 2);
  }

  slotPid(slot: number): number {
    return this.u32[(this.slotOffset(slot) + WRITER_PID_OFFSET) >>> 2]!;
  }

  // ---- cursors --------------------------------------------------------------

  /** The UTF-8 bytes of a cursor name, checked. */
  static cursorName(name: unknown): Uint8Array {
    if (typeof name !== "string" || name.length === 0) throw invalidArg(`a reader name must be a non-empty string, got ${typeof name === "string" ? '""' : typeof name}`);
    const bytes = encoder.encode(name);
    if (bytes.length > CURSOR_NAME_MAX_LENGTH)
      throw invalidArg(`a reader name is at most ${CURSOR_NAME_MAX_LENGTH} bytes of UTF-8, got ${bytes.length} ("${name}")`);
    return bytes;
  }

  /**
   * The cursor in slot `index`: undefined when the slot is free; an
   * ERR_CORRUPT naming the slot (and the name, when it can be read) when the
   * entry cannot have been written by a reader (the file is untrusted): a
   * state that is neither free nor in use, a name of 0 or more than 40 bytes
   * or not UTF-8, a check that does not match, a seq that is not a safe integer.
   * A copy that fails is read again: it is damage only once two copies agree
   * (a concurrent commit or add may have been under way).
   */
  cursorAt(index: number): CursorEntry | undefined {
    const offset = CURSOR_TABLE_OFFSET + index * CURSOR_LENGTH;
    let previous: Uint8Array | undefined;
    for (let read = 0; ; read++) {
      // Word by word, as commits store them (a byte copy could catch a word half-stored).
      const words = new BigInt64Array(CURSOR_LENGTH >>> 3);
      for (let w = 0; w < words.length; w++) words[w] = Atomics.load(this.big, (offset >>> 3) + w);
      const copy = new Uint8Array(words.buffer);
      const decoded = decodeCursor(copy);
      if ("free" in decoded) return undefined;
      if ("entry" in decoded) return decoded.entry;
      if (read >= CURSOR_REREADS || (previous !== undefined && sameBytes(previous, copy))) {
        const { name, damage } = decoded;
        throw corrupt(undefined, this.path, `durable reader ${name === undefined ? "" : `"${name}" `}(cursor slot ${index}) is malformed: ${damage}`);
      }
      previous = copy;
    }
  }

  /** The name in slot `index` if it is in use and its name readable, whatever its seq (to delete a damaged one). */
  cursorNameAt(index: number): string | undefined {
    const offset = CURSOR_TABLE_OFFSET + index * CURSOR_LENGTH;
    const state = Atomics.load(this.u32, (offset + CURSOR_STATE_OFFSET) >>> 2);
    if (state !== CURSOR_IN_USE && state !== CURSOR_CHECKED) return undefined;
    const nameLength = this.u32[(offset + CURSOR_NAME_LENGTH_OFFSET) >>> 2]!;
    if (nameLength === 0 || nameLength > CURSOR_NAME_MAX_LENGTH) return undefined;
    try {
      return decoder.decode(this.u8.subarray(offset + CURSOR_NAME_OFFSET, offset + CURSOR_NAME_OFFSET + nameLength));
    } catch {
      return undefined;
    }
  }

  /** The slot of the cursor named `name`, or -1; ERR_CORRUPT if any slot is malformed (it could be this name's). */
  findCursor(name: string): number {
    this.cursors(); // every slot checked, names unique
    for (let i = 0; i < CURSOR_COUNT; i++) if (this.cursorAt(i)?.name === name) return i;
    return -1;
  }

  cursorSeq(index: number): number {
    return this.cursorAt(index)?.seq ?? 0;
  }

  /**
   * Stores a cursor's seq and time, each a checked word in one atomic store
   * (concurrent readers see the old word or the new one, and so does a crash).
   * An unchecked entry (an older memmap's) becomes checked once both words are.
   */
  setCursorSeq(index: number, seq: number): void {
    const offset = CURSOR_TABLE_OFFSET + index * CURSOR_LENGTH;
    const crc = nameCrc(this.u8, offset);
    Atomics.store(this.big, (offset + CURSOR_UPDATED_AT_OFFSET) >>> 3, wordValue(timeWord(Date.now(), crc)));
    Atomics.store(this.big, (offset + CURSOR_SEQ_OFFSET) >>> 3, wordValue(seqWord(seq, crc)));
    const state = (offset + CURSOR_STATE_OFFSET) >>> 2;
    if (Atomics.load(this.u32, state) === CURSOR_IN_USE) Atomics.compareExchange(this.u32, state, CURSOR_IN_USE, CURSOR_CHECKED);
  }

  /** Adds a cursor in a free slot; the caller holds the meta lock and has checked the name is new. */
  addCursor(name: Uint8Array, seq: number): number {
    for (let i = 0; i < CURSOR_COUNT; i++) {
      const offset = CURSOR_TABLE_OFFSET + i * CURSOR_LENGTH;
      if (Atomics.load(this.u32, (offset + CURSOR_STATE_OFFSET) >>> 2) !== CURSOR_FREE) continue;
      this.u8.fill(0, offset, offset + CURSOR_LENGTH);
      this.u8.set(name, offset + CURSOR_NAME_OFFSET);
      this.u32[(offset + CURSOR_NAME_LENGTH_OFFSET) >>> 2] = name.length;
      this.setCursorSeq(i, seq);
      Atomics.store(this.u32, (offset + CURSOR_STATE_OFFSET) >>> 2, CURSOR_CHECKED);
      return i;
    }
    throw new MmapError("ERR_FULL", `the log has no room for another named reader (${CURSOR_COUNT} at most): delete one with log.deleteCursor(name)`, { path: this.path });
  }

  removeCursor(index: number): void {
    Atomics.store(this.u32, (CURSOR_TABLE_OFFSET + index * CURSOR_LENGTH + CURSOR_STATE_OFFSET) >>> 2, CURSOR_FREE);
  }

  /** Every cursor; ERR_CORRUPT naming the first malformed slot. */
  cursors(): CursorEntry[] {
    const out: CursorEntry[] = [];
    const slots = new Map<string, number>();
    for (let i = 0; i < CURSOR_COUNT; i++) {
      const cursor = this.cursorAt(i);
      if (cursor === undefined) continue;
      // Names are added under the meta lock, once: a second slot with a name is damage (which seq is right?).
      const first = slots.get(cursor.name);
      if (first !== undefined)
        throw corrupt(undefined, this.path, `durable reader "${cursor.name}" (cursor slots ${first} and ${i}) is malformed: two slots hold the name`);
      slots.set(cursor.name, i);
      out.push(cursor);
    }
    return out;
  }

  /** Byte range of cursor `index`, for flushing. */
  cursorRange(index: number): [number, number] {
    return [CURSOR_TABLE_OFFSET + index * CURSOR_LENGTH, CURSOR_LENGTH];
  }
}

function validateHeader(file: MappedFile): string | undefined {
  const u32 = new Uint32Array(file.buffer, 0, 64);
  const magic = new TextDecoder().decode(file.bytes.subarray(META_MAGIC_OFFSET, META_MAGIC_OFFSET + 8));
  if (magic !== META_MAGIC) return `bad magic ${JSON.stringify(magic)} (not a log meta file)`;
  const version = u32[META_VERSION_OFFSET >>> 2]!;
  if (version !== META_VERSION) return `unsupported meta version ${version} (this memmap reads version ${META_VERSION})`;
  const crc = native.crc32c(file.buffer, 0, META_HEADER_CRC_LENGTH, 0);
  if (crc !== u32[META_HEADER_CRC_OFFSET >>> 2]) return "the header checksum does not match (the header was damaged)";
  if (u32[META_FILE_LENGTH_OFFSET >>> 2] !== META_FILE_LENGTH) return "the header's file length is wrong";
  const seg = u32[META_SEGMENT_SIZE_OFFSET >>> 2]!;
  if (seg < MIN_SEGMENT_SIZE || seg > MAX_SEGMENT_SIZE || seg % 4096 !== 0) return `bad segment size ${seg}`;
  if (u32[META_WRITER_SLOTS_OFFSET >>> 2] !== WRITER_SLOT_COUNT || u32[META_CURSOR_SLOTS_OFFSET >>> 2] !== CURSOR_COUNT)
    return "the header's table sizes are wrong";
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
