/**
 * The one temporary-directory helper of the test suites (and their
 * fixtures): a fresh private directory under the system temp dir.
 *
 * Cleanup is automatic: removeTmpDir() removes one early (a suite's after()
 * hook, a test's finally), and whatever a test left behind (a failed
 * assertion before its cleanup) is removed when the process exits.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const made = new Set<string>();
let sweeping = false;

/** A fresh directory `<tmpdir>/<prefix>XXXXXX` (mode 0700), removed at the latest when the process exits. */
export function makeTmpDir(prefix = "memmap-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.add(dir);
  if (!sweeping) {
    sweeping = true;
    process.on("exit", () => {
      for (const d of made) fs.rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

/** Removes a directory made by makeTmpDir() (or any other) now, with everything in it. */
export function removeTmpDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  made.delete(dir);
}

/**
 * makeTmpDir() for `using`: the directory is removed when the block is left,
 * however it is left (the try/finally of a test, written once).
 *
 * ```ts
 * using tmp = tmpDir();
 * fs.writeFileSync(path.join(tmp.path, "a.bin"), data);
 * ```
 */
export function tmpDir(prefix = "memmap-"): { readonly path: string } & Disposable {
  const dir = makeTmpDir(prefix);
  return { path: dir, [Symbol.dispose]: () => removeTmpDir(dir) };
}
