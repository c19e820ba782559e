/**
 * Issue 16.3: evictFile() and the CLI's tree walks (stat, warm, evict, lock)
 * never wait on a FIFO and never leave the tree they were given, even when
 * another user (uid 65534) swaps entries of the tree while it is walked.
 * The swap is made deterministic: the test walks the tree (collectFiles),
 * swaps entries, then runs the command on what the walk found.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { FIXTURES_DIR, makeTmpDir, removeTmpDir } from "./fixtures/core-helpers.ts";
import { runCli, startCli, waitForOutput } from "./fixtures/cli-run.ts";

const isRoot = process.getuid?.() === 0;
const PAGE = 4096;
let dir: string;
let outsideDir: string;
let outside: string;

before(() => {
  dir = makeTmpDir();
  fs.chmodSync(dir, 0o755);
  outsideDir = fs.mkdtempSync("/tmp/memmap-outside-");
  fs.chmodSync(outsideDir, 0o755); // uid 65534 can link to it; only root can write it
  outside = path.join(outsideDir, "x.bin");
  fs.writeFileSync(outside, Buffer.alloc(7 * PAGE, 1));
});
after(() => {
  removeTmpDir(dir);
  removeTmpDir(outsideDir);
});

function runChild(args: string[]): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", path.join(FIXTURES_DIR, "security-tree-child.ts"), ...args], {
    encoding: "utf8",
    timeout: 60_000, // a hang guard: a regression blocks in open(2) forever
    killSignal: "SIGKILL",
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** A world-writable tree: a.bin (1 page), b.bin (2 pages), c.bin (3 pages), sub/x.bin (4 pages). */
function makeTree(name: string): string {
  const tree = path.join(dir, name);
  fs.mkdirSync(path.join(tree, "sub"), { recursive: true });
  fs.writeFileSync(path.join(tree, "a.bin"), Buffer.alloc(PAGE, 2));
  fs.writeFileSync(path.join(tree, "b.bin"), Buffer.alloc(2 * PAGE, 2));
  fs.writeFileSync(path.join(tree, "c.bin"), Buffer.alloc(3 * PAGE, 2));
  fs.writeFileSync(path.join(tree, "sub", "x.bin"), Buffer.alloc(4 * PAGE, 2));
  for (const p of [tree, path.join(tree, "sub")]) fs.chmodSync(p, 0o777);
  return tree;
}

test("evictFile(fifo) fails at once with a coded error instead of blocking in open()", () => {
  const fifo = path.join(dir, "evict.fifo");
  execFileSync("mkfifo", [fifo]);
  const r = runChild(["evict", fifo]);
  assert.deepEqual({ status: r.status, signal: r.signal }, { status: 0, signal: null }, `the child blocked opening the FIFO: ${r.stderr}`);
  const outcome = JSON.parse(r.stdout) as { ok: boolean; code: string; path: string };
  assert.equal(outcome.ok, false);
  assert.equal(outcome.code, "ENODEV");
});

describe("entries swapped by uid 65534 after the walk", { skip: !isRoot && "needs root (the attacker is uid 65534)" }, () => {
  // b.bin becomes a FIFO, c.bin a symlink to a file outside the tree, sub/ a symlink to a directory outside it.
  const swap = `rm b.bin && mkfifo b.bin && rm c.bin && ln -s ${"OUTSIDE"} c.bin && mv sub sub.old && ln -s ${"OUTSIDE_DIR"} sub`;
  for (const command of ["warm", "evict", "lock"]) {
    test(`${command}: skips them with a message; never waits on the FIFO, never processes a file outside the tree`, () => {
      const tree = makeTree(`swap-${command}`);
      const r = runChild(["swap", command, tree, swap.replace("OUTSIDE_DIR", outsideDir).replace("OUTSIDE", outside)]);
      assert.equal(r.signal, null, `the command hung: ${r.stderr}`);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!r.stdout.includes(outside) && !r.stdout.includes(outsideDir), r.stdout);
      const json = JSON.parse(command === "lock" ? r.stdout.split("\n")[0]! : r.stdout) as { files?: { path: string; size: number }[]; total: { files: number; size: number } };
      if (json.files) assert.deepEqual(json.files.map((f) => path.basename(f.path)), ["a.bin"]);
      assert.deepEqual({ files: json.total.files, size: json.total.size }, { files: 1, size: PAGE });
      for (const name of ["b.bin", "c.bin", path.join("sub", "x.bin")])
        assert.match(r.stderr, new RegExp(`skipped ${path.join(tree, name).replace(/\./g, "\\.")}`), r.stderr);
    });
  }
});

describe("a tree with a FIFO and a symlink to an outside file", () => {
  let tree: string;
  before(() => {
    tree = path.join(dir, "mixed");
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, "a.bin"), Buffer.alloc(PAGE, 3));
    execFileSync("mkfifo", [path.join(tree, "pipe")]);
    fs.symlinkSync(outside, path.join(tree, "link.bin"));
  });

  for (const command of ["stat", "warm", "evict"]) {
    test(`${command}: the FIFO is skipped with a message, the link is not followed`, async () => {
      const r = await runCli([command, "--json", tree], { timeout: 60_000 });
      assert.equal(r.signal, null, `hung: ${r.stderr}`);
      assert.equal(r.code, 0, r.stderr);
      const json = JSON.parse(r.stdout) as { files: { path: string }[]; total: { files: number }; skipped: number };
      assert.deepEqual(json.files.map((f) => f.path), [path.join(tree, "a.bin")]);
      assert.equal(json.skipped, 2);
      assert.match(r.stderr, /skipped .*\/mixed\/pipe: a FIFO, not a regular file/);
      assert.ok(!r.stderr.includes("link.bin") && !r.stdout.includes(outside));
    });
  }

  test("lock: the FIFO is skipped with a message, the link is not followed", async () => {
    const child = startCli(["lock", "--json", tree]);
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const out = await waitForOutput(child, /"event":"locked"/, 60_000);
    child.kill("SIGTERM");
    await new Promise((resolve) => child.on("close", resolve));
    const locked = JSON.parse(out.split("\n")[0]!) as { total: { files: number; size: number } };
    assert.deepEqual({ files: locked.total.files, size: locked.total.size }, { files: 1, size: PAGE });
    assert.match(stderr, /skipped .*\/mixed\/pipe: a FIFO, not a regular file/);
  });
});
