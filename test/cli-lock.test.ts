/**
 * `memmap lock`: holds files locked in memory until SIGINT, then releases
 * them; a too-small RLIMIT_MEMLOCK gives a clear one-line message.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { cliMain, fincorePages, oneLine, runCli, startCli, tempDir, waitForOutput } from "./fixtures/cli-run.ts";

const { dir, remove } = tempDir();
after(remove);
const file = path.join(dir, "locked.bin");
fs.writeFileSync(file, Buffer.alloc(6 << 20, 3));

function vmLck(pid: number): number {
  const match = /^VmLck:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match![1]) * 1024;
}

function exitOf(child: ReturnType<typeof startCli>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
}

test("lock holds the file's pages locked until SIGINT, then releases them and exits 0", async () => {
  const child = startCli(["lock", "--json", file]);
  const exited = exitOf(child);
  try {
    const out = await waitForOutput(child, /"event":"locked".*\n/);
    const locked = JSON.parse(out.split("\n")[0]!) as {
      pid: number;
      total: { files: number; pages: number; resident: number };
      lockedBytes: number;
    };
    assert.equal(locked.pid, child.pid);
    assert.equal(locked.total.files, 1);
    assert.equal(locked.total.resident, locked.total.pages);
    assert.ok(vmLck(child.pid!) >= 6 << 20, "the kernel counts the file's pages as locked by the process");
    assert.equal(locked.lockedBytes, vmLck(child.pid!));
    // The locked pages are the page cache's own (a shared mapping), so fincore sees them all.
    assert.equal(fincorePages([file]).get(file), (6 << 20) / 4096);

    let rest = "";
    child.stdout!.on("data", (d: string) => (rest += d));
    child.kill("SIGINT");
    const { code, signal } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0);
    const released = JSON.parse((out.split("\n").slice(1).join("\n") + rest).trim()) as { event: string; signal: string; lockedBytes: number };
    assert.deepEqual(released, { event: "released", signal: "SIGINT", files: 1, lockedBytes: 0 });
  } finally {
    child.kill("SIGKILL");
  }
});

test("lock prints what it holds and how to stop", async () => {
  const child = startCli(["lock", dir]);
  const exited = exitOf(child);
  try {
    const out = await waitForOutput(child, /press Ctrl-C to release\.\n/);
    assert.match(out, /^Locked 1 file in 1 directory: 6\.0 MiB of 6\.0 MiB locked \(1,536 of 1,536 pages, 100%\)\n/);
    child.kill("SIGINT");
    assert.equal((await exited).code, 0);
  } finally {
    child.kill("SIGKILL");
  }
});

const canDropCapability = spawnSync("setpriv", ["--bounding-set", "-ipc_lock", "true"]).status === 0;

test("a too-small RLIMIT_MEMLOCK: exit 1 and a one-line explanation", { skip: !canDropCapability && "needs setpriv and root" }, async () => {
  // Without CAP_IPC_LOCK (root has it) the kernel enforces the 1 MiB limit.
  const child = startCli(["lock", file], ["setpriv", "--bounding-set", "-ipc_lock", "prlimit", "--memlock=1048576:1048576"]);
  let stderr = "";
  let stdout = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  const { code } = await exitOf(child);
  assert.equal(code, 1, stderr);
  assert.equal(stdout, "");
  assert.match(
    oneLine(stderr),
    /^memmap: cannot lock 6\.0 MiB in memory: the locked-memory limit \(RLIMIT_MEMLOCK\) is 1\.0 MiB; raise it \(ulimit -l.*\) or grant CAP_IPC_LOCK$/,
  );
});

// The unprivileged user must also reach the CLI itself: a clone under a 0700 directory (mktemp -d) hides it.
const canBecomeNobody = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "test", "-r", cliMain]).status === 0;

test("an unprivileged user locks a file it may only read", { skip: !canBecomeNobody && "needs setpriv, root, and the CLI readable by uid 65534" }, async () => {
  fs.chmodSync(dir, 0o755); // let the unprivileged user reach the file
  const readOnly = path.join(dir, "read-only.bin");
  fs.writeFileSync(readOnly, Buffer.alloc(64 * 1024, 1), { mode: 0o444 });
  const child = startCli(["lock", "--json", readOnly], ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
  const exited = exitOf(child);
  try {
    const out = await waitForOutput(child, /"event":"locked".*\n/);
    const locked = JSON.parse(out.split("\n")[0]!) as { total: { pages: number; resident: number } };
    assert.equal(locked.total.resident, 16);
    assert.ok(vmLck(child.pid!) >= 64 * 1024);
    // The page cache's own pages are locked: the process holds no private copies of them.
    const smaps = fs.readFileSync(`/proc/${child.pid}/smaps`, "utf8").split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
    const mapping = smaps.find((b) => b.split("\n")[0]!.endsWith(` ${readOnly}`));
    assert.ok(mapping, "the file is mapped");
    assert.match(mapping, /^Locked:\s+64 kB$/m);
    assert.match(mapping, /^Anonymous:\s+0 kB$/m);
    child.kill("SIGINT");
    assert.equal((await exited).code, 0);
  } finally {
    child.kill("SIGKILL");
  }
});

test("lock: a missing file is exit 1 with one line; no path is exit 2", async () => {
  const [missing, none] = await Promise.all([runCli(["lock", path.join(dir, "nope")]), runCli(["lock"])]);
  assert.equal(missing.code, 1);
  assert.equal(oneLine(missing.stderr), `memmap: ${path.join(dir, "nope")}: no such file or directory (ENOENT)`);
  assert.equal(none.code, 2);
  assert.match(oneLine(none.stderr), /^memmap: error: missing required argument 'paths'/);
});
