/**
 * Retention: dropping a log's old segments by count, bytes or age — oldest
 * first, never the newest, and never one holding records a durable reader
 * has not consumed (unless the policy says `ignoreCursors`).
 */
import * as fs from "node:fs";
import type { LogCore } from "./core.ts";
import { corrupt } from "./damage.ts";
import { removeInLog, viaDir } from "./dir.ts";
import { SEG_CREATED_AT_OFFSET } from "./layout.ts";
import type { Durability, RetentionOptions } from "./options.ts";
import { listSegmentBases, segmentPath } from "./recovery.ts";
import { fsyncDir, readHeaderPage } from "./segment.ts";

/** Drops the segments `policy` (checked) lets go; returns their files. */
export function dropOldSegments(core: LogCore, policy: RetentionOptions, durability: Durability): string[] {
  const dir = core.dir;
  const meta = core.meta;
  const bases = listSegmentBases(dir);
  if (bases.length <= 1) return [];
  meta.raiseNewestBase(bases[bases.length - 1]!); // so no writer re-creates a dropped segment
  let minCursor = Infinity;
  if (policy.ignoreCursors !== true) {
    const cursors = meta.cursors(); // ERR_CORRUPT for a malformed one: it could need any record
    minCursor = Math.min(Infinity, ...cursors.map((cursor) => cursor.seq));
    const ahead = cursors.find((cursor) => cursor.seq > bases[bases.length - 1]!);
    if (ahead !== undefined) {
      // Past the newest segment's base: it must not be past the end either (a damaged cursor would let everything go).
      const end = core.end();
      core.release(end.seg);
      const bad = cursors.find((cursor) => cursor.seq > end.seq);
      if (bad !== undefined) throw corrupt(undefined, meta.path, `durable reader "${bad.name}" is at seq ${bad.seq}, past the end of the log (${end.seq}): its cursor is damaged`);
    }
  }
  const sizes = bases.map((base) => fileSize(segmentPath(dir, base)));
  let count = bases.length;
  let bytes = sizes.reduce((sum, size) => sum + size, 0);
  const now = Date.now();
  const dropped: string[] = [];
  for (let i = 0; i < bases.length - 1; i++) {
    const over =
      (policy.maxSegments !== undefined && count > policy.maxSegments) ||
      (policy.maxBytes !== undefined && bytes > policy.maxBytes) ||
      // every record of segment i is older than the next segment's creation
      (policy.maxAgeMs !== undefined && createdAt(segmentPath(dir, bases[i + 1]!)) < now - policy.maxAgeMs);
    if (!over || bases[i + 1]! > minCursor) break;
    const file = segmentPath(dir, bases[i]!);
    removeInLog(file);
    core.forget(bases[i]!);
    dropped.push(file);
    count--;
    bytes -= sizes[i]!;
  }
  if (dropped.length > 0 && durability !== "none") fsyncDir(dir);
  return dropped;
}

function fileSize(file: string): number {
  try {
    return fs.lstatSync(viaDir(file)).size;
  } catch {
    return 0;
  }
}

/** A segment's creation time, from its header (read, not mapped). */
function createdAt(file: string): number {
  try {
    return readHeaderPage(file).readDoubleLE(SEG_CREATED_AT_OFFSET);
  } catch {
    return Infinity;
  }
}
