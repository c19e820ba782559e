/**
 * `memmap warm <paths…>`: bring files into the page cache (vmtouch -t).
 *
 * Each file is mapped read-only and walked in slices: the slice ahead is
 * announced with madvise(WILLNEED) so the kernel reads it while we fault in
 * the current one by reading one byte per page. Reading never writes, so the
 * private mapping shares the page cache's pages and copies nothing.
 */
import { mapFile, pageSize, type MappedFile } from "../index.ts";
import { formatBytes, formatDuration, formatRate } from "./common.ts";
import type { FileSet } from "./files.ts";
import { residencyOf } from "./residency.ts";
import { finishPass, printPassJson, runResidencyPass } from "./residency-pass.ts";
import { describeTotal } from "./stat.ts";

/** Bytes faulted in per step (and announced ahead with WILLNEED). */
const SLICE_BYTES = 8 << 20;

export interface WarmOptions {
  json?: boolean;
}

/** Where the page reads go, so no compiler can drop them as unused. */
export let warmChecksum = 0;

/** Faults in every page of the mapping; calls `onBytes` after each slice. */
function touchAll(m: MappedFile, onBytes: (bytes: number) => void): number {
  const size = m.byteLength;
  let sink = 0;
  if (size > 0) m.advise("willneed", 0, Math.min(SLICE_BYTES, size));
  for (let offset = 0; offset < size; offset += SLICE_BYTES) {
    const length = Math.min(SLICE_BYTES, size - offset);
    const next = offset + length;
    if (next < size) m.advise("willneed", next, Math.min(SLICE_BYTES, size - next));
    const bytes = m.window(offset, length);
    // Offsets are page-aligned from the start of the file (slices are whole pages).
    for (let i = 0; i < length; i += pageSize) sink ^= bytes[i]!;
    onBytes(length);
  }
  return sink;
}

/** `paths`: as given on the command line, or already collected (collectFiles). */
export function runWarm(paths: readonly string[] | FileSet, options: WarmOptions): number {
  let sink = 0;
  const pass = runResidencyPass("warm", paths, options.json, (file, fd, advance) => {
    const m = mapFile(fd);
    try {
      const was = residencyOf(m, file.path);
      sink ^= touchAll(m, advance);
      return [was, residencyOf(m, file.path)];
    } finally {
      m.close();
    }
  });
  warmChecksum = sink;
  const { totalBefore, total, elapsed } = pass;
  // What had to come from disk: pages that were not resident before.
  const loadedBytes = Math.max(0, total.residentBytes - totalBefore.residentBytes);
  if (options.json) {
    printPassJson(
      pass,
      { loadedBytes },
      {
        bytesPerSecond: elapsed > 0 ? Math.round((total.size / elapsed) * 1000) : null,
        loadedBytesPerSecond: elapsed > 0 ? Math.round((loadedBytes / elapsed) * 1000) : null,
      },
    );
  } else {
    const cached = Math.max(0, total.residentBytes - loadedBytes);
    process.stdout.write(
      `Warmed ${describeTotal(total)}\n` +
        `Read ${formatBytes(loadedBytes)} from disk in ${formatDuration(elapsed)} (${formatRate(loadedBytes, elapsed)}); ` +
        `${formatBytes(cached)} was already in the page cache\n`,
    );
  }
  return finishPass(pass);
}
