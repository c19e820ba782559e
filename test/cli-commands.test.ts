/**
 * The `memmap` command as a whole: help on every command, version, usage
 * errors, and the bench runner's own checks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Command } from "commander";
import { buildProgram } from "../src/cli/program.ts";
import { oneLine, root, runCli } from "./fixtures/cli-run.ts";

const COMMANDS = ["stat", "warm", "evict", "lock", "peek", "log", "channel", "bench"];
const LEAF_COMMANDS = [["stat"], ["warm"], ["evict"], ["lock"], ["peek"], ["log", "stat"], ["log", "dump"], ["log", "tail"], ["channel", "stat"], ["bench"]];

test("--help lists every command", async () => {
  const r = await runCli(["--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: memmap \[options\] \[command\]/);
  for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c} `, "m"), `--help lists ${c}`);
  assert.match(r.stdout, /Exit codes: 0 success, 1 failure, 2 bad command line/);
});

test("every command has --help (in process, and as a child for a nested one)", async () => {
  const program = buildProgram(() => {});
  const find = (names: string[]) => names.reduce<Command | undefined>((c, n) => c?.commands.find((x) => x.name() === n), program);
  for (const names of LEAF_COMMANDS) {
    const command = find(names);
    assert.ok(command, names.join(" "));
    const help = command.helpInformation();
    assert.match(help, new RegExp(`^Usage: memmap ${names.join(" ")} `), names.join(" "));
    assert.match(help, /-h, --help/);
    assert.ok(command.description().length > 10, `${names.join(" ")} describes itself`);
  }
  const r = await runCli(["log", "dump", "--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: memmap log dump \[options\] <dir>/);
  assert.match(r.stdout, /--from <seq>/);
});

test("--version prints the package version", async () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string };
  const r = await runCli(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${pkg.version}\n`);
});

test("usage errors: exit 2 and one line (no arguments prints the help on stderr)", async () => {
  const [none, typo, dumpFrom] = await Promise.all([
    runCli([]),
    runCli(["stats", "x"]),
    runCli(["log", "dump", "/tmp", "--from", "yesterday"]),
  ]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^Usage: memmap/);
  assert.equal(none.stdout, "");
  assert.equal(typo.code, 2);
  assert.equal(oneLine(typo.stderr), "memmap: error: unknown command 'stats' (Did you mean stat?)");
  assert.equal(dumpFrom.code, 2);
  assert.match(oneLine(dumpFrom.stderr), /^memmap: error: option '-f, --from <seq>' argument 'yesterday' is invalid\. expected "start", "end" or a sequence number\.$/);
});

test("bench --list shows the package's bench:* scripts but bench:setup; an unknown benchmark is a usage error", async () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const names = Object.keys(pkg.scripts).filter((n) => n.startsWith("bench:") && n !== "bench:setup").map((n) => n.slice(6));
  const [list, unknown] = await Promise.all([runCli(["bench", "--list"]), runCli(["bench", "no-such-bench"])]);
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(list.stdout.trim().split("\n").map((l) => l.split(/\s+/)[0]), names);
  assert.equal(unknown.code, 2);
  assert.match(oneLine(unknown.stderr), /^memmap: unknown benchmark "no-such-bench" \(have: /);
});
