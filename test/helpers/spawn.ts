/**
 * The one way the test suites start a child-process script of test/fixtures
 * (with tsx): spawnFixture() keeps track of it, killChildren() SIGKILLs
 * whatever is still running (for after() hooks: a failed test leaves no
 * process behind), finished() and firstLine() read its output.
 */
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** test/fixtures: where the child-process scripts live. */
export const FIXTURES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

const children = new Set<ChildProcess>();

/**
 * Spawns test/fixtures/<fixture> with tsx (stdout and stderr piped unless
 * `stdio` says otherwise); `prefix` runs it under another command, e.g.
 * setpriv to drop to uid 65534.
 */
export function spawnFixture(fixture: string, args: string[], stdio?: StdioOptions, prefix: string[] = []): ChildProcess {
  const node = [process.execPath, "--import", "tsx", path.join(FIXTURES_DIR, fixture), ...args];
  const [command, ...rest] = [...prefix, ...node];
  const child = spawn(command!, rest, { stdio: stdio ?? ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

/** SIGKILLs every fixture process still running (for after() hooks: a failed test leaves none behind). */
export function killChildren(): void {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
}

/** Collects a child's stdout and resolves with it (and its exit status) when it exits. */
export function finished(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Resolves with the first line the child prints (e.g. "ready"). */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const onData = (d: Buffer | string): void => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        child.stdout?.off("data", onData);
        resolve(buf.slice(0, nl));
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`child exited (${code}) before printing a line; so far: ${buf}`)));
  });
}
