/**
 * `inspectLog(dir)`: what a log holds, read without opening it for writing,
 * taking no lock and repairing nothing (the CLI's `memmap log stat` uses it).
 */
import * as fs from "node:fs";
import { MmapError } from "../errors.ts";
import { type LogDamage } from "./damage.ts";
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
  /** The sequence number the next append gets (the end of the readable records when damaged). */
  nextSeq: number;
  /** Durable readers: committed position and how many records they are behind. */
  cursors: { name: string; seq: number; lag: number; updatedAt: number }[];
  /** Writer slots in use now or before: the process id and whether it is alive (undefined: this user may not open its lock file). */
  writers: { slot: number; pid: number; alive: boolean | undefined }[];
  /** Where the files are damaged, if they are. */
  damage?: LogDamage;
}

/** Describes the log in `dir` (segments, sequence range, durable readers' lag, damage) without changing it. */
export function inspectLog(dir: string): LogInspection {
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
    const check = checkLog(dir, meta, { repair: false, readOnly: true, verifyCrc: true, full: false });
    const known = new Map(check.segments.map((s) => [s.base, s]));
    const segments: LogSegmentInfo[] = check.bases.map((base) => {
      const file = segmentFileName(base);
      const s = known.get(base);
      let bytes = 0;
      try {
        bytes = inDir(segmentPath(dir, base), (r) => fs.lstatSync(r)).size;
      } catch {
        /* dropped meanwhile */
      }
      return s === undefined ? { file, baseSeq: base, bytes } : { file, baseSeq: base, bytes, records: s.seqs, sealed: s.sealed };
    });
    const nextSeq = check.nextSeq;
    const cursors = meta.cursors().map((c) => ({ ...c, lag: Math.max(0, nextSeq - c.seq) }));
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
    return out;
  } finally {
    meta.close();
    dirs.release();
  }
}
