/**
 * `memmap log stat|dump|tail <dir>`: look inside a log directory.
 *
 * stat reads the files without opening the log (inspectLog: no lock, no
 * repair). dump and tail open it read-only: they change nothing either.
 */
import * as fs from "node:fs";
import { MmapError, inspectLog, openLog, type Log, type LogInspection, type LogRecord } from "../index.ts";
import { CliError, EXIT_FAILURE, EXIT_OK, formatBytes, formatCount, printJson, table } from "./common.ts";
import { fileProblem } from "./files.ts";

export type LogDumpFormat = "text" | "hex";

function fail(dir: string, error: unknown): CliError {
  if (error instanceof CliError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "ENOENT" || code === "ENOTDIR") {
    // The library's wording suits a program ("pass create: true"); the CLI only reads logs, so say what is there instead.
    let what: string;
    try {
      what = fs.statSync(dir).isDirectory()
        ? `not a log directory: it has no ${META_FILE} (a program makes a log with openLog(dir, { create: true }))`
        : `not a log directory: it is a file (a log is a directory holding ${META_FILE})`;
    } catch {
      what = "no such directory";
    }
    return new CliError(`${dir}: ${what} (${String(code)})`, EXIT_FAILURE, { cause: error });
  }
  // Drop advice meant for callers of openLog, and never leave a sentence with its path cut out.
  const message = fileProblem(dir, error).message.replace(/;? ?\(?pass create: true[^)]*\)?/g, "");
  return new CliError(message, EXIT_FAILURE, { cause: error });
}

/** The file that makes a directory a log (src/log/meta.ts). */
const META_FILE = "log.meta";

/** The damage in one sentence: where, then why (the library's message may already say where; say it once). */
function damageText(d: NonNullable<LogInspection["damage"]>): string {
  const reason = d.reason.replace(/^log damaged at seq \d+ in [^:]*: /, "");
  return `at seq ${formatCount(d.seq)} in ${d.file}: ${reason}`;
}

/** A segment's state; past the damage nothing is read, so those segments are "not checked", not "unreadable". */
function segmentState(seg: LogInspection["segments"][number], s: LogInspection): string {
  if (seg.sealed !== undefined) return seg.sealed ? "sealed" : "active";
  if (s.damage === undefined) return "unreadable";
  if (s.damage.file.endsWith(seg.file)) return "damaged";
  return seg.baseSeq > s.damage.seq ? "not checked (after the damage)" : "unreadable";
}

function describeInspection(s: LogInspection): string {
  const seqs = s.nextSeq - s.firstSeq;
  const aborted = s.segments.reduce((n, seg) => n + (seg.aborted ?? 0), 0); // gaps: sequence numbers with no record
  const records = seqs - aborted;
  const onDisk = s.segments.reduce((n, seg) => n + seg.bytes, 0);
  const out: string[] = [];
  out.push(`Log ${s.dir} (segments of ${formatBytes(s.segmentSize)})`);
  out.push(
    seqs > 0
      ? `  records   ${formatCount(records)}: seq ${formatCount(s.firstSeq)} to ${formatCount(s.nextSeq - 1)}${aborted > 0 ? ` (${formatCount(aborted)} aborted: no record)` : ""}; the next append gets ${formatCount(s.nextSeq)}`
      : `  records   none; the next append gets seq ${formatCount(s.nextSeq)}`,
  );
  out.push(`  segments  ${s.segments.length} (${formatBytes(onDisk)} on disk)`);
  if (s.segments.length > 0) {
    const rows = [["FILE", "FIRST SEQ", "RECORDS", "SIZE", "STATE"]];
    for (const seg of s.segments)
      rows.push([
        seg.file,
        formatCount(seg.baseSeq),
        seg.records === undefined ? "?" : formatCount(seg.records),
        formatBytes(seg.bytes),
        segmentState(seg, s),
      ]);
    out.push(...table(rows, new Set([0, 4])).split("\n").map((l) => `    ${l}`));
  }
  if (s.cursors.length === 0) out.push("  cursors   none (no durable readers)");
  else {
    out.push(`  cursors   ${s.cursors.length} durable reader${s.cursors.length === 1 ? "" : "s"}`);
    const rows = [["NAME", "NEXT SEQ", "LAG", "UPDATED"]];
    for (const c of s.cursors)
      rows.push([c.name, formatCount(c.seq), formatCount(c.lag), c.updatedAt > 0 ? new Date(c.updatedAt).toISOString() : "-"]);
    out.push(...table(rows, new Set([0, 3])).split("\n").map((l) => `    ${l}`));
  }
  const writers = s.writers.filter((w) => w.alive);
  out.push(`  writers   ${writers.length > 0 ? writers.map((w) => `pid ${w.pid}`).join(", ") : "none now"}`);
  out.push(s.damage === undefined ? "  damage    none" : `  damage    ${damageText(s.damage)}`);
  return `${out.join("\n")}\n`;
}

export async function runLogStat(dir: string, options: { json?: boolean }): Promise<number> {
  let s: LogInspection;
  try {
    s = inspectLog(dir);
  } catch (error) {
    throw fail(dir, error);
  }
  if (options.json) printJson(s);
  else process.stdout.write(describeInspection(s));
  if (s.damage !== undefined) {
    process.stderr.write(`memmap: the log is damaged ${damageText(s.damage)}\n`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}

// ------------------------------------------------------------------ records

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const looseUtf8 = new TextDecoder("utf-8");

/** A payload as one line of text: UTF-8 with control characters escaped; bytes that are not UTF-8 in hex. */
function textOf(data: Uint8Array): string {
  let text: string;
  try {
    text = strictUtf8.decode(data);
  } catch {
    return `(${data.length} bytes, not UTF-8) ${Buffer.from(data.subarray(0, 64)).toString("hex")}${data.length > 64 ? "…" : ""}`;
  }
  return text.replace(/[\u0000-\u001f\u007f\\]/g, (c) =>
    c === "\n" ? "\\n" : c === "\t" ? "\\t" : c === "\r" ? "\\r" : c === "\\" ? "\\\\" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

function hexLines(data: Uint8Array): string[] {
  const lines: string[] = [];
  for (let i = 0; i < data.length; i += 16) {
    const row = data.subarray(i, i + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`    ${i.toString(16).padStart(6, "0")}  ${hex.padEnd(47)}  |${ascii}|`);
  }
  return lines;
}

function printRecord(r: LogRecord, as: LogDumpFormat, json: boolean | undefined): void {
  const time = new Date(r.timestamp).toISOString();
  if (json) {
    const payload = as === "hex" ? { hex: Buffer.from(r.data).toString("hex") } : { text: looseUtf8.decode(r.data) };
    process.stdout.write(`${JSON.stringify({ seq: r.seq, timestamp: r.timestamp, length: r.data.length, ...payload })}\n`);
  } else if (as === "hex") {
    process.stdout.write(`#${r.seq}  ${time}  ${r.data.length} bytes\n${hexLines(r.data).join("\n")}${r.data.length > 0 ? "\n" : ""}`);
  } else {
    process.stdout.write(`#${r.seq}  ${time}  ${textOf(r.data)}\n`);
  }
}

/** Why a dump stops before the log's end. */
const CLAIMED = "claimed by a writer that has not committed it (still writing, or killed: the next writable open seals it)";

/** A sequence number with no record (an ABORTED frame): said, not skipped silently. */
function printGap(seq: number, json: boolean | undefined): void {
  if (json) process.stdout.write(`${JSON.stringify({ seq, aborted: true })}\n`);
  else process.stdout.write(`#${seq}  aborted: no record (its writer crashed before committing it, or called abort())\n`);
}

function open(dir: string): Log {
  try {
    return openLog(dir, { readOnly: true });
  } catch (error) {
    throw fail(dir, error);
  }
}

export interface LogDumpOptions {
  from: number | "start" | "end";
  /** Start at the last `last` records instead of at `from` (like tail -n). */
  last?: number;
  count?: number;
  as: LogDumpFormat;
  json?: boolean;
}

/** Where to start: `from`, or `last` records before the end (never before the first record kept). */
function startOf(log: Log, options: LogDumpOptions): number | "start" | "end" {
  return options.last === undefined ? options.from : Math.max(log.firstSeq, log.nextSeq - options.last);
}

export async function runLogDump(dir: string, options: LogDumpOptions): Promise<number> {
  const log = open(dir);
  try {
    const reader = log.reader({ from: startOf(log, options) });
    let n = 0;
    let stoppedAt: number | undefined; // where next() found a frame claimed but not committed, before the end
    try {
      while (options.count === undefined || n < options.count) {
        const at = reader.position;
        const r = reader.next();
        if (r === null) {
          if (at < log.nextSeq) stoppedAt = at;
          break;
        }
        for (let seq = at; seq < r.seq; seq++) printGap(seq, options.json); // ABORTED frames: gaps in the sequence
        printRecord(r, options.as, options.json);
        n++;
      }
    } catch (error) {
      throw fail(dir, error);
    } finally {
      reader.close();
    }
    if (options.json && stoppedAt !== undefined) process.stdout.write(`${JSON.stringify({ seq: stoppedAt, claimed: true })}\n`);
    if (!options.json) {
      const hint = n === 0 && options.from === "end" && options.last === undefined ? "; --last n prints the last n records" : "";
      // The records after a claimed frame exist: a dump that just ended would hide them.
      const stop = stoppedAt === undefined ? "" : `; stopped at seq ${formatCount(stoppedAt)}: ${CLAIMED}`;
      process.stderr.write(`(${formatCount(n)} record${n === 1 ? "" : "s"}${stop}; the log's next seq is ${formatCount(log.nextSeq)}${hint})\n`);
    }
  } finally {
    log.close();
  }
  return EXIT_OK;
}

/** tail takes dump's options: where to start, how many records, and how to print them. */
export type LogTailOptions = LogDumpOptions;

export async function runLogTail(dir: string, options: LogTailOptions): Promise<number> {
  const log = open(dir);
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const reader = log.reader({ from: startOf(log, options) });
  let n = 0;
  try {
    if (!options.json) process.stderr.write(`following ${dir} from seq ${formatCount(reader.position)}; Ctrl-C to stop\n`);
    let at = reader.position;
    for await (const r of reader.tail({ signal: stop.signal })) {
      for (let seq = at; seq < r.seq; seq++) printGap(seq, options.json);
      at = r.seq + 1;
      printRecord(r, options.as, options.json);
      if (options.count !== undefined && ++n >= options.count) break;
    }
  } catch (error) {
    if (!(error instanceof MmapError && error.code === "ERR_ABORTED" && stop.signal.aborted)) throw fail(dir, error);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    reader.close();
    log.close();
  }
  return EXIT_OK;
}
