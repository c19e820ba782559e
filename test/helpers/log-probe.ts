/**
 * The log-open probe (test/fixtures/log-open-probe.ts) run as another user:
 * what the log suites about permissions and shared directories
 * (log-create, log-security) share.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { FIXTURES_DIR, makeTmpDir } from "../fixtures/log-helpers.ts";

export const PROBE = path.join(FIXTURES_DIR, "log-open-probe.ts");
/** The unprivileged user the attacker's or the other user's steps run as. */
export const NOBODY = { uid: 65534, gid: 65534 };

const asRoot = process.getuid?.() === 0;
const nobodyRuns = asRoot && spawnSync(process.execPath, ["-e", `require("fs").accessSync(${JSON.stringify(PROBE)}, 4)`], NOBODY).status === 0;
/** Test options: skipped unless this runs as root and uid 65534 can read the project. */
export const needsNobody = { skip: !nobodyRuns && "needs root, and uid 65534 able to read the project" };

export type ProbeResult = { ok: boolean; code?: string; message?: string; [k: string]: unknown };

/** Runs the probe with `args` (as `as`), returning the JSON line it printed last. */
export function probe(args: string[], as: { uid?: number; gid?: number } = {}, timeout = 60_000): ProbeResult {
  const r = spawnSync(process.execPath, ["--import", "tsx", PROBE, ...args], { encoding: "utf8", timeout, cwd: path.dirname(FIXTURES_DIR), ...as });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  assert.ok(line.startsWith("{"), `probe ${args.join(" ")} printed ${JSON.stringify(r.stdout)} (signal ${r.signal}); stderr: ${r.stderr}`);
  return JSON.parse(line) as ProbeResult;
}

/** A scratch directory uid 65534 can enter (mkdtemp makes 0700 ones): `mode` 0o755, or 0o1777 to let it create there too. */
export function sharedTmp(mode = 0o755): string {
  const dir = makeTmpDir();
  fs.chmodSync(dir, mode);
  return dir;
}
