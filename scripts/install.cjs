"use strict";
// memmap's install script: keep the prebuilt addon when it loads on this machine,
// else compile the addon with node-gyp (needs a C compiler and Python).
// A clone of the repository (tsconfig.json is there; the package does not ship it)
// always compiles, so `npm run install` after a change to native/ rebuilds it;
// so does MEMMAP_BUILD_FROM_SOURCE=1.
const { spawnSync } = require("node:child_process");
const path = require("node:path");
const prebuildTag = require("./prebuild-tag.cjs");
const nodeGyp = require("./node-gyp.cjs");

const root = path.join(__dirname, "..");
const prebuilt = path.join(root, "prebuilds", prebuildTag(), "memmap.node");
const checkout = require("node:fs").existsSync(path.join(root, "tsconfig.json"));
if (!checkout && !process.env.MEMMAP_BUILD_FROM_SOURCE) {
  try {
    require(prebuilt);
    console.log(`memmap: using the prebuilt addon ${path.relative(root, prebuilt)}`);
    process.exit(0);
  } catch {
    // none for this platform, or it does not load here: build from source
  }
}
const gyp = nodeGyp(); // npm's own node-gyp, set for install scripts
const result = gyp
  ? spawnSync(process.execPath, [gyp, "rebuild"], { cwd: root, stdio: "inherit" })
  : spawnSync("node-gyp", ["rebuild"], { cwd: root, stdio: "inherit", shell: true });
if (result.error) console.error(`memmap: cannot run node-gyp: ${result.error.message}`);
process.exit(result.status ?? 1);
