/**
 * memmap as a user gets it: `npm pack`, then install the tarball into a fresh
 * `npm init -y` project (from the npm cache where it can), with `--ignore-scripts` and a PATH that has
 * no C compiler: the prebuilt addon in the package must be all it needs. Then
 * `import` (ES module) and `require` (CommonJS) of "memmap", one mapping each,
 * and the `memmap` command.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync, type SpawnSyncOptions } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const prebuildTag = `${process.platform}-${process.arch}`; // this machine: glibc (the -musl tag is for musl libc)

let work = "";
let app = "";
let listing = "";
/** An environment whose PATH has node, npm and sh and nothing else: no cc, gcc, make or python. */
let bare: NodeJS.ProcessEnv = {};
let npm = "";

function run(file: string, args: string[], options: SpawnSyncOptions = {}) {
  const r = spawnSync(file, args, { cwd: app, env: bare, encoding: "utf8", ...options });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr), error: r.error };
}

before(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-pack-"));
  const bin = path.join(work, "bin");
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, "node"));
  fs.symlinkSync("/bin/sh", path.join(bin, "sh")); // npm runs scripts with sh
  const npmCli = execFileSync("npm", ["prefix", "-g"], { encoding: "utf8" }).trim();
  npm = path.join(bin, "npm");
  fs.symlinkSync(path.join(npmCli, "lib", "node_modules", "npm", "bin", "npm-cli.js"), npm);
  bare = { HOME: process.env.HOME, PATH: bin, npm_config_cache: execFileSync("npm", ["config", "get", "cache"], { encoding: "utf8" }).trim() };

  // prepack builds dist/, the docs and prebuilds/<platform>-<arch>/memmap.node.
  const packed = execFileSync("npm", ["pack", "--silent", "--pack-destination", work], { cwd: root, encoding: "utf8" });
  const tarball = path.join(work, packed.trim().split("\n").pop()!);
  listing = execFileSync("tar", ["tzf", tarball], { encoding: "utf8" });

  app = path.join(work, "app");
  fs.mkdirSync(app);
  const init = run(npm, ["init", "-y"]);
  assert.equal(init.status, 0, init.stderr);
  const install = run(npm, ["install", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund", tarball]);
  assert.equal(install.status, 0, install.stderr);
  fs.writeFileSync(path.join(app, "data.bin"), "mapped from an installed package");
});

after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test("the tarball ships the prebuilt addon, the sources its source maps name, and no build/ or tests", () => {
  assert.match(listing, new RegExp(`package/prebuilds/${prebuildTag}/memmap\\.node`));
  assert.match(listing, /package\/dist\/index\.js/);
  assert.match(listing, /package\/dist\/index\.d\.ts/);
  assert.match(listing, /package\/index\.cjs/);
  assert.match(listing, /package\/native\/mapping\.c/);
  assert.match(listing, /package\/binding\.gyp/);
  assert.match(listing, /package\/scripts\/install\.cjs/);
  assert.doesNotMatch(listing, /package\/build\//);
  assert.doesNotMatch(listing, /package\/test\//);
  // The benchmark suite ships (memmap bench), without its installed libraries or results.
  assert.match(listing, /package\/bench\/core\.ts/);
  assert.match(listing, /package\/bench\/c\/random-read\.c/);
  assert.doesNotMatch(listing, /package\/bench\/(node_modules|results)\//);
  // Every source a shipped source map names is in the package (stack traces under tsx point there).
  for (const line of listing.split("\n").filter((l) => l.endsWith(".js.map"))) {
    const map = JSON.parse(fs.readFileSync(path.join(app, "node_modules", "memmap", line.slice("package/".length)), "utf8")) as { sources: string[] };
    for (const source of map.sources) {
      const shipped = path.posix.normalize(path.posix.join(path.posix.dirname(line), source));
      assert.ok(listing.includes(shipped), `${line} names ${shipped}, which the package does not ship`);
    }
  }
});

test("installed with --ignore-scripts and no compiler on PATH: no addon was compiled", () => {
  assert.ok(run("cc", ["--version"]).error, "the test PATH must have no C compiler");
  assert.ok(!fs.existsSync(path.join(app, "node_modules", "memmap", "build")), "nothing was built");
  assert.ok(fs.existsSync(path.join(app, "node_modules", "memmap", "prebuilds", prebuildTag, "memmap.node")));
});

test("import { mapFile } from \"memmap\" works and maps a file (ES module)", () => {
  fs.writeFileSync(
    path.join(app, "main.mjs"),
    `import { mapFile, MmapError } from "memmap";
     const m = mapFile("data.bin");
     process.stdout.write(new TextDecoder().decode(m.bytes));
     m.close();
     try { mapFile("/nonexistent/file"); } catch (e) { process.stdout.write(" " + (e instanceof MmapError) + " " + e.code); }`,
  );
  const r = run(process.execPath, ["main.mjs"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "mapped from an installed package true ENOENT");
  // TypeScript users get the declarations.
  assert.match(fs.readFileSync(path.join(app, "node_modules", "memmap", "dist", "index.d.ts"), "utf8"), /mapFile/);
});

test("require(\"memmap\") works and maps a file (CommonJS, a default npm init -y project)", () => {
  assert.equal(JSON.parse(fs.readFileSync(path.join(app, "package.json"), "utf8")).type ?? "commonjs", "commonjs");
  fs.writeFileSync(
    path.join(app, "main.js"),
    `const { mapFile, MmapError } = require("memmap");
     const m = mapFile("data.bin");
     process.stdout.write(new TextDecoder().decode(m.bytes));
     m.close();
     try { mapFile("/nonexistent/file"); } catch (e) { process.stdout.write(" " + (e instanceof MmapError) + " " + e.code); }`,
  );
  const r = run(process.execPath, ["main.js"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "mapped from an installed package true ENOENT");
});

test("the memmap command works in the installed package", () => {
  const memmap = path.join(app, "node_modules", ".bin", "memmap");
  const help = run(memmap, ["--help"]);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /Usage: memmap/);
  const peek = run(memmap, ["peek", "data.bin", "--as", "utf8", "--length", "6"]);
  assert.equal(peek.status, 0, peek.stderr);
  assert.match(peek.stdout, /mapped/);
  const list = run(memmap, ["bench", "--list"]);
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /^core\s/m);
});

test("memmap bench prints the benchmark tables from the installed package", () => {
  // tsx is the one library bench:core needs; lend it this repository's copy, so
  // that the test needs no registry (a user's first run installs it into
  // node_modules/memmap/bench/node_modules). The full PATH gives the C reference a compiler.
  fs.symlinkSync(path.join(root, "node_modules", "tsx"), path.join(app, "node_modules", "tsx"));
  const memmap = path.join(app, "node_modules", ".bin", "memmap");
  const r = run(memmap, ["bench", "core", "--quick"], { env: { ...bare, PATH: `${bare.PATH}:${process.env.PATH}` } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /### 1,000,000 random 8-byte reads/);
  assert.match(r.stdout, /C through mmap/);
  assert.ok(fs.existsSync(path.join(app, "node_modules", "memmap", "bench", "results", "core.json")));
});

test("the install script keeps the prebuilt addon and compiles nothing (npm rebuild, no compiler)", () => {
  const r = run(npm, ["rebuild", "memmap", "--foreground-scripts"]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout + r.stderr, /using the prebuilt addon/);
  assert.ok(!fs.existsSync(path.join(app, "node_modules", "memmap", "build")), "nothing was built");
});

test("without a loadable addon, importing memmap fails with ERR_NO_ADDON naming both places it looked", () => {
  const pkg = path.join(app, "node_modules", "memmap");
  fs.renameSync(path.join(pkg, "prebuilds"), path.join(pkg, "prebuilds.away"));
  try {
    const r = run(process.execPath, ["-e", `import("memmap").catch((e) => { console.log(e.code); console.log(e.message); })`]);
    assert.equal(r.status, 0, r.stderr);
    const [code, message] = r.stdout.split("\n");
    assert.equal(code, "ERR_NO_ADDON");
    assert.ok(message!.includes(path.join(pkg, "build", "Release", "memmap.node")), message);
    assert.ok(message!.includes(path.join(pkg, "prebuilds", prebuildTag, "memmap.node")), message);
    assert.match(message!, /npm rebuild memmap/);
  } finally {
    fs.renameSync(path.join(pkg, "prebuilds.away"), path.join(pkg, "prebuilds"));
  }
});
