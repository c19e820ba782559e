/**
 * onDamage "truncate" when the log's own files stand in the way of the usual
 * truncation: a damaged or missing log.meta while segment files exist, or a
 * directory, symbolic link or FIFO where a segment file should be. Only with
 * the caller's consent to lose damaged parts and the log to ourselves
 * (exclusive open lock): the entries are moved into `damaged-<t>/` (never
 * deleted), and a fresh log.meta is made from what the segments say. The
 * damaged meta's durable cursors and writer intents are lost (their names
 * are reported when they can be read); the bridge's log id lives in its own
 * file (bridge.id), which stays.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MmapError } from "../core/errors.ts";
import { FRAME_FLAGS_OFFSET, FRAME_LENGTH_OFFSET, FRAME_TYPE_OFFSET } from "../core/framing.ts";
import { decodeCursor } from "./cursor-entry.ts";
import { dirModeFor, inDir, viaDir } from "./dir.ts";
import {
  CURSOR_COUNT, CURSOR_LENGTH, CURSOR_TABLE_OFFSET, HEADER_PAGE_LENGTH, META_FILE_LENGTH, META_FILE_NAME, META_FLAG_CRC,
  RECORD_FLAG_CRC, SEG_SIZE_OFFSET, segmentFileName, segmentGeometry,
} from "./layout.ts";
import { Meta } from "./meta.ts";
import { listSegmentFiles, readPrefixOf, segmentPath } from "./recovery.ts";
import { checkSegmentHeader, fsyncDir } from "./segment.ts";

/** What rebuilding log.meta found and did (in `recovery.metaRebuilt`). */
export interface MetaRebuild {
  /** Why the old meta could not be used. */
  reason: string;
  /** Durable readers the old meta held (those whose names could be read): their positions are lost. */
  lostCursors: string[];
}

/** The `damaged-<t>/` folder of one truncating open, made on first use. */
export class DamagedDir {
  path: string | undefined;
  /** The entries moved into it. */
  readonly moved: string[] = [];

  constructor(private readonly dir: string, private readonly mode: number) {}

  /** Moves `<dir>/<name>` (any kind of entry, never followed) into the folder. */
  moveIn(name: string): void {
    if (this.path === undefined) {
      const made = path.join(this.dir, `damaged-${Date.now()}`);
      const mode = dirModeFor(this.mode);
      inDir(made, (resolved) => {
        fs.mkdirSync(resolved, mode);
        fs.chmodSync(resolved, mode); // exact, like every directory the log makes
      });
      this.path = made;
    }
    const into = this.path;
    inDir(path.join(this.dir, name), (from) => fs.renameSync(from, `${viaDir(into)}/${name}`));
    this.moved.push(name);
  }
}

function lstatIn(file: string): fs.Stats | undefined {
  try {
    return inDir(file, (resolved) => fs.lstatSync(resolved));
  } catch (error) {
    if ((error as MmapError).code === "ENOENT") return undefined;
    throw error;
  }
}

/** True when `dir` holds at least one segment-named entry (of any kind). */
export function hasSegmentFiles(dir: string): boolean {
  return listSegmentFiles(dir).length > 0;
}

/** Moves every segment-named entry that is not a regular file into `damaged` (a directory, symbolic link, FIFO…). */
export function moveNonFileSegments(dir: string, damaged: DamagedDir): void {
  for (const base of listSegmentFiles(dir)) {
    const st = lstatIn(segmentPath(dir, base));
    if (st !== undefined && !st.isFile()) damaged.moveIn(segmentFileName(base));
  }
}

/**
 * Why log.meta cannot be used, or undefined if it can (or is unusable for a
 * reason that is not damage, such as EACCES, which is thrown as it is).
 */
export function metaDamage(dir: string): string | undefined {
  const st = lstatIn(path.join(dir, META_FILE_NAME));
  if (st === undefined) return `${META_FILE_NAME} is missing`;
  if (!st.isFile()) return `${META_FILE_NAME} is not a regular file`;
  try {
    Meta.open(dir, true).close();
    return undefined;
  } catch (error) {
    if ((error as MmapError).code !== "ERR_CORRUPT") throw error;
    return (error as MmapError).message;
  }
}

/** The segment size a segment's header gives, if the header is valid. */
function headerSize(dir: string, base: number): number | undefined {
  const head = readPrefixOf(segmentPath(dir, base), HEADER_PAGE_LENGTH);
  if (head === undefined || head.length < HEADER_PAGE_LENGTH) return undefined;
  const page = new Uint8Array(head).buffer; // a copy: its own ArrayBuffer, starting at the header
  return checkSegmentHeader(page, base) === undefined ? head.readUInt32LE(SEG_SIZE_OFFSET) : undefined;
}

/** Whether the first frame of a segment carries a CRC (undefined if it has none yet). */
function firstFrameHasCrc(file: string, size: number): boolean | undefined {
  const frame = readPrefixOf(file, 8, segmentGeometry(size).dataStart);
  if (frame === undefined || frame.length < 8 || frame.readInt32LE(FRAME_LENGTH_OFFSET) <= 0 || frame.readUInt16LE(FRAME_TYPE_OFFSET) === 0) return undefined;
  return (frame.readUInt16LE(FRAME_FLAGS_OFFSET) & RECORD_FLAG_CRC) !== 0;
}

/** The names of the durable readers in a damaged meta file, where they can be read. */
function readableCursorNames(file: string): string[] {
  const bytes = readPrefixOf(file, META_FILE_LENGTH) ?? Buffer.alloc(0);
  const names: string[] = [];
  for (let i = 0; i < CURSOR_COUNT; i++) {
    const at = CURSOR_TABLE_OFFSET + i * CURSOR_LENGTH;
    if (bytes.length < at + CURSOR_LENGTH) break;
    const decoded = decodeCursor(new Uint8Array(bytes.subarray(at, at + CURSOR_LENGTH)));
    const name = "entry" in decoded ? decoded.entry.name : "free" in decoded ? undefined : decoded.name;
    if (name !== undefined && !names.includes(name)) names.push(name);
  }
  return names;
}

/**
 * Moves a damaged log.meta (if any) into `damaged` and makes a fresh one from
 * the segments: their size (the first valid header's), the CRC flag
 * (`crc`, else whether the first record carries one), the newest base (the
 * newest segment file's name). The usual truncation then keeps the longest
 * valid prefix. `fallbackSize` is used when no header is valid.
 */
export function rebuildMeta(dir: string, reason: string, damaged: DamagedDir, crc: boolean | undefined, fallbackSize: number): MetaRebuild {
  const metaPath = path.join(dir, META_FILE_NAME);
  const old = lstatIn(metaPath);
  const lostCursors = old?.isFile() === true ? readableCursorNames(metaPath) : [];
  if (old !== undefined) damaged.moveIn(META_FILE_NAME);
  const bases = listSegmentFiles(dir);
  let size: number | undefined;
  let withCrc = crc;
  for (const base of bases) {
    const found = headerSize(dir, base);
    if (found === undefined) continue;
    size ??= found;
    withCrc ??= firstFrameHasCrc(segmentPath(dir, base), found);
    if (withCrc !== undefined) break;
  }
  Meta.create(dir, size ?? fallbackSize, withCrc === true ? META_FLAG_CRC : 0);
  const meta = Meta.open(dir);
  try {
    if (bases.length > 0) meta.setNewestBase(bases[bases.length - 1]!);
    meta.file.flush();
  } finally {
    meta.close();
  }
  fsyncDir(dir);
  return { reason, lostCursors };
}

/** The mode of the log's files as its segments have it (for the rebuilt meta and the damaged folder). */
export function segmentFileMode(dir: string): number | undefined {
  for (const base of listSegmentFiles(dir)) {
    const st = lstatIn(segmentPath(dir, base));
    if (st?.isFile() === true) return (st.mode & 0o777) | 0o600;
  }
  return undefined;
}

/**
 * Frees the durable-reader slots that are malformed, and every slot of a name
 * held twice (which position is right is unknown), so the log is usable
 * again (retention and named readers refuse a malformed slot). Their readers
 * start again from their `from` option. Returns what was dropped: the name
 * where it can be read, else "slot N".
 */
export function dropMalformedCursors(meta: Meta): string[] {
  const dropped: string[] = [];
  const seen = new Map<string, number>();
  const drop = (slot: number): void => {
    dropped.push(meta.cursorNameAt(slot) ?? `slot ${slot}`);
    meta.removeCursor(slot);
  };
  for (let i = 0; i < CURSOR_COUNT; i++) {
    let name: string | undefined;
    try {
      name = meta.cursorAt(i)?.name;
    } catch {
      drop(i);
      continue;
    }
    if (name === undefined) continue;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, i);
    else {
      if (first >= 0) drop(first);
      seen.set(name, -1);
      drop(i);
    }
  }
  return dropped;
}
