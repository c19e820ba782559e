/**
 * Native-layer promises: a wrong handle is refused, not used; residency() of
 * more pages than one answer holds is refused; a failed resize() changes
 * nothing; the built addon uses no glibc-only function (it must build on musl).
 * Cases that crashed the process run in a child: a crash is its signal exit.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { tmpDir } from "./helpers/tmp.ts";
import { pageSize } from "../src/index.ts";
import { FIXTURES_DIR, makeTmpDir, removeTmpDir, runChild } from "./fixtures/core-helpers.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

test("a wait request passed as a mapping handle is refused with ERR_INVALID_ARG, not used as a mapping", async () => {
  const file = path.join(dir, "tag.bin");
  fs.writeFileSync(file, Buffer.alloc(pageSize));
  const { code, signal, messages, stderr } = await runChild("core-native-child.ts", ["type-tag", file]);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr);
  const refused = "ERR_INVALID_ARG";
  assert.deepEqual(messages[0], {
    buffer: refused, stale: refused, residency: refused, remap: refused, sync: refused, unmap: refused, object: refused,
  });
});

test("residency() of more than 2^32 pages (a 16 TiB sparse file on tmpfs) is refused with ERR_TOO_LARGE", async (t) => {
  const file = path.join("/dev/shm", `memmap-huge-${process.pid}.bin`);
  const size = 2 ** 32 * pageSize + 2 * pageSize;
  try {
    fs.writeFileSync(file, "");
    fs.truncateSync(file, size);
  } catch {
    fs.rmSync(file, { force: true });
    t.skip("no file system here holds a sparse file of 2^32 pages");
    return;
  }
  try {
    const { code, signal, messages, stderr } = await runChild("core-native-child.ts", ["residency-huge", file], { timeoutMs: 60_000 });
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr);
    assert.deepEqual(messages[0], { length: size, whole: "ERR_TOO_LARGE", firstPage: 1, native: "ERR_TOO_LARGE" });
  } finally {
    fs.rmSync(file, { force: true });
  }
});

const asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
const nobodyCanRun =
  process.getuid?.() === 0 &&
  spawnSync("setpriv", [...asNobody, "test", "-r", path.join(FIXTURES_DIR, "core-native-child.ts")]).status === 0 &&
  spawnSync("prlimit", ["--version"]).status === 0;

test(
  "a resize() that fails (mremap over RLIMIT_MEMLOCK on a locked mapping) changes nothing: file size, views, mapping",
  {
    skip:
      (!nobodyCanRun && "needs root, setpriv, prlimit, and the project readable by uid 65534") ||
      (process.env.MEMMAP_ASAN === "1" && "mlock is a no-op under AddressSanitizer (npm run test:asan)"),
  },
  () => {
    // Root ignores RLIMIT_MEMLOCK (CAP_IPC_LOCK): the child runs as uid 65534 under a 128 KiB limit.
    const shared = makeTmpDir("memmap-nobody-");
    fs.chmodSync(shared, 0o777);
    const file = path.join(shared, "locked.bin");
    fs.writeFileSync(file, Buffer.alloc(16 * 1024, 7), { mode: 0o666 });
    fs.chmodSync(file, 0o666);
    try {
      const r = spawnSync(
        "prlimit",
        ["--memlock=131072:131072", "setpriv", ...asNobody, process.execPath, "--import", "tsx", path.join(FIXTURES_DIR, "core-native-child.ts"), "resize-locked", file],
        { cwd: root, encoding: "utf8", timeout: 60_000, env: { ...process.env, HOME: shared } },
      );
      assert.deepEqual({ status: r.status, signal: r.signal }, { status: 0, signal: null }, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim()), {
        result: "EAGAIN", // mremap: growing a locked mapping past the limit
        fileSize: 16 * 1024, // the file was shrunk back
        byteLength: 16 * 1024,
        viewLength: 16 * 1024, // the old view was not detached
        first: 7,
        written: 0x42, // and still reaches the file
      });
    } finally {
      removeTmpDir(shared);
    }
  },
);

test("the addon uses no glibc-only function (strerrorname_np & co.), so it builds on musl", (t) => {
  const addon = path.join(root, "build", "Release", "memmap.node");
  const nm = spawnSync("nm", ["-D", "--undefined-only", addon], { encoding: "utf8" });
  if (nm.error || nm.status !== 0) {
    t.skip("nm is not available");
    return;
  }
  const glibcOnly = /\b(strerrorname_np|strerrordesc_np|__\w+_chk|__isoc(99|23)_\w+|__libc_\w+)\b/;
  const found = nm.stdout.split("\n").filter((line) => glibcOnly.test(line));
  assert.deepEqual(found, [], "glibc-only symbols");
});

const hasMusl = spawnSync("musl-gcc", ["--version"]).status === 0;

test("with musl-gcc installed: every native source compiles against musl, and musl's libc defines every function the addon calls", { skip: !hasMusl && "musl-gcc is not installed (apt-get install musl-tools)" }, () => {
  using tmp = tmpDir("memmap-musl-");
  const out = tmp.path;
  // musl-gcc sees only musl's headers: add the kernel's (linux/futex.h) after them.
  const kernel = path.join(out, "kernel");
  fs.mkdirSync(kernel);
  for (const [name, target] of [["linux", "/usr/include/linux"], ["asm", `/usr/include/${os.arch() === "x64" ? "x86_64" : "aarch64"}-linux-gnu/asm`], ["asm-generic", "/usr/include/asm-generic"]])
    fs.symlinkSync(target!, path.join(kernel, name!));
  const nodeInclude = path.join(path.dirname(path.dirname(process.execPath)), "include", "node");
  const objects: string[] = [];
  for (const source of fs.readdirSync(path.join(root, "native")).filter((f) => f.endsWith(".c"))) {
    const object = path.join(out, source.replace(/\.c$/, ".o"));
    const cc = spawnSync("musl-gcc", ["-std=gnu11", "-fPIC", "-DNAPI_VERSION=8", `-I${nodeInclude}`, "-idirafter", kernel, "-c", path.join(root, "native", source), "-o", object], { encoding: "utf8" });
    assert.equal(cc.status, 0, `${source}:\n${cc.stderr}`);
    objects.push(object);
  }
  const addon = path.join(out, "memmap.node");
  // --trace names the libc the linker used: musl's.
  const ld = spawnSync("musl-gcc", ["-shared", "-Wl,--trace", "-o", addon, ...objects], { encoding: "utf8" });
  assert.equal(ld.status, 0, ld.stderr);
  const libc = ld.stdout.split("\n").map((l) => l.trim()).find((l) => /musl.*\/libc\.so$/.test(l));
  assert.ok(libc, `musl's libc.so not found in:\n${ld.stdout}`);
  const defined = new Set(spawnSync("nm", ["-D", "--defined-only", libc], { encoding: "utf8" }).stdout.split("\n").map((l) => l.split(" ").pop()));
  const called = spawnSync("nm", ["-D", "--undefined-only", addon], { encoding: "utf8" }).stdout.split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] === "U" && !f[1]!.startsWith("napi_"))
    .map((f) => f[1]!);
  assert.ok(called.length > 10);
  assert.deepEqual(called.filter((name) => !defined.has(name)), [], "functions musl does not define");
});
