/**
 * Opening a log: the directory, the open lock, the meta file (created with
 * `create`, mapped read-only where a read-only open may not write it), the
 * check of the segments, and the repairs only a process that has the log to
 * itself may make (leftover temporary files, what crashed writers left,
 * onDamage "truncate"). The `Log` facade (./log.ts) wraps what this returns.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MmapError } from "../core/errors.ts";
import { LogCore } from "./core.ts";
import type { LogDamage } from "./damage.ts";
import { inDir, mapInLog, openLogDir, removeDirInLog, removeInLog, viaDir } from "./dir.ts";
import {
  CURSOR_COUNT, INDEX_INTERVAL, META_FILE_NAME, META_FLAG_CRC, OPEN_LOCK_FILE, RECORD_SEQ_OFFSET, SEG_SIZE_OFFSET, SEG_TAIL_OFFSET,
  segmentFileName, writeU64,
} from "./layout.ts";
import { FileLock, acquireOpenLock, acquireSharedOpenLock, downgradeOpenLock, lockDir } from "./locks.ts";
import { Meta } from "./meta.ts";
import { DamagedDir, type MetaRebuild, dropMalformedCursors, hasSegmentFiles, metaDamage, moveNonFileSegments, rebuildMeta, segmentFileMode } from "./meta-rebuild.ts";
import { LOCK_TIMEOUT_MS, type CheckedLogOptions } from "./options.ts";
import { checkLog, listSegmentBases, segmentPath, type LogCheck } from "./recovery.ts";
import { Segment, fsyncDir, readHeaderPage } from "./segment.ts";

/** What opening the log found and repaired. */
export interface LogRecovery {
  /** True when this process had the log to itself on open, and so could repair it (never with readOnly). */
  exclusive: boolean;
  /** Claimed frames of dead writers sealed as ABORTED. */
  abortedFrames: number;
  /** Trailing claimed frames of dead writers cut off (their seqs never reached anyone). */
  rewoundFrames: number;
  /** The damage found, if any. */
  damage?: LogDamage;
  /** With onDamage "truncate": where the log was cut and where the damaged files went. */
  truncated?: { seq: number; movedTo: string | undefined; movedFiles: string[] };
  /**
   * With onDamage "truncate": log.meta was damaged or missing while segment files
   * existed, so a fresh one was made from the segments (the old one, if any, is in
   * `damaged-<t>/`). The durable readers it held (`lostCursors`, those whose names
   * could be read) and the writers' intents are gone.
   */
  metaRebuilt?: MetaRebuild;
  /** With onDamage "truncate": the durable readers whose entries were malformed (or whose name two slots held), dropped; they start again from their `from` option. */
  droppedCursors?: string[];
  /** With onDamage "truncate": the entries moved into `damaged-<t>/` before the segments were checked (log.meta, a directory or link where a segment should be). */
  movedAside?: { movedTo: string; movedFiles: string[] };
}

/** How often a read-only log's tailing readers look for new records when its meta file is not writable. */
const READ_ONLY_POLL_MS = 50;
const TAIL_INDEX = SEG_TAIL_OFFSET >>> 2;

/** An opened log, for the `Log` facade to wrap. */
export interface OpenedLog {
  core: LogCore;
  /** The open lock, held (shared) until the log is closed. */
  openLock: FileLock | undefined;
  recovery: LogRecovery;
  /** Lets go of the log's directory descriptor. */
  releaseDir: () => void;
}

/**
 * Opens (or with `create`, creates) the log in `dir` with checked options:
 * everything `openLog()` does but wrapping the result. On failure it leaves
 * nothing open (and removes what a failed create made).
 */
export function openLogFiles(dir: string, options: CheckedLogOptions): OpenedLog {
  // The directory is opened once and checked (owner, mode); every file inside is reached through its descriptor.
  const truncate = options.onDamage === "truncate" && !options.readOnly;
  const dirs = openLogDir(dir, { create: options.create, readOnly: options.readOnly, mode: options.mode, locks: lockDir(dir), repair: truncate });
  let lock: FileLock | undefined;
  let exclusive = false;
  let createdMeta = false;
  let meta: Meta | undefined;
  let pollMs = 0;
  try {
    // With truncate, segment files without a usable log.meta are a log to repair, not "no log".
    if (!options.create && !(truncate && hasSegmentFiles(dir))) Meta.require(dir);
    const lockFile = path.join(lockDir(dir), OPEN_LOCK_FILE);
    if (options.readOnly) lock = acquireSharedOpenLock(lockFile, LOCK_TIMEOUT_MS);
    else ({ lock, exclusive } = acquireOpenLock(lockFile, LOCK_TIMEOUT_MS));
    let aside: DamagedDir | undefined;
    let metaRebuilt: MetaRebuild | undefined;
    if (truncate && exclusive) ({ aside, metaRebuilt } = clearTheWay(dir, options, dirs.setFileMode));
    // Made under the open lock: a process that holds it exclusively (and removes
    // leftover temporary files) then knows nobody is making a file meanwhile.
    if (options.create) createdMeta = Meta.create(dir, options.segmentSize, options.crc === true ? META_FLAG_CRC : 0);
    if (options.readOnly) ({ meta, pollMs } = openMetaForReading(dir));
    else meta = Meta.open(dir);
    dirs.setFileMode(options.mode ?? (meta.mode | 0o600)); // segments this writer adds: as the log was made (and writable by their owner)
    if (exclusive) removeTempFiles(dir);
    const crc = options.crc ?? (meta.flags & META_FLAG_CRC) !== 0;
    let check = checkLog(dir, meta, { repair: exclusive, readOnly: options.readOnly, verifyCrc: true, full: options.verify === "full", crc });
    const recovery: LogRecovery = { exclusive, abortedFrames: check.repaired.aborted, rewoundFrames: check.repaired.rewound };
    if (metaRebuilt !== undefined) recovery.metaRebuilt = metaRebuilt;
    if (aside?.path !== undefined) recovery.movedAside = { movedTo: aside.path, movedFiles: [...aside.moved] };
    if (check.damage !== undefined) {
      recovery.damage = { seq: check.damage.seq ?? 0, file: check.damage.path ?? "", reason: check.damage.message };
      if (options.onDamage === "throw") throw check.damage;
      if (options.onDamage === "truncate") {
        if (!exclusive)
          throw new MmapError("ERR_BUSY", `cannot truncate the damaged log while other processes have it open (${check.damage.message})`, { path: dir });
        recovery.truncated = truncateAtDamage(dir, meta, check, aside);
        check = checkLog(dir, meta, { repair: true, verifyCrc: true, full: false, crc });
        if (check.damage !== undefined) throw check.damage;
      }
    }
    if (listSegmentBases(dir).length === 0 && check.damage === undefined) {
      if (options.readOnly)
        throw new MmapError("ENOENT", `the log in '${dir}' has no segment file yet (the first writer to open it creates one); a read-only open creates nothing`, { path: dir });
      const base = meta.newestBase;
      Segment.create(dir, base, meta.segmentSize, options.durability !== "none").close();
      meta.raiseNewestBase(base);
    }
    if (exclusive && truncate) {
      const dropped = dropMalformedCursors(meta);
      if (dropped.length > 0) recovery.droppedCursors = dropped;
    }
    if (exclusive) {
      // A sleeper count a killed reader left; only now: an open that throws, or finds damage, changes nothing.
      if (check.damage === undefined) meta.resetDoorbellWaiters();
      meta.file.flush();
      downgradeOpenLock(lock!, LOCK_TIMEOUT_MS); // exclusive: not read-only, so there is a lock
    }
    const core = new LogCore(dir, meta, options.abandonTimeoutMs, options.durability, crc, options.readOnly, pollMs);
    core.setDamage(check.damage);
    return { core, openLock: lock, recovery, releaseDir: dirs.release };
  } catch (error) {
    meta?.close();
    // A create that failed (a full disk, say) leaves nothing behind that would pin a retry to
    // this attempt's options; only with the log to ourselves (nobody else can be using it).
    if (exclusive && (createdMeta || dirs.createdLocks || dirs.createdDir)) removeFailedCreate(dir, createdMeta, dirs.createdLocks, dirs.createdDir);
    lock?.close();
    dirs.release();
    throw error;
  }
}

/**
 * onDamage "truncate" with the log to ourselves: moves what would stop any open
 * (a segment name that is not a regular file, a damaged log.meta) into
 * damaged-<t>/ and rebuilds log.meta from the segments. Nothing is moved
 * unless one of those is found.
 */
function clearTheWay(dir: string, options: CheckedLogOptions, setFileMode: (mode: number) => void): { aside: DamagedDir; metaRebuilt: MetaRebuild | undefined } {
  const mode = options.mode ?? segmentFileMode(dir) ?? 0o600;
  const aside = new DamagedDir(dir, mode);
  if (!hasSegmentFiles(dir)) return { aside, metaRebuilt: undefined };
  moveNonFileSegments(dir, aside);
  const reason = metaDamage(dir);
  if (reason === undefined) return { aside, metaRebuilt: undefined };
  setFileMode(mode); // the rebuilt meta gets the segments' mode (the log's own)
  return { aside, metaRebuilt: rebuildMeta(dir, reason, aside, options.crc, options.segmentSize) };
}

/** Removes what a failed create made: log.meta, the lock files and locks/, the directory. Best effort. */
function removeFailedCreate(dir: string, meta: boolean, locks: boolean, made: boolean): void {
  const attempt = (fn: () => void): void => {
    try {
      fn();
    } catch {
      /* report the create's own error */
    }
  };
  if (meta) attempt(() => removeInLog(path.join(dir, META_FILE_NAME)));
  if (locks) {
    const ld = lockDir(dir);
    attempt(() => {
      for (const name of fs.readdirSync(viaDir(ld))) removeInLog(path.join(ld, name));
    });
    attempt(() => removeDirInLog(ld));
  }
  if (made) attempt(() => fs.rmdirSync(dir));
}

/**
 * The meta file of a read-only open: mapped writable (shared) so tailing can
 * park on its doorbell, or, where this process may not write it, read-only
 * (private) with tailing polling instead (a write to a private mapping would
 * detach this process from the file's doorbell and hints).
 */
function openMetaForReading(dir: string): { meta: Meta; pollMs: number } {
  try {
    return { meta: Meta.open(dir), pollMs: 0 };
  } catch (error) {
    const code = (error as MmapError).code;
    if (code !== "EACCES" && code !== "EPERM" && code !== "EROFS") throw error;
    return { meta: Meta.open(dir, true), pollMs: READ_ONLY_POLL_MS };
  }
}

/**
 * Removes the temporary files of creators that died (exclusive open only:
 * every creator holds the open lock while it makes one, so none is live).
 */
function removeTempFiles(dir: string): void {
  for (const name of inDir(dir, (resolved) => fs.readdirSync(resolved))) if (name.startsWith(".") && name.endsWith(".tmp")) removeInLog(path.join(dir, name));
}

/** Cuts the log where the damage starts (exclusive open only). */
function truncateAtDamage(dir: string, meta: Meta, check: LogCheck, aside = new DamagedDir(dir, meta.mode)): NonNullable<LogRecovery["truncated"]> {
  const at = check.damageAt!;
  const seq = check.damage!.seq ?? check.nextSeq;
  const move = check.bases.filter((base) => (at.pos === undefined ? base >= at.base : base > at.base));
  const movedFiles: string[] = [];
  for (const base of move) {
    aside.moveIn(segmentFileName(base));
    movedFiles.push(segmentFileName(base));
  }
  const movedTo = move.length > 0 ? aside.path : undefined;
  if (at.pos !== undefined) {
    const file = segmentPath(dir, at.base);
    const size = readHeaderPage(file).readUInt32LE(SEG_SIZE_OFFSET); // the header was validated by the check
    if (inDir(file, (resolved) => fs.lstatSync(resolved)).size < size) mapInLog(file, { access: "write", size }).close(); // grow back (allocated)
    const seg = Segment.open(file, at.base);
    try {
      seg.u8.fill(0, at.pos, seg.limit);
      // The index entries of the frames cut, too: a stale one would point into the frames appended there next.
      const index = seg.indexStart >>> 2;
      seg.u32.fill(0, index + Math.ceil((at.pos - seg.dataStart) / INDEX_INTERVAL), index + seg.indexEntries);
      writeU64(seg.u32, at.pos + RECORD_SEQ_OFFSET, seq);
      seg.setNextBaseHint(0);
      Atomics.store(seg.i32, TAIL_INDEX, at.pos);
      seg.file.flush();
    } finally {
      seg.close();
    }
    meta.setNewestBase(at.base);
  } else {
    const left = listSegmentBases(dir);
    if (left.length === 0) {
      // Nothing before the damage is readable: the log goes on, empty, from the damaged seq (so it opens again).
      Segment.create(dir, seq, meta.segmentSize, true).close();
      meta.setNewestBase(seq);
    } else meta.setNewestBase(left[left.length - 1]!);
  }
  // A durable reader past the cut would skip the records appended there next.
  for (let i = 0; i < CURSOR_COUNT; i++) {
    let cursor;
    try {
      cursor = meta.cursorAt(i);
    } catch {
      continue; // a malformed entry stays as it is, reported wherever it is used
    }
    if (cursor !== undefined && cursor.seq > seq) meta.setCursorSeq(i, seq);
  }
  meta.file.flush();
  fsyncDir(dir);
  return { seq, movedTo, movedFiles };
}
