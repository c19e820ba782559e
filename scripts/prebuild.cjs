"use strict";
// `npm run prebuilds` (and `npm pack`): compiles the addon into
// prebuilds/<platform>-<arch>[-musl]/memmap.node, the copy the package ships so
// that installing needs no compiler. Builds in a temporary directory, so build/
// (the local build that tests load) is never touched. Skipped when the prebuilt
// file is newer than every source; --force rebuilds.
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const prebuildTag = require("./prebuild-tag.cjs");
const nodeGyp = require("./node-gyp.cjs");

const root = path.join(__dirname, "..");
const out = path.join(root, "prebuilds", prebuildTag(), "memmap.node");
const sources = [path.join(root, "binding.gyp"), ...fs.readdirSync(path.join(root, "native")).map((f) => path.join(root, "native", f))];
const newest = Math.max(...sources.map((f) => fs.statSync(f).mtimeMs));
if (!process.argv.includes("--force") && fs.existsSync(out) && fs.statSync(out).mtimeMs > newest) {
  console.log(`prebuilds: ${path.relative(root, out)} is up to date`);
  process.exit(0);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-prebuild-"));
try {
  fs.copyFileSync(path.join(root, "binding.gyp"), path.join(work, "binding.gyp"));
  fs.cpSync(path.join(root, "native"), path.join(work, "native"), { recursive: true });
  const gyp = nodeGyp();
  const result = gyp
    ? spawnSync(process.execPath, [gyp, "rebuild", "--release"], { cwd: work, stdio: "inherit" })
    : spawnSync("node-gyp", ["rebuild", "--release"], { cwd: work, stdio: "inherit", shell: true });
  if (result.status !== 0) process.exit(result.status ?? 1);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  fs.copyFileSync(path.join(work, "build", "Release", "memmap.node"), tmp);
  fs.renameSync(tmp, out); // whole or not at all
  console.log(`prebuilds: wrote ${path.relative(root, out)}`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
