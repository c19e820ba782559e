/**
 * Issue 16.4: `memmap lock` skips files over a per-file cap (default 500 MiB,
 * like vmtouch -m; raised with --max-size), so a huge sparse file planted in
 * a tree cannot turn its holes into locked memory. The files are sparse:
 * nothing is allocated unless the cap fails.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, test } from "node:test";
import { startCli, tempDir, waitForOutput } from "./fixtures/cli-run.ts";

const { dir, remove } = tempDir();
after(remove);

interface Locked {
  total: { files: number; size: number };
  lockedBytes?: number;
}

/** Runs `memmap lock --json …args` until it holds its files; its first JSON line and its stderr. */
async function lockOnce(args: string[]): Promise<{ locked: Locked; stderr: string; code: number | null }> {
  const child = startCli(["lock", "--json", ...args]);
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const closed = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  let out: string;
  try {
    out = await waitForOutput(child, /"event":"locked"/, 60_000);
  } finally {
    child.kill("SIGTERM");
  }
  const code = await closed;
  return { locked: JSON.parse(out.split("\n")[0]!) as Locked, stderr, code };
}

function sparse(name: string, size: number): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, "");
  fs.truncateSync(file, size);
  return file;
}

test("--max-size: a file one byte over the cap is skipped with a message; the others are locked", async () => {
  const tree = path.join(dir, "small-cap");
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, "fits.bin"), Buffer.alloc(64 * 1024, 1));
  fs.writeFileSync(path.join(tree, "over.bin"), "");
  fs.truncateSync(path.join(tree, "over.bin"), 64 * 1024 + 1);
  const { locked, stderr, code } = await lockOnce(["--max-size", "64k", tree]);
  assert.equal(code, 0, stderr);
  assert.deepEqual(locked.total, { ...locked.total, files: 1, size: 64 * 1024 });
  assert.match(stderr, /skipped .*over\.bin: 64\.0 KiB is larger than the --max-size of 64\.0 KiB/);
});

test("by default, a sparse 600 MiB file is skipped without being locked", async () => {
  const big = sparse("big-sparse.bin", 600 * 1024 * 1024);
  const small = path.join(dir, "small.bin");
  fs.writeFileSync(small, Buffer.alloc(4096, 1));
  const { locked, stderr, code } = await lockOnce([big, small]);
  assert.equal(code, 0, stderr);
  assert.deepEqual({ files: locked.total.files, size: locked.total.size }, { files: 1, size: 4096 });
  if (locked.lockedBytes !== undefined) assert.ok(locked.lockedBytes < 100 * 1024 * 1024, `locked ${locked.lockedBytes} bytes`);
  assert.match(stderr, /skipped .*big-sparse\.bin: 600 MiB is larger than the --max-size of 500 MiB/);
  assert.equal(fs.statSync(big).blocks, 0, "the sparse file's holes were filled");
});
