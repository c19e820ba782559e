/**
 * `memmap evict <paths…>`: drop files from the page cache (vmtouch -e).
 * Dirty pages are written first so they can go too; pages another process
 * has mapped and in use stay, and are reported as still resident.
 */
import { evictFile, pageSize } from "../index.ts";
import { EXIT_FAILURE, EXIT_OK, formatBytes, formatCount, formatDuration, printJson } from "./common.ts";
import { collectFiles, fileProblem } from "./files.ts";
import { Progress } from "./progress.ts";
import { measureResidency, type FileResidency } from "./residency.ts";
import { describeTotal, reportErrors, totalOf } from "./stat.ts";

export interface EvictCommandOptions {
  json?: boolean;
}

export function runEvict(paths: string[], options: EvictCommandOptions): number {
  const set = collectFiles(paths);
  const totalBytes = set.files.reduce((n, f) => n + f.size, 0);
  const progress = new Progress("evict", totalBytes, !options.json);
  const before: FileResidency[] = [];
  const after: FileResidency[] = [];
  let done = 0;
  const started = performance.now();
  for (const file of set.files) {
    try {
      const was = measureResidency(file.path);
      evictFile(file.path);
      before.push(was);
      after.push(measureResidency(file.path));
    } catch (error) {
      set.errors.push(fileProblem(file.path, error));
    }
    done += file.size;
    progress.update(done, file.path);
  }
  const elapsed = performance.now() - started;
  progress.stop();

  const totalBefore = totalOf(before, set.directories);
  const total = totalOf(after, set.directories);
  const evicted = Math.max(0, totalBefore.resident - total.resident);
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
      total: { ...total, residentBefore: totalBefore.resident, evicted },
      elapsedMs: Math.round(elapsed * 1000) / 1000,
      skipped: set.skipped,
      errors: set.errors,
    });
  } else {
    process.stdout.write(
      `Evicted ${formatCount(evicted)} pages (${formatBytes(Math.max(0, totalBefore.residentBytes - total.residentBytes))}) in ${formatDuration(elapsed)}\n` +
        `Now: ${describeTotal(total)}\n`,
    );
    if (total.resident > 0)
      process.stdout.write("(pages still resident are mapped and in use by a process, or could not be written back)\n");
  }
  reportErrors(set.errors);
  return set.errors.length > 0 ? EXIT_FAILURE : EXIT_OK;
}
