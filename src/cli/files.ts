/**
 * Expands the paths given to stat/warm/evict/lock into the regular files
 * they name, walking directories recursively.
 *
 * Like vmtouch: symbolic links given on the command line are followed, those
 * found inside directories are not (no loops, no escaping the tree); a file
 * reached twice (a hard link, or named twice) is counted once; sockets,
 * devices and FIFOs are skipped. A path that cannot be read is reported and
 * the rest still processed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { errorCode } from "./common.ts";

export interface FileEntry {
  path: string;
  size: number;
}

/** A path that could not be read, with the reason. */
export interface FileProblem {
  path: string;
  code: string;
  message: string;
}

export interface FileSet {
  files: FileEntry[];
  /** Directories walked, including the ones named on the command line. */
  directories: number;
  /** Entries that are not regular files (symbolic links inside directories, devices…). */
  skipped: number;
  errors: FileProblem[];
}

/** "ENOENT: no such file or directory, stat 'x'" -> "x: no such file or directory (ENOENT)" */
export function fileProblem(filePath: string, error: unknown): FileProblem {
  const code = errorCode(error);
  const raw = error instanceof Error ? error.message : String(error);
  const fsStyle = /^[A-Z0-9_]+: ([^,]+),/.exec(raw);
  const addonStyle = /^[a-z_0-9]+: ([^']+?)\s*(?:'.*')?$/.exec(raw);
  // The path goes in front once; messages that quote it already lose the quote.
  const reason = (fsStyle ? fsStyle[1]! : addonStyle ? addonStyle[1]! : raw).replace(` '${filePath}'`, "");
  const suffix = /^E[A-Z0-9]+$/.test(code) && !reason.includes(code) ? ` (${code})` : "";
  return { path: filePath, code, message: `${filePath}: ${reason.trim()}${suffix}` };
}

/** Collects the regular files named by `paths`, directories expanded. */
export function collectFiles(paths: readonly string[]): FileSet {
  const set: FileSet = { files: [], directories: 0, skipped: 0, errors: [] };
  const seen = new Set<string>();

  const addFile = (filePath: string, st: fs.Stats): void => {
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    set.files.push({ path: filePath, size: st.size });
  };

  const walk = (dir: string): void => {
    set.directories++;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      set.errors.push(fileProblem(dir, error));
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const child = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) {
        try {
          addFile(child, fs.lstatSync(child));
        } catch (error) {
          set.errors.push(fileProblem(child, error)); // removed while we walked
        }
      } else set.skipped++;
    }
  };

  for (const p of paths) {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch (error) {
      set.errors.push(fileProblem(p, error));
      continue;
    }
    if (st.isDirectory()) walk(p);
    else if (st.isFile()) addFile(p, st);
    else set.errors.push({ path: p, code: "ENODEV", message: `${p}: not a regular file or directory` });
  }
  return set;
}
