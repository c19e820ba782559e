// Makes sure the reference libraries a benchmark compares against (bench/'s own
// dependencies) can be found, and installs them into bench/node_modules the
// first time they cannot. `node bench/setup.mjs tsx hdr-histogram-js` checks
// just those; with no names it checks every one; `--force` reinstalls.
// They live apart so that `npm install` of memmap stays quick: better-sqlite3
// alone compiles for minutes where no prebuilt binary is found. The same file
// runs in a clone and in an installed package (node_modules/memmap/bench/),
// where a dependency the surrounding project already has is found there.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const benchDir = dirname(fileURLToPath(import.meta.url));
const manifest = join(benchDir, "package.json");
const all = Object.keys(JSON.parse(readFileSync(manifest, "utf8")).dependencies ?? {});
const named = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const unknown = named.filter((name) => !all.includes(name));
if (unknown.length > 0) {
  console.error(`bench: ${unknown.join(", ")} not in bench/package.json`);
  process.exit(1);
}
// Resolved the way the benchmarks will resolve them: from bench/ upwards.
const require = createRequire(manifest);
function found(name) {
  try {
    require.resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}
const missing = (named.length > 0 ? named : all).filter((name) => !found(name));
if (missing.length > 0 || process.argv.includes("--force")) {
  if (missing.length > 0) console.error(`bench: installing bench/'s reference libraries into bench/node_modules (once; ${missing.join(", ")} not found)`);
  const npm = process.env.npm_execpath;
  const args = ["install", "--no-audit", "--no-fund"];
  const r = npm
    ? spawnSync(process.execPath, [npm, ...args], { cwd: benchDir, stdio: "inherit" })
    : spawnSync("npm", args, { cwd: benchDir, stdio: "inherit", shell: process.platform === "win32" });
  if (r.status !== 0) {
    console.error("bench: npm install in bench/ failed; run `npm run bench:setup` to retry");
    process.exit(r.status ?? 1);
  }
}
