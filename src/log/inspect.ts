/**
 * `inspectLog(dir)`: what a log holds, read without opening it for writing,
 * taking no lock and repairing nothing (the CLI's `memmap log stat` uses it).
 */
import * as fs from "node:fs";
import { MmapError } from "../core/errors.ts";
import { isCorrupt, type LogDamage } from "./damage.ts";
import { WRITER_SLOT_COUNT, segmentFileName } from "./layout.ts";
import { inDir, openLogDir } from "./dir.ts";
import { isWriterSlotAlive, lockDir } from "./locks.ts";
import { Meta } from "./meta.ts";
import { checkLog, segmentPath } from "./recovery.ts";

/** One segment file, as {@link inspectLog} reports it. */
export interface LogSegmentInfo {
  /** The segment's file name. */
  file: string;
  /** Sequence number of its first record. */
  baseSeq: number;
  /** Bytes of the file. */
  bytes: number;
  /** Sequence numbers the segment holds (records, including ABORTED ones); absent past damage. */
  records?: number;
  /** How many of them are ABORTED frames (gaps: no record); known when the segment was walked (always with verify "full"). */
  aborted?: number;
  /** True once the segment is full and the next one takes the appends; absent past damage. */
  sealed?: boolean;
}

/** What {@link inspectLog} finds in a log directory: segments, sequence range, durable cursors. */
export interface LogInspection {
  dir: string;
  /** Size of the segments the log creates. */
  segmentSize: number;
  segments: LogSegmentInfo[];
  /** The first sequence number kept. */
  firstSeq: number;
  /**
   * The sequence number the next append gets, as a log opened with the default `verify` ("tail") reports it;
   * the damaged one when the damage leaves that unknown (in the newest segment, or segment files missing).
   * Readers stop at `damage.seq`.
   */
  nextSeq: number;
  /** Durable readers: committed position and how many records they are behind. */
  cursors: { name: string; seq: number; lag: number; updatedAt: number }[];
  /** Writer slots in use now or before: the process id and whether it is alive (undefined: this user may not open its lock file). */
  writers: { slot: number; pid: number; alive: boolean | undefined }[];
  /** Where the files are damaged, if they are. */
  damage?: LogDamage;
}

/** Options of {@link inspectLog}. */
export interface InspectLogOptions {
  /**
   * Walk every frame of every segment ("full": a hole or bit flip anywhere is found) or only of the newest ("tail").
   * @default "full"
   */
  verify?: "tail" | "full";
}

/** Describes the log in `dir` (segments, sequence range, durable readers' lag, damage) without changing it. */
export function inspectLog(dir: string, options: InspectLogOptions = {}): LogInspection {
  if (typeof dir !== "string" || dir.length === 0) throw new MmapError("ERR_INVALID_ARG", "dir must be a non-empty path");
  // Read permission is all it needs: the directory is opened read-only (no ownership check),
  // files through its descriptor, following no symbolic link; lock files opened for reading.
  const dirs = openLogDir(dir, { create: false, readOnly: true, mode: undefined, locks: lockDir(dir) });
  let meta: Meta;
  try {
    Meta.require(dir);
    meta = Meta.open(dir, true);
  } catch (error) {
    dirs.release();
    throw error;
  }
  try {
    // The cursors first: each is then at or before the end the check finds, even while readers commit.
    let cursorError: LogDamage["reason"] | undefined;
    let rawCursors: ReturnType<Meta["cursors"]> = [];
    try {
      rawCursors = meta.cursors();
    } catch (error) {
      if (!isCorrupt(error)) throw error;
      cursorError = error.message;
    }
    const check = checkLog(dir, meta, { repair: false, readOnly: true, verifyCrc: true, full: options.verify !== "tail" });
    const known = new Map(check.segments.map((scanned) => [scanned.base, scanned]));
    const segments: LogSegmentInfo[] = check.bases.map((base) => {
      const file = segmentFileName(base);
      const scanned = known.get(base);
      let bytes = 0;
      try {
        bytes = inDir(segmentPath(dir, base), (resolved) => fs.lstatSync(resolved)).size;
      } catch {
        /* dropped meanwhile */
      }
      if (scanned === undefined) return { file, baseSeq: base, bytes };
      const info: LogSegmentInfo = { file, baseSeq: base, bytes, records: scanned.seqs, sealed: scanned.sealed };
      if (scanned.aborted !== undefined) info.aborted = scanned.aborted;
      return info;
    });
    // Damage in an older segment (found walking every one) leaves the log's end known: report it as an open does.
    let nextSeq = check.nextSeq;
    if (check.damage !== undefined && options.verify !== "tail") {
      const tail = checkLog(dir, meta, { repair: false, readOnly: true, verifyCrc: true, full: false });
      if (tail.damage === undefined) nextSeq = tail.nextSeq;
    }
    // A malformed cursor, or one past the end of the log, is damage too (reported when the log's files are not).
    const cursors = rawCursors.map((cursor) => ({ ...cursor, lag: Math.max(0, nextSeq - cursor.seq) }));
    let cursorDamage: LogDamage | undefined;
    const ahead = cursors.find((cursor) => cursor.seq > nextSeq);
    if (cursorError !== undefined) cursorDamage = { seq: nextSeq, file: meta.path, reason: cursorError };
    else if (ahead !== undefined)
      cursorDamage = { seq: nextSeq, file: meta.path, reason: `durable reader "${ahead.name}" is at seq ${ahead.seq}, past the end of the log (${nextSeq}): its cursor is damaged` };
    const writers: LogInspection["writers"] = [];
    for (let slot = 0; slot < WRITER_SLOT_COUNT; slot++) {
      const pid = meta.slotPid(slot);
      if (pid === 0) continue;
      let alive: boolean | undefined;
      try {
        alive = isWriterSlotAlive(dir, slot);
      } catch (error) {
        if ((error as MmapError).code !== "EACCES") throw error; // not this user's to lock: unknown
      }
      writers.push({ slot, pid, alive });
    }
    const out: LogInspection = {
      dir,
      segmentSize: meta.segmentSize,
      segments,
      firstSeq: check.bases[0] ?? 0,
      nextSeq,
      cursors,
      writers,
    };
    if (check.damage !== undefined) out.damage = { seq: check.damage.seq ?? 0, file: check.damage.path ?? "", reason: check.damage.message };
    else if (cursorDamage !== undefined) out.damage = cursorDamage;
    return out;
  } finally {
    meta.close();
    dirs.release();
  }
}
