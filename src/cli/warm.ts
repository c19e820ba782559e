/**
 * `memmap warm <paths…>`: bring files into the page cache (vmtouch -t).
 *
 * Each file is mapped read-only and walked in slices: the slice ahead is
 * announced with madvise(WILLNEED) so the kernel reads it while we fault in
 * the current one by reading one byte per page. Reading never writes, so the
 * private mapping shares the page cache's pages and copies nothing.
 */
import { mapFile, pageSize, type MappedFile } from "../index.ts";
import {
  EXIT_FAILURE,
  EXIT_OK,
  formatBytes,
  formatDuration,
  formatRate,
  printJson,
} from "./common.ts";
import { collectFiles, fileProblem } from "./files.ts";
import { Progress } from "./progress.ts";
import { residencyOf, type FileResidency } from "./residency.ts";
import { describeTotal, reportErrors, totalOf } from "./stat.ts";

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

export function runWarm(paths: string[], options: WarmOptions): number {
  const set = collectFiles(paths);
  const totalBytes = set.files.reduce((n, f) => n + f.size, 0);
  const progress = new Progress("warm", totalBytes, !options.json);
  const before: FileResidency[] = [];
  const after: FileResidency[] = [];
  let done = 0;
  let sink = 0;
  const started = performance.now();
  for (const file of set.files) {
    let m: MappedFile | undefined;
    try {
      m = mapFile(file.path);
      const was = residencyOf(m, file.path);
      sink ^= touchAll(m, (n) => {
        done += n;
        progress.update(done, file.path);
      });
      before.push(was);
      after.push(residencyOf(m, file.path));
    } catch (error) {
      set.errors.push(fileProblem(file.path, error));
    } finally {
      m?.close();
    }
  }
  const elapsed = performance.now() - started;
  warmChecksum = sink;
  progress.stop();

  const totalBefore = totalOf(before, set.directories);
  const total = totalOf(after, set.directories);
  // What had to come from disk: pages that were not resident before.
  const loadedBytes = Math.max(0, total.residentBytes - totalBefore.residentBytes);
  if (options.json) {
    printJson({
      pageSize,
      files: after.map((r, i) => ({
        path: r.path,
        size: r.size,
        pages: r.pages,
        residentBefore: before[i]!.resident,
        resident: r.resident,
      })),
      total: { ...total, residentBefore: totalBefore.resident, loadedBytes },
      elapsedMs: Math.round(elapsed * 1000) / 1000,
      bytesPerSecond: elapsed > 0 ? Math.round((total.size / elapsed) * 1000) : null,
      loadedBytesPerSecond: elapsed > 0 ? Math.round((loadedBytes / elapsed) * 1000) : null,
      skipped: set.skipped,
      errors: set.errors,
    });
  } else {
    const cached = Math.max(0, total.residentBytes - loadedBytes);
    process.stdout.write(
      `Warmed ${describeTotal(total)}\n` +
        `Read ${formatBytes(loadedBytes)} from disk in ${formatDuration(elapsed)} (${formatRate(loadedBytes, elapsed)}); ` +
        `${formatBytes(cached)} was already in the page cache\n`,
    );
  }
  reportErrors(set.errors);
  return set.errors.length > 0 ? EXIT_FAILURE : EXIT_OK;
}
