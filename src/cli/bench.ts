/**
 * `memmap bench`: runs the benchmark suite — the package's `bench:*` npm
 * scripts — one after the other, each printing its own table and saving its
 * raw numbers under bench/results/.
 *
 * The suite ships in the package: bench/*.ts with bench/package.json of the
 * reference libraries (tsx, hdr-histogram-js, better-sqlite3, …), which the
 * first benchmark that needs them installs into bench/node_modules (the npm
 * registry must be reachable then), and bench/c/ for the C references (built
 * when a C compiler is on PATH, left out of the tables otherwise). So
 * `memmap bench` prints the same tables in an installed package as in a clone.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { CliError, EXIT_FAILURE, EXIT_OK, usageError } from "./common.ts";

export interface BenchOptions {
  quick?: boolean;
  list?: boolean;
}

/** src/cli/bench.ts and dist/cli/bench.js both sit two levels below the package root. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The `bench:*` scripts of package.json, by name without the prefix (but `bench:setup`, which installs bench/'s dependencies). */
export function benchScripts(root = packageRoot): Map<string, string> {
  let scripts: Record<string, unknown> = {};
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { scripts?: Record<string, unknown> };
    scripts = pkg.scripts ?? {};
  } catch {
    /* no package.json: no benchmarks */
  }
  const out = new Map<string, string>();
  for (const [name, command] of Object.entries(scripts)) {
    if (name.startsWith("bench:") && name !== "bench:setup" && typeof command === "string") out.set(name.slice("bench:".length), command);
  }
  return out;
}

function runScript(name: string, quick: boolean): Promise<number> {
  const args = ["run", "--silent", `bench:${name}`];
  if (quick) args.push("--", "--quick");
  return new Promise((resolve, reject) => {
    const child = spawn("npm", args, {
      cwd: packageRoot,
      stdio: "inherit",
      env: quick ? { ...process.env, MEMMAP_BENCH_QUICK: "1" } : process.env,
    });
    child.on("error", (error) => reject(new CliError(`cannot run npm: ${error.message}`, EXIT_FAILURE, { cause: error })));
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

export async function runBench(names: string[], options: BenchOptions): Promise<number> {
  const scripts = benchScripts();
  if (scripts.size === 0 || !fs.existsSync(path.join(packageRoot, "bench")))
    throw new CliError(
      `no benchmark suite in ${packageRoot}: its bench/ directory or package.json scripts are missing (reinstall memmap, or run from a clone of the repository)`,
    );
  if (options.list) {
    for (const [name, command] of scripts) process.stdout.write(`${name.padEnd(12)} ${command}\n`);
    return EXIT_OK;
  }
  for (const name of names) {
    if (!scripts.has(name)) throw usageError(`unknown benchmark "${name}" (have: ${[...scripts.keys()].join(", ")})`);
  }
  const chosen = names.length > 0 ? names : [...scripts.keys()];
  const failed: string[] = [];
  for (const name of chosen) {
    process.stderr.write(`\n== bench:${name}${options.quick ? " (quick)" : ""} ==\n`);
    const code = await runScript(name, options.quick === true);
    if (code !== 0) failed.push(`${name} (exit ${code})`);
  }
  if (failed.length > 0) throw new CliError(`benchmark failed: ${failed.join(", ")}`);
  return EXIT_OK;
}
