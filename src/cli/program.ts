/**
 * The `memmap` command tree (commander) and its error handling: page-cache
 * tools (stat, warm, evict, lock), a byte viewer (peek), inspectors for logs
 * and channels, and the benchmark runner. Built only on memmap's public API.
 *
 * Exit codes: 0 success, 1 the operation failed, 2 the command line was
 * wrong. Errors are one line on stderr; --debug adds the stack trace.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, describeError, parseByteCount, parseNonNegativeInteger, parsePositiveInteger } from "./common.ts";
// Each command's module is loaded when the command runs: `memmap --help` stays quick.
import type { LogDumpFormat } from "./log.ts";
import type { PeekFormat } from "./peek.ts";
import { registerBridge } from "./bridge-command.ts";

/** Formats of `peek --as`. */
// Every scalar type of struct() (peek.ts reads them); listed here so that parsing the command line loads no addon.
const PEEK_FORMATS: readonly PeekFormat[] = ["hex", "u8", "i8", "u16", "i16", "u32", "i32", "f32", "f64", "u64", "i64", "bool", "utf8", "struct-json"];
/** Formats of `log dump --as` and `log tail --as`. */
const LOG_DUMP_FORMATS: readonly LogDumpFormat[] = ["text", "hex"];
/** src/cli/program.ts and dist/cli/program.js both sit two levels below the package root. */
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

function version(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot, "package.json"), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** Parses a sequence number or "start"/"end" for log dump and tail. */
function parseFrom(text: string): number | "start" | "end" {
  if (text === "start" || text === "end") return text;
  if (/^\d+$/.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
  throw new InvalidArgumentError(`expected "start", "end" or a sequence number.`);
}

/** Builds the command tree; `setCode` receives each action's exit code. */
/** --last replaces --from: giving both is a usage error. */
function checkFromOrLast(opts: { last?: number }, cmd: Command): void {
  if (opts.last !== undefined && cmd.getOptionValueSource("from") === "cli")
    throw new CliError("--from and --last cannot be combined: --last n starts at the last n records", EXIT_USAGE);
}

export function buildProgram(setCode: (code: number) => void): Command {
  const program = new Command("memmap");
  program
    .description("Memory-mapped files from the command line: see and control the page cache, look inside files, logs and channels.")
    .version(version(), "-V, --version")
    .option("--debug", "print stack traces with errors")
    .exitOverride()
    .configureOutput({
      // Commander's own errors ("error: unknown option …") become one line.
      outputError: (text, write) => write(`memmap: ${text.trim().replace(/\s*\n\s*/g, " ")}\n`),
    })
    .showSuggestionAfterError(true)
    .addHelpText(
      "after",
      "\nExit codes: 0 success, 1 failure, 2 bad command line.\nExamples:\n  memmap stat /var/lib/data --map\n  memmap warm big.bin && memmap lock big.bin\n  memmap peek records.bin --as u32 --offset 4k --length 64",
    );

  program
    .command("stat")
    .description("show how much of each file (directories: recursively) is in the page cache, like fincore/vmtouch")
    .argument("<paths...>", "files or directories")
    .option("-m, --map [width]", "draw a residency map per file (O all pages resident, o some, blank none)", parsePositiveInteger)
    .option("-s, --summary", "print only the totals")
    .option("--json", "print the result as JSON")
    .action(async (paths: string[], opts: { map?: boolean | number; summary?: boolean; json?: boolean }) => {
      const { runStat } = await import("./stat.ts");
      setCode(runStat(paths, opts));
    });

  program
    .command("warm")
    .description("read files into the page cache (vmtouch -t), with progress and throughput")
    .argument("<paths...>", "files or directories")
    .option("--json", "print the result as JSON")
    .action(async (paths: string[], opts: { json?: boolean }) => {
      const { runWarm } = await import("./warm.ts");
      setCode(runWarm(paths, opts));
    });

  program
    .command("evict")
    .description("drop files from the page cache (vmtouch -e); dirty pages are written first")
    .argument("<paths...>", "files or directories")
    .option("--json", "print the result as JSON")
    .action(async (paths: string[], opts: { json?: boolean }) => {
      const { runEvict } = await import("./evict.ts");
      setCode(runEvict(paths, opts));
    });

  program
    .command("lock")
    .description("map and mlock files, holding them in memory until interrupted (vmtouch -l)")
    .argument("<paths...>", "files or directories")
    .option("--max-size <bytes>", "skip files larger than this (decimal, 0x hex, or 4k/1M/1G); default 500M", parseByteCount)
    .option("--json", "print events as JSON lines")
    .action(async (paths: string[], opts: { json?: boolean; maxSize?: number }) => {
      const { runLock } = await import("./lock.ts");
      setCode(await runLock(paths, opts));
    });

  program
    .command("peek")
    .description("show bytes of a file through a mapping")
    .argument("<file>", "the file")
    .option("-o, --offset <bytes>", "first byte (decimal, 0x hex, or 4k/1M/…); default 0", parseByteCount)
    .option("-n, --length <bytes>", `bytes to show (default 256; never past the end of the file)`, parseByteCount)
    .addOption(new Option("-a, --as <format>", "how to show them").choices(PEEK_FORMATS).default("hex"))
    .option("--struct <fields>", "struct-json: record layout, laid out like struct(), e.g. id:u32,price:f64,name:utf8(16),tags:u16[4]; without it the file must be a record file")
    .option("--packed", "struct-json with --struct: no padding between fields")
    .option("-r, --row <index>", "struct-json: first record to show (default 0)", parseNonNegativeInteger)
    .option("-c, --count <records>", "struct-json: records to show (default 10)", parsePositiveInteger)
    .option("--json", "print the result as JSON")
    .action(
      async (
        file: string,
        opts: { offset?: number; length?: number; as: PeekFormat; struct?: string; packed?: boolean; row?: number; count?: number; json?: boolean },
      ) => {
        const { runPeek } = await import("./peek.ts");
        setCode(runPeek(file, opts));
      },
    );

  const log = program.command("log").description("inspect a memmap log directory");
  log
    .command("stat")
    .description("segments, sequence range, durable cursors and their lag")
    .argument("<dir>", "the log directory")
    .option("--json", "print the result as JSON")
    .action(async (dir: string, opts: { json?: boolean }) => {
      const { runLogStat } = await import("./log.ts");
      setCode(await runLogStat(dir, opts));
    });
  log
    .command("dump")
    .description("print records from a sequence number")
    .argument("<dir>", "the log directory")
    .option("-f, --from <seq>", 'first record: a sequence number, "start" or "end"', parseFrom, "start")
    .option("-n, --last <n>", "start at the last n records, like tail -n (instead of --from)", parsePositiveInteger)
    .option("-c, --count <n>", "records to print (default: all)", parsePositiveInteger)
    .addOption(new Option("-a, --as <format>", "how to show each payload").choices(LOG_DUMP_FORMATS).default("text"))
    .option("--json", "print one JSON object per record")
    .action(async (dir: string, opts: { from: number | "start" | "end"; last?: number; count?: number; as: LogDumpFormat; json?: boolean }, cmd: Command) => {
      checkFromOrLast(opts, cmd);
      const { runLogDump } = await import("./log.ts");
      setCode(await runLogDump(dir, opts));
    });
  log
    .command("tail")
    .description("follow new records as they are appended (Ctrl-C to stop)")
    .argument("<dir>", "the log directory")
    .option("-f, --from <seq>", 'first record: a sequence number, "start" or "end"', parseFrom, "end")
    .option("-n, --last <n>", "first print the last n records, like tail -n (instead of --from)", parsePositiveInteger)
    .option("-c, --count <n>", "stop after this many records (default: follow until interrupted)", parsePositiveInteger)
    .addOption(new Option("-a, --as <format>", "how to show each payload").choices(LOG_DUMP_FORMATS).default("text"))
    .option("--json", "print one JSON object per record")
    .action(async (dir: string, opts: { from: number | "start" | "end"; last?: number; count?: number; as: LogDumpFormat; json?: boolean }, cmd: Command) => {
      checkFromOrLast(opts, cmd);
      const { runLogTail } = await import("./log.ts");
      setCode(await runLogTail(dir, opts));
    });

  const channel = program.command("channel").description("inspect a memmap channel");
  channel
    .command("stat")
    .description("capacity, fill level, positions, and who is waiting")
    .argument("<path>", "the channel file")
    .option("--json", "print the result as JSON")
    .action(async (file: string, opts: { json?: boolean }) => {
      const { runChannelStat } = await import("./channel.ts");
      setCode(await runChannelStat(file, opts));
    });

  registerBridge(program, setCode);

  program
    .command("bench")
    .description("run the benchmark suite and print its tables (the first run installs the reference libraries)")
    .argument("[names...]", "benchmarks to run (default: all; see --list)")
    .option("-q, --quick", "shorter runs with smaller data")
    .option("-l, --list", "list the benchmarks")
    .action(async (names: string[], opts: { quick?: boolean; list?: boolean }) => {
      const { runBench } = await import("./bench.ts");
      setCode(await runBench(names, opts));
    });

  return program;
}

/** Runs the command line and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let code = EXIT_OK;
  const program = buildProgram((c) => (code = c));
  const debug = argv.includes("--debug");
  try {
    if (argv.length <= 2) {
      program.outputHelp({ error: true });
      return EXIT_USAGE;
    }
    await program.parseAsync(argv);
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version end the program successfully; every other parse error is a usage error.
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.exitCode === 0) return EXIT_OK;
      return EXIT_USAGE;
    }
    process.stderr.write(`memmap: ${describeError(error)}\n`);
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    return error instanceof CliError ? error.exitCode : EXIT_FAILURE;
  }
}
