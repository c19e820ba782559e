/**
 * Shared pieces of the `memmap` command: exit codes, the one-line error
 * report, number parsing for options, and human-readable figures.
 */
import { InvalidArgumentError } from "commander";
import { MmapError } from "../index.ts";

/** Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A failure with a message meant for the user as it is (no stack trace). */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = EXIT_FAILURE, options?: { cause?: unknown }) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** A wrong command line: exit code 2. */
export function usageError(message: string): CliError {
  return new CliError(message, EXIT_USAGE);
}

/** One line that says what went wrong, for stderr. */
export function describeError(error: unknown): string {
  if (error instanceof CliError) return error.message;
  if (error instanceof MmapError) {
    const where = error.path !== undefined && !error.message.includes(error.path) ? ` '${error.path}'` : "";
    return `${error.message}${where}`.replace(/\s*\n\s*/g, " ");
  }
  if (error instanceof Error) return error.message.replace(/\s*\n\s*/g, " ");
  return String(error);
}

/** The errno-style code of an error, for --json output. */
export function errorCode(error: unknown): string {
  if (error instanceof MmapError) return error.code;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "ERR_UNKNOWN";
}

const SIZE_SUFFIXES: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * Parses a byte count or offset given on the command line: decimal, `0x` hex,
 * or a number with a binary suffix (`4k`, `16M`, `1G`). Throws a commander
 * InvalidArgumentError, which becomes a usage error (exit 2).
 */
export function parseByteCount(text: string): number {
  const t = text.trim();
  let value: number;
  const hex = /^0x([0-9a-f]+)$/i.exec(t);
  const dec = /^(\d+)([kmgt]?)(i?b)?$/i.exec(t);
  if (hex) value = Number.parseInt(hex[1]!, 16);
  else if (dec) value = Number(dec[1]) * SIZE_SUFFIXES[dec[2]!.toLowerCase()]!;
  else throw new InvalidArgumentError("expected a non-negative integer (decimal, 0x hex, or with a k/M/G suffix).");
  if (!Number.isSafeInteger(value)) throw new InvalidArgumentError("the number is too large.");
  return value;
}

/** Parses a positive integer option such as a count. */
export function parsePositiveInteger(text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new InvalidArgumentError("expected a positive integer.");
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError("expected a positive integer.");
  return value;
}

/** Parses a count or index that may be 0. */
export function parseNonNegativeInteger(text: string): number {
  const value = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value)) throw new InvalidArgumentError("expected a non-negative integer.");
  return value;
}

/** 1536 -> "1.5 KiB"; bytes below 1 KiB are shown exactly. */
export function formatBytes(bytes: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = "B";
  for (const u of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${unit}`;
}

/** Part of a whole as a percentage with one decimal, rounded down (only a whole is 100%); an empty whole is 0%. */
export function percent(part: number, whole: number): number {
  return whole === 0 ? 0 : Math.floor((part * 1000) / whole) / 10;
}

/** A percentage for people: one decimal, and "<0.1%" rather than "0%" when some but very little. */
export function formatPercent(part: number, whole: number): string {
  const p = percent(part, whole);
  return p === 0 && part > 0 ? "<0.1%" : `${p}%`;
}

/** 12345678 -> "12,345,678" */
export function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

/** Milliseconds or seconds, whichever reads better. */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(ms < 10 ? 2 : 0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Bytes per second as "1.2 GiB/s". */
export function formatRate(bytes: number, ms: number): string {
  if (ms <= 0) return "-";
  return `${formatBytes(Math.round((bytes / ms) * 1000))}/s`;
}

/** Prints a value as JSON on stdout, one document. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Right-aligns each column of rows of cells; the first row is the header. */
export function table(rows: string[][], alignLeft: ReadonlySet<number> = new Set()): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => {
          const last = i === row.length - 1;
          if (alignLeft.has(i)) return last ? cell : cell.padEnd(widths[i]!);
          return cell.padStart(widths[i]!);
        })
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
