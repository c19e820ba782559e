/**
 * `memmap evict <paths…>`: drop files from the page cache (vmtouch -e).
 * Dirty pages are written first so they can go too; pages another process
 * has mapped and in use stay, and are reported as still resident.
 */
import { evictFile } from "../index.ts";
import { formatBytes, formatCount, formatDuration } from "./common.ts";
import type { FileSet } from "./files.ts";
import { measureResidency } from "./residency.ts";
import { finishPass, printPassJson, runResidencyPass } from "./residency-pass.ts";
import { describeTotal } from "./stat.ts";

export interface EvictCommandOptions {
  json?: boolean;
}

/** `paths`: as given on the command line, or already collected (collectFiles). */
export function runEvict(paths: readonly string[] | FileSet, options: EvictCommandOptions): number {
  const pass = runResidencyPass("evict", paths, options.json, (file, fd, advance) => {
    try {
      const was = measureResidency(fd, 0, file.path);
      evictFile(fd);
      return [was, measureResidency(fd, 0, file.path)];
    } finally {
      // A file that failed counts as done too.
      advance(file.size);
    }
  });
  const { totalBefore, total, elapsed } = pass;
  const evicted = Math.max(0, totalBefore.resident - total.resident);
  if (options.json) {
    printPassJson(pass, { evicted });
  } else {
    process.stdout.write(
      `Evicted ${formatCount(evicted)} pages (${formatBytes(Math.max(0, totalBefore.residentBytes - total.residentBytes))}) in ${formatDuration(elapsed)}\n` +
        `Now: ${describeTotal(total)}\n`,
    );
    if (total.resident > 0)
      process.stdout.write("(pages still resident are mapped and in use by a process, or could not be written back)\n");
  }
  return finishPass(pass);
}
