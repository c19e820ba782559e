// Installs bench/'s own dependencies (the reference libraries the benchmarks
// compare against) the first time a benchmark runs; `npm run bench:setup` runs
// it on purpose. They live apart so that `npm install` of memmap stays quick:
// better-sqlite3 alone compiles for minutes where no prebuilt binary is found.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const benchDir = dirname(fileURLToPath(import.meta.url));
const manifest = join(benchDir, "package.json");
const deps = Object.keys(JSON.parse(readFileSync(manifest, "utf8")).dependencies ?? {});
const missing = deps.filter((name) => !existsSync(join(benchDir, "node_modules", name, "package.json")));
if (missing.length > 0 || process.argv.includes("--force")) {
  if (missing.length > 0) console.error(`bench: installing ${missing.join(", ")} into bench/node_modules (once)`);
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
