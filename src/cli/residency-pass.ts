/**
 * A pass over files that changes how much of them is in the page cache
 * (warm, evict): each file's residency before and after, with a progress
 * line, and the JSON report the commands share.
 */
import { pageSize } from "../index.ts";
import { EXIT_FAILURE, EXIT_OK, printJson } from "./common.ts";
import { SkippedEntry, collectFiles, fileProblem, reportNotices, withEntry, type FileEntry, type FileSet } from "./files.ts";
import { Progress } from "./progress.ts";
import type { FileResidency } from "./residency.ts";
import { reportErrors, totalOf, type ResidencyTotal } from "./stat.ts";

export interface ResidencyPass {
  set: FileSet;
  /** Per file that was processed: its residency before and after. */
  before: FileResidency[];
  after: FileResidency[];
  totalBefore: ResidencyTotal;
  total: ResidencyTotal;
  /** How long the pass took, in ms. */
  elapsed: number;
}

/**
 * Runs `visit` on every file named by `paths` (or already collected), on a
 * descriptor opened and checked by openEntry(): it returns the file's
 * residency before and after, and reports its bytes done through `advance`.
 * A file whose visit throws joins `set.errors` and the pass goes on; one that
 * is no longer a regular file where the walk found it is skipped.
 */
export function runResidencyPass(
  label: string,
  paths: readonly string[] | FileSet,
  json: boolean | undefined,
  visit: (file: FileEntry, fd: number, advance: (bytes: number) => void) => [before: FileResidency, after: FileResidency],
): ResidencyPass {
  const set = Array.isArray(paths) ? collectFiles(paths) : (paths as FileSet);
  const totalBytes = set.files.reduce((n, f) => n + f.size, 0);
  const progress = new Progress(label, totalBytes, !json);
  const before: FileResidency[] = [];
  const after: FileResidency[] = [];
  let done = 0;
  const started = performance.now();
  for (const file of set.files) {
    const advance = (bytes: number): void => {
      done += bytes;
      progress.update(done, file.path);
    };
    try {
      const [was, now] = withEntry(file, (fd) => visit(file, fd, advance));
      before.push(was);
      after.push(now);
    } catch (error) {
      if (error instanceof SkippedEntry) {
        set.skipped++;
        set.notices.push(error.message);
        advance(file.size);
      } else set.errors.push(fileProblem(file.path, error));
    }
  }
  const elapsed = performance.now() - started;
  progress.stop();
  return {
    set,
    before,
    after,
    totalBefore: totalOf(before, set.directories),
    total: totalOf(after, set.directories),
    elapsed,
  };
}

/**
 * The pass as JSON: every file before and after, the totals with the
 * command's own figures added (`total`), then the command's rates (`rates`).
 */
export function printPassJson(
  pass: ResidencyPass,
  total: Record<string, number>,
  rates: Record<string, number | null> = {},
): void {
  printJson({
    pageSize,
    files: pass.after.map((r, i) => ({
      path: r.path,
      size: r.size,
      pages: r.pages,
      residentBefore: pass.before[i]!.resident,
      resident: r.resident,
    })),
    total: { ...pass.total, residentBefore: pass.totalBefore.resident, ...total },
    elapsedMs: Math.round(pass.elapsed * 1000) / 1000,
    ...rates,
    skipped: pass.set.skipped,
    errors: pass.set.errors,
  });
}

/** Prints the files that failed; the exit status of the pass. */
export function finishPass(pass: ResidencyPass): number {
  reportNotices(pass.set);
  reportErrors(pass.set.errors);
  return pass.set.errors.length > 0 ? EXIT_FAILURE : EXIT_OK;
}
