/**
 * `memmap stat`, `warm` and `evict`, run as child processes on real files,
 * checked against util-linux fincore.
 *
 * On a busy machine the kernel may reclaim any cached page at any moment, so
 * no test assumes a page stays resident unless it is mlock'ed (holdResident),
 * and a snapshot taken between two fincore snapshots is checked to lie between
 * them (nothing reads these files, so residency only falls).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { evictFile, mapFile, pageSize, type MappedFile } from "../src/index.ts";
import { cliArgs, fincorePages, oneLine, root, runCli, tempDir } from "./fixtures/cli-run.ts";

interface StatJson {
  pageSize: number;
  files?: { path: string; size: number; pages: number; resident: number; percent: number; map?: string }[];
  total: { files: number; directories: number; size: number; pages: number; resident: number; percent: number };
  errors: { path: string; code: string; message: string }[];
}

interface ChangeJson {
  files: { path: string; pages: number; residentBefore: number; resident: number }[];
  total: { files: number; pages: number; resident: number; residentBefore: number };
  errors: unknown[];
}

const { dir, remove } = tempDir();
const big = path.join(dir, "big.bin");
const patchy = path.join(dir, "patchy.bin");
const empty = path.join(dir, "empty.bin");
const tree = path.join(dir, "tree");
const SMALL_FILES = 3000;
let treeFiles: string[] = [];

/**
 * Makes every third page of `file` (every `step`th) resident, and no other
 * (MADV_RANDOM: no readahead), and keeps them so (mlock) until the mapping is closed.
 */
function holdResident(file: string, step = 3): MappedFile {
  const m = mapFile(file, { advice: "random" });
  for (let page = 0; page * pageSize < m.byteLength; page += step) m.lock(page * pageSize, pageSize);
  return m;
}

/** Asserts fincore's `after` <= `seen` <= fincore's `before` for every file: residency only fell in between. */
function assertBetween(seen: Map<string, number>, before: Map<string, number>, after: Map<string, number>): void {
  let outside = 0;
  for (const [file, pages] of seen) if (pages > before.get(file)! || pages < after.get(file)!) outside++;
  assert.equal(outside, 0, "every file's resident pages lie between fincore's before and after");
}

before(() => {
  fs.writeFileSync(big, Buffer.alloc(8 << 20, 1));
  fs.writeFileSync(patchy, Buffer.alloc(2 << 20, 2));
  fs.writeFileSync(empty, "");
  // Thousands of small files in nested directories, sizes from 0 to ~3 pages.
  for (let i = 0; i < SMALL_FILES; i++) {
    const sub = path.join(tree, `d${i % 10}`, `e${i % 7}`);
    if (i < 70) fs.mkdirSync(sub, { recursive: true });
    const file = path.join(sub, `f${i}.dat`);
    fs.writeFileSync(file, Buffer.alloc((i * 37) % 12_000, i & 0xff));
    treeFiles.push(file);
  }
  treeFiles = treeFiles.sort();
  // Write everything out once (one sync(2)), so evict's per-file fdatasync has nothing to wait for.
  spawnSync("sync");
});

after(remove);

describe("memmap stat", () => {
  const held: MappedFile[] = [];
  after(() => {
    for (const m of held) m.close(); // unlocks: evict must be able to drop them below
  });

  test("agrees with fincore on a partly resident file, a whole one and an empty one", async () => {
    evictFile(patchy); // warm and evict have their own tests below
    held.push(holdResident(patchy), holdResident(big, 1));
    const r = await runCli(["stat", "--json", big, patchy, empty]);
    assert.equal(r.code, 0, r.stderr);
    const fincore = fincorePages([big, patchy, empty]);
    const out = JSON.parse(r.stdout) as StatJson;
    assert.equal(out.pageSize, pageSize);
    assert.equal(out.files!.length, 3);
    for (const f of out.files!) assert.equal(f.resident, fincore.get(f.path), `resident pages of ${f.path}`);
    const byPath = new Map(out.files!.map((f) => [f.path, f]));
    assert.equal(byPath.get(big)!.pages, (8 << 20) / pageSize);
    assert.equal(byPath.get(big)!.resident, (8 << 20) / pageSize);
    const p = byPath.get(patchy)!;
    assert.ok(p.resident > 0 && p.resident < p.pages, `patchy.bin is partly resident (${p.resident}/${p.pages})`);
    assert.deepEqual(
      { pages: byPath.get(empty)!.pages, resident: byPath.get(empty)!.resident, percent: byPath.get(empty)!.percent },
      { pages: 0, resident: 0, percent: 0 },
    );
    assert.equal(out.total.files, 3);
    assert.equal(out.total.pages, out.files!.reduce((n, f) => n + f.pages, 0));
    assert.equal(out.total.resident, out.files!.reduce((n, f) => n + f.resident, 0));
  });

  test("prints a table, a residency map and a total", async () => {
    const r = await runCli(["stat", "--map", "16", big, patchy, empty]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^\s*SIZE\s+RESIDENT\s+PAGES\s+%\s+FILE$/);
    assert.match(r.stdout, new RegExp(`8\\.0 MiB\\s+8\\.0 MiB\\s+2,048/2,048\\s+100%\\s+${big}`));
    assert.ok(lines.includes(`  [${"O".repeat(16)}]`), r.stdout); // big.bin: all resident
    assert.ok(lines.some((l) => /^ {2}\[[Oo ]{16}\]$/.test(l) && /o/.test(l)), "patchy.bin's map has partly resident groups");
    assert.match(lines.at(-1)!, /^Total: 3 files: .* resident \([\d,]+ of 2,560 pages, [\d.]+%\)$/);
  });

  test("walks a directory of thousands of small files", async () => {
    const before = fincorePages(treeFiles);
    const [r, summary] = await Promise.all([runCli(["stat", "--json", tree]), runCli(["stat", "--summary", tree])]);
    const after = fincorePages(treeFiles);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as StatJson;
    assert.equal(out.total.files, SMALL_FILES);
    assert.equal(out.total.directories, 1 + 10 + 70);
    assert.deepEqual(out.files!.map((f) => f.path).sort(), treeFiles);
    assertBetween(new Map(out.files!.map((f) => [f.path, f.resident])), before, after);
    assert.equal(summary.code, 0);
    assert.match(summary.stdout, /^Total: 3,000 files in 81 directories: /);
    assert.equal(summary.stdout.trim().split("\n").length, 1);
  });

  test("a missing path: exit 1, one line, the other paths still reported (stat, warm, evict)", async () => {
    const missing = path.join(dir, "no-such-file");
    const [r, warm, evict] = await Promise.all([
      runCli(["stat", "--json", big, missing]),
      runCli(["warm", missing]),
      runCli(["evict", missing]),
    ]);
    assert.equal(r.code, 1);
    assert.equal(oneLine(r.stderr), `memmap: ${missing}: no such file or directory (ENOENT)`);
    const out = JSON.parse(r.stdout) as StatJson;
    assert.equal(out.files!.length, 1);
    assert.deepEqual(out.errors.map((e) => e.code), ["ENOENT"]);

    for (const x of [warm, evict]) {
      assert.equal(x.code, 1, x.stderr);
      assert.equal(oneLine(x.stderr), `memmap: ${missing}: no such file or directory (ENOENT)`); // one line: no stack trace
    }
  });

  test("bad arguments: exit 2 and one line", async () => {
    const cases = [["stat", "--map", "zero", big], ["evict", "--bogus", big]];
    const results = await Promise.all(cases.map((args) => runCli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `memmap ${cases[i]!.join(" ")}: ${r.stderr}`);
      assert.match(oneLine(r.stderr), /^memmap: error: /);
      assert.equal(r.stdout, "");
    });
  });
});

describe("memmap evict and warm", () => {
  test("evict drops a directory of thousands of files from the page cache, warm brings it back", async () => {
    const evicted = await runCli(["evict", "--json", tree]);
    assert.equal(evicted.code, 0, evicted.stderr);
    const e = JSON.parse(evicted.stdout) as ChangeJson;
    assert.equal(e.total.files, SMALL_FILES);
    assert.ok(e.total.residentBefore > 0, "the new files were cached before");
    assert.equal(e.total.resident, 0);
    let stillCached = 0;
    for (const pages of fincorePages(treeFiles).values()) stillCached += pages;
    assert.equal(stillCached, 0, "fincore sees nothing resident");

    const warmed = await runCli(["warm", "--json", tree]);
    assert.equal(warmed.code, 0, warmed.stderr);
    const w = JSON.parse(warmed.stdout) as ChangeJson & { elapsedMs: number; bytesPerSecond: number };
    assert.equal(w.total.files, SMALL_FILES);
    assert.equal(w.total.residentBefore, 0);
    // Every page was read in; a busy kernel may already have reclaimed some of them.
    assert.ok(w.total.resident > 0 && w.total.resident <= w.total.pages, `${w.total.resident} of ${w.total.pages}`);
    assert.ok(w.elapsedMs > 0 && w.bytesPerSecond > 0);
    let cached = 0;
    for (const pages of fincorePages(treeFiles).values()) cached += pages;
    assert.ok(cached <= w.total.resident, "fincore sees no more than warm reported");
  });

  test("text output: counts, sizes and throughput", async () => {
    // However much of big.bin is still cached (a busy kernel reclaims pages), evict reports what it dropped.
    const before = fincorePages([big]).get(big)!;
    const evicted = await runCli(["evict", big]);
    assert.equal(evicted.code, 0, evicted.stderr);
    const m = /^Evicted ([\d,]+) pages \(([\d.]+ (?:[KMG]i)?B)\) in [\d.]+ m?s\nNow: 1 file: 0 B of 8\.0 MiB resident \(0 of 2,048 pages, 0%\)\n$/.exec(evicted.stdout);
    assert.ok(m, evicted.stdout);
    const dropped = Number(m[1]!.replaceAll(",", ""));
    assert.ok(dropped <= before, `evicted ${dropped} pages, no more than the ${before} fincore saw before`);
    assert.equal(fincorePages([big]).get(big), 0);

    // Nothing else reads big.bin, so warm reads all of it from disk.
    const warmed = await runCli(["warm", big, empty]);
    assert.equal(warmed.code, 0, warmed.stderr);
    assert.match(warmed.stdout, /^Warmed 2 files: [\d.]+ (?:[KMG]i)?B of 8\.0 MiB resident \([\d,]+ of 2,048 pages, \d+%\)\n/);
    assert.match(warmed.stdout, /\nRead 8\.0 MiB from disk in [\d.]+ m?s \([\d.]+ [KMG]iB\/s\); 0 B was already in the page cache\n$/);
    // Not a terminal: at most plain progress lines (one a second, if warm took that long), no control characters.
    for (const line of warmed.stderr.split("\n").filter(Boolean)) assert.match(line, /^warm: \d+% \(/);
  });

  const haveScript = spawnSync("script", ["--version"]).status === 0;
  test("on a terminal, warm shows a progress bar (script(1) gives it one)", { skip: !haveScript && "needs script(1) from util-linux" }, async () => {
    evictFile(big);
    const command = [process.execPath, ...cliArgs, "warm", big].map((a) => `'${a}'`).join(" ");
    const r = spawnSync("script", ["-qec", command, "/dev/null"], { cwd: root, encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const screen = r.stdout.replaceAll("\r", "\n");
    assert.match(screen, /warm \[[^\]]{30}\] 100% \| 8\.0 MiB of 8\.0 MiB \| [\d.]+ [KMG]iB\/s \| /);
    assert.match(screen, /Warmed 1 file: [\d.]+ (?:[KMG]i)?B of 8\.0 MiB resident/); // a busy kernel may reclaim some at once
  });
});
