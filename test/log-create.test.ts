/**
 * Creating and opening a log: many processes creating one log at once, the
 * `mode` option (exact, on every file and directory, at every roll-over),
 * inspection with read permission alone, and the right error codes (EACCES,
 * EROFS, /proc, a full disk that leaves nothing behind).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { inspectLog, openLog } from "../src/index.ts";
import { FIXTURES_DIR, makeTmpDir, removeBundles, removeTmpDir, spawnFixture } from "./fixtures/log-helpers.ts";
import { NOBODY, PROBE, needsNobody, probe, sharedTmp, type ProbeResult } from "./helpers/log-probe.ts";
import { tmpDir } from "./helpers/tmp.ts";

after(() => removeBundles());

const REPO = path.resolve(FIXTURES_DIR, "..", "..");
const needsRoot = { skip: process.getuid?.() !== 0 && "needs root (mount)" };
const SEGMENT = 64 * 1024;

function mount(args: string[]): void {
  const r = spawnSync("mount", args, { encoding: "utf8" });
  assert.equal(r.status, 0, `mount ${args.join(" ")}: ${r.stderr}`);
}

function umount(dir: string): void {
  const r = spawnSync("umount", [dir], { encoding: "utf8" });
  if (r.status !== 0 && !/not mounted/.test(r.stderr)) throw new Error(`umount ${dir}: ${r.stderr}`);
}

/**
 * Six probes doing `action` ("create-loop" or "create-each") 25 times on
 * `target`, released together; asserts that none of the 150 opens failed.
 */
async function raceSixCreators(tmp: string, action: string, target: string): Promise<void> {
  const go = path.join(tmp, "go");
  const children = Array.from({ length: 6 }, () => spawnFixture("log-open-probe.ts", [action, target, "25", go]));
  await new Promise((resolve) => setTimeout(resolve, 300)); // let them start (not needed for correctness)
  fs.writeFileSync(go, "");
  const failures: string[] = [];
  for (const child of children) {
    const { code } = await child.exited;
    assert.equal(code, 0, child.stderr());
    const result = JSON.parse(child.lines.at(-1)!) as ProbeResult & { failures: string[] };
    assert.ok(result.ok, result.message);
    failures.push(...result.failures);
  }
  assert.deepEqual(failures, [], `${failures.length} of 150 opens failed`);
}

test("6 processes × 25 opens with create:true on one fresh directory: no failure, and the log holds every record", async () => {
  using tmp = tmpDir();
  const dir = path.join(tmp.path, "log");
  await raceSixCreators(tmp.path, "create-loop", dir);
  const log = openLog(dir);
  const seen = new Set<string>();
  const reader = log.reader();
  for (let rec = reader.next(); rec !== null; rec = reader.next()) seen.add(Buffer.from(rec.data).toString());
  assert.equal(seen.size, 150);
  assert.equal(log.nextSeq, 150);
  log.close();
  assert.equal(inspectLog(dir).damage, undefined);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp")), []);
});

test("6 processes creating the same 25 fresh logs in turn (every open a creation race): no failure, each log holds 6 records", async () => {
  using tmp = tmpDir();
  const dir = path.join(tmp.path, "logs");
  await raceSixCreators(tmp.path, "create-each", dir);
  for (let i = 0; i < 25; i++) {
    const log = openLog(path.join(dir, String(i)), { readOnly: true });
    assert.equal(log.nextSeq, 6, `log ${i}`);
    log.close();
  }
});

test("mode is applied exactly, whatever the umask, to every file and directory the log creates, including later segments", () => {
  const tmp = makeTmpDir();
  const umask = process.umask(0o077);
  try {
    const dir = path.join(tmp, "a", "log");
    const log = openLog(dir, { create: true, segmentSize: SEGMENT, mode: 0o640 });
    for (let i = 0; i < 10; i++) log.append("x".repeat(20_000)); // several roll-overs
    const named = log.reader({ name: "r" }); // creates locks/meta.lock
    named.close();
    log.close();
    const modes = (p: string): string[] =>
      fs.readdirSync(p).flatMap((n) => {
        const q = path.join(p, n);
        const st = fs.statSync(q);
        const line = `${path.relative(tmp, q)} ${(st.mode & 0o7777).toString(8)}`;
        return st.isDirectory() ? [line, ...modes(q)] : [line];
      });
    const got = modes(tmp);
    assert.ok(got.filter((l) => l.endsWith(".seg 640")).length >= 3, got.join("\n"));
    for (const line of got) {
      const isDir = !line.includes(".") || line.endsWith("locks 750");
      assert.ok(line.endsWith(isDir ? " 750" : " 640"), `${line}\n${got.join("\n")}`);
    }
    // A writer that opens the log again without mode keeps the log's mode for the segments it adds.
    const again = openLog(dir);
    for (let i = 0; i < 4; i++) again.append("y".repeat(20_000));
    again.close();
    for (const line of modes(path.join(tmp, "a"))) assert.ok(line.endsWith(" 640") || line.endsWith(" 750"), line);
    assert.throws(() => openLog(path.join(tmp, "b"), { create: true, mode: 0o4755 }), { code: "ERR_INVALID_ARG" });
    assert.throws(() => openLog(path.join(tmp, "b"), { create: true, mode: 0o444 }), { code: "ERR_INVALID_ARG" });
  } finally {
    process.umask(umask);
    removeTmpDir(tmp);
  }
});

test("a reader running as uid 65534 follows a log created with mode 0o644 across a roll-over", needsNobody, async () => {
  const tmp = sharedTmp();
  let tailer: ReturnType<typeof spawn> | undefined;
  const log = openLog(path.join(tmp, "log"), { create: true, segmentSize: SEGMENT, mode: 0o644 });
  try {
    log.append("first");
    tailer = spawn(process.execPath, ["--import", "tsx", PROBE, "tail", log.dir, "6"], { stdio: ["ignore", "pipe", "pipe"], cwd: path.dirname(FIXTURES_DIR), ...NOBODY });
    let stderr = "";
    tailer.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const lines: string[] = [];
    const exited = new Promise<number | null>((resolve) => tailer!.once("exit", resolve));
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: tailer!.stdout! }).on("line", (line) => {
        lines.push(line);
        if (line.startsWith("ready ")) resolve();
      });
      void exited.then(() => reject(new Error(`the tailer exited early: ${lines.join("|")} ${stderr}`)));
    });
    for (let i = 0; i < 6; i++) log.append("z".repeat(25_000)); // 64 KiB segments: two roll-overs
    assert.ok(fs.readdirSync(log.dir).filter((n) => n.endsWith(".seg")).length >= 3);
    assert.equal(await exited, 0, `${lines.join("|")} ${stderr}`);
    assert.deepEqual(lines, ["ready 1", ...Array.from({ length: 6 }, (_, i) => `got ${i + 1} 25000`), "done"]);
  } finally {
    tailer?.kill("SIGKILL");
    log.close();
    removeTmpDir(tmp);
  }
});

test("inspectLog needs only read permission: a read-only directory, another user's world-readable log", needsNobody, () => {
  const tmp = sharedTmp(0o1777); // nobody makes its own log here
  try {
    // nobody's own log, made read-only for everyone (a read-only directory).
    const own = path.join(tmp, "own");
    const made = probe(["create-loop", own, "1", tmp], NOBODY); // creates it and appends one record
    assert.ok(made.ok && (made.failures as string[]).length === 0, JSON.stringify(made));
    spawnSync("chmod", ["-R", "a-w", own], NOBODY);
    const a = probe(["inspect", own], NOBODY);
    assert.ok(a.ok, `${a.code}: ${a.message}`);
    // root's log, made world-readable: nobody inspects it.
    const roots = path.join(tmp, "root");
    const log = openLog(roots, { create: true, segmentSize: SEGMENT });
    log.append("one");
    log.append("two");
    log.close();
    spawnSync("chmod", ["-R", "a+rX", roots]);
    const b = probe(["inspect", roots], NOBODY);
    assert.ok(b.ok, `${b.code}: ${b.message}`);
    const inspection = b.inspection as { nextSeq: number; writers: { alive: boolean }[] };
    assert.equal(inspection.nextSeq, 2);
    assert.deepEqual(inspection.writers.map((w) => w.alive), [false]);
    // The CLI's `memmap log stat` builds on inspectLog.
    const stat = spawnSync(process.execPath, ["--import", "tsx", path.join(REPO, "src", "cli", "main.ts"), "log", "stat", roots], { encoding: "utf8", cwd: REPO, ...NOBODY });
    assert.equal(stat.status, 0, `memmap log stat: ${stat.stdout}${stat.stderr}`);
    assert.match(stat.stdout, /\b2\b/);
  } finally {
    spawnSync("chmod", ["-R", "u+w", tmp]);
    removeTmpDir(tmp);
  }
});

test("inspectLog and a read-only open work on a read-only bind mount; a writable open says EROFS", needsRoot, () => {
  const tmp = makeTmpDir();
  const ro = path.join(tmp, "ro");
  try {
    const dir = path.join(tmp, "log");
    const log = openLog(dir, { create: true, segmentSize: SEGMENT });
    log.append("one");
    log.close();
    fs.mkdirSync(ro);
    mount(["--bind", "-o", "ro", dir, ro]);
    const i = inspectLog(ro);
    assert.equal(i.nextSeq, 1);
    assert.equal(i.damage, undefined);
    const r = openLog(ro, { readOnly: true });
    assert.equal(r.nextSeq, 1);
    r.close();
    assert.throws(() => openLog(ro), { code: "EROFS" });
    assert.throws(() => openLog(path.join(ro, "sub"), { create: true }), { code: "EROFS" });
    umount(ro);
    // An empty read-only mount: create:true says EROFS, not ENOENT.
    const empty = path.join(tmp, "empty");
    fs.mkdirSync(empty);
    mount(["--bind", "-o", "ro", empty, ro]);
    assert.throws(() => openLog(ro, { create: true }), { code: "EROFS" });
  } finally {
    umount(ro);
    removeTmpDir(tmp);
  }
});

test("a log directory the caller may not read gives EACCES, not ENOENT", needsNobody, () => {
  const tmp = sharedTmp();
  try {
    const dir = path.join(tmp, "log");
    const log = openLog(dir, { create: true, segmentSize: SEGMENT });
    log.close();
    for (const options of [{}, { readOnly: true }, { create: true }]) {
      const r = probe(["open", dir, JSON.stringify(options)], NOBODY);
      assert.equal(r.code, "EACCES", `${JSON.stringify(options)}: ${r.code} ${r.message}`);
    }
    const r = probe(["inspect", dir], NOBODY);
    assert.equal(r.code, "EACCES", `inspect: ${r.code} ${r.message}`);
  } finally {
    removeTmpDir(tmp);
  }
});

test('openLog("/proc/self", { create: true }) fails at once with a code', () => {
  const r = probe(["open", "/proc/self", JSON.stringify({ create: true })], {}, 30_000);
  assert.equal(r.ok, false);
  assert.equal(typeof r.code, "string");
  assert.notEqual(r.code, "ERR_INTERNAL");
});

test("a create that fails on a full disk leaves nothing behind: a retry with a smaller segmentSize works", needsRoot, () => {
  const tmp = makeTmpDir();
  const disk = path.join(tmp, "disk");
  fs.mkdirSync(disk);
  try {
    mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", disk]);
    const dir = path.join(disk, "log");
    assert.throws(() => openLog(dir, { create: true, segmentSize: 1 << 20 }), { code: "ENOSPC" });
    assert.deepEqual(fs.readdirSync(disk), [], "nothing left behind");
    // The retry runs in a child: a closed log's pages stay mapped until garbage collection, which would keep the mount busy.
    const retry = probe(["create-loop", dir, "1", tmp]);
    assert.deepEqual(retry, { ok: true, failures: [] });
    // Also when the directory existed: the log's files go, the directory stays.
    fs.rmSync(dir, { recursive: true });
    fs.mkdirSync(dir);
    assert.throws(() => openLog(dir, { create: true, segmentSize: 1 << 20 }), { code: "ENOSPC" });
    assert.deepEqual(fs.readdirSync(dir), []);
  } finally {
    umount(disk);
    removeTmpDir(tmp);
  }
});
