/**
 * `memmap stat <paths…>`: how much of each file is in the page cache, like
 * `fincore` and `vmtouch`, per file and in total.
 */
import { pageSize } from "../index.ts";
import { EXIT_FAILURE, EXIT_OK, formatBytes, formatCount, formatPercent, percent, printJson, table } from "./common.ts";
import { SkippedEntry, collectFiles, fileProblem, reportNotices, withEntry, type FileProblem } from "./files.ts";
import { MAP_WIDTH, measureResidency, type FileResidency } from "./residency.ts";

export interface StatOptions {
  json?: boolean;
  /** Print a residency map per file; a number sets its width. */
  map?: boolean | number;
  /** Only the totals. */
  summary?: boolean;
}

/** Totals over a set of files. */
export interface ResidencyTotal {
  files: number;
  directories: number;
  size: number;
  pages: number;
  resident: number;
  residentBytes: number;
  percent: number;
}

/** Resident bytes of a file: whole pages, except the file's last, partial one. */
export function residentBytes(r: { size: number; resident: number; pages: number }): number {
  return Math.min(r.resident * pageSize, r.size);
}

export function totalOf(files: readonly FileResidency[], directories: number): ResidencyTotal {
  const t = { files: files.length, directories, size: 0, pages: 0, resident: 0, residentBytes: 0, percent: 0 };
  for (const f of files) {
    t.size += f.size;
    t.pages += f.pages;
    t.resident += f.resident;
    t.residentBytes += residentBytes(f);
  }
  t.percent = percent(t.resident, t.pages);
  return t;
}

/** "3 files in 1 directory: 12.0 MiB of 12.0 MiB resident (3,072 of 3,072 pages, 100%)" */
export function describeTotal(t: ResidencyTotal, what = "resident"): string {
  const files = `${formatCount(t.files)} file${t.files === 1 ? "" : "s"}`;
  const dirs = t.directories > 0 ? ` in ${formatCount(t.directories)} director${t.directories === 1 ? "y" : "ies"}` : "";
  return `${files}${dirs}: ${formatBytes(t.residentBytes)} of ${formatBytes(t.size)} ${what} (${formatCount(t.resident)} of ${formatCount(t.pages)} pages, ${formatPercent(t.resident, t.pages)})`;
}

export function reportErrors(errors: readonly FileProblem[]): void {
  for (const e of errors) process.stderr.write(`memmap: ${e.message}\n`);
}

export function runStat(paths: string[], options: StatOptions): number {
  const mapWidth = options.map === true ? MAP_WIDTH : typeof options.map === "number" ? options.map : 0;
  const set = collectFiles(paths);
  const results: FileResidency[] = [];
  for (const file of set.files) {
    try {
      results.push(withEntry(file, (fd) => measureResidency(fd, mapWidth, file.path)));
    } catch (error) {
      if (error instanceof SkippedEntry) {
        set.skipped++;
        set.notices.push(error.message);
      } else set.errors.push(fileProblem(file.path, error));
    }
  }
  const total = totalOf(results, set.directories);

  if (options.json) {
    printJson({
      pageSize,
      files: options.summary
        ? undefined
        : results.map((r) => ({ ...r, residentBytes: residentBytes(r), percent: percent(r.resident, r.pages) })),
      total,
      skipped: set.skipped,
      errors: set.errors,
    });
  } else {
    if (!options.summary && results.length > 0) {
      const rows = [["SIZE", "RESIDENT", "PAGES", "%", "FILE"]];
      for (const r of results) {
        rows.push([
          formatBytes(r.size),
          formatBytes(residentBytes(r)),
          `${formatCount(r.resident)}/${formatCount(r.pages)}`,
          formatPercent(r.resident, r.pages),
          r.path,
        ]);
      }
      const lines = table(rows, new Set([4])).split("\n");
      const out: string[] = [lines[0]!];
      results.forEach((r, i) => {
        out.push(lines[i + 1]!);
        if (r.map !== undefined && r.pages > 0) out.push(`  [${r.map}]`);
      });
      process.stdout.write(`${out.join("\n")}\n`);
    }
    if (results.length > 0 || set.errors.length === 0) process.stdout.write(`Total: ${describeTotal(total)}\n`);
  }
  reportNotices(set);
  reportErrors(set.errors);
  return set.errors.length > 0 ? EXIT_FAILURE : EXIT_OK;
}
