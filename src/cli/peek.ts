/**
 * `memmap peek <file>`: show bytes of a file, read through a mapping of
 * just that range, as hex, integers, floats, text or struct records.
 */
import * as fs from "node:fs";
import { MmapError, mapFile, openRecordFile, type Layout, type MappedFile } from "../index.ts";
import { CliError, EXIT_OK, printJson, usageError } from "./common.ts";
import { fileProblem } from "./files.ts";
import { jsonSafe, parseStructLayout } from "./struct-layout.ts";

export type PeekFormat = "hex" | "u8" | "u32" | "f64" | "utf8" | "struct-json";

/** Bytes shown when --length is not given. */
export const DEFAULT_PEEK_LENGTH = 256;

export interface PeekOptions {
  /** First byte. Default 0. */
  offset?: number;
  /** Bytes to show. Default {@link DEFAULT_PEEK_LENGTH}. */
  length?: number;
  as: PeekFormat;
  /** struct-json: the record layout, e.g. "id:u32,price:f64"; without it the file must be a record file. */
  struct?: string;
  /** struct-json with --struct: no padding between fields. */
  packed?: boolean;
  /** struct-json: the first record to show. Default 0. */
  row?: number;
  /** struct-json: how many records. Default {@link DEFAULT_PEEK_RECORDS}. */
  count?: number;
  json?: boolean;
}

/** Records shown by struct-json when --count is not given. */
export const DEFAULT_PEEK_RECORDS = 10;

/** The most bytes one peek shows (the output is text many times that size). */
export const MAX_PEEK_BYTES = 16 * 1024 * 1024;

const HEX_LINE = 16;

/** Writes lines to stdout a batch at a time, so a long dump never becomes one huge string. */
function writeLines(lines: Iterable<string>): void {
  let batch: string[] = [];
  for (const line of lines) {
    batch.push(line);
    if (batch.length === 4096) {
      process.stdout.write(`${batch.join("\n")}\n`);
      batch = [];
    }
  }
  if (batch.length > 0) process.stdout.write(`${batch.join("\n")}\n`);
}

/** Hex digits for file offsets up to `end`: at least 8. */
function offsetWidth(end: number): number {
  return Math.max(8, end.toString(16).length);
}

/** hexdump -C style: offset, 16 bytes in two groups, and the printable characters. */
function* hexLines(bytes: Uint8Array, base: number): Generator<string> {
  const width = offsetWidth(base + bytes.length);
  for (let i = 0; i < bytes.length; i += HEX_LINE) {
    const row = bytes.subarray(i, i + HEX_LINE);
    let hex = "";
    let text = "";
    for (let j = 0; j < HEX_LINE; j++) {
      if (j === 8) hex += " ";
      const b = row[j];
      hex += b === undefined ? "   " : `${b.toString(16).padStart(2, "0")} `;
      if (b !== undefined) text += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
    }
    yield `${(base + i).toString(16).padStart(width, "0")}  ${hex} |${text}|`;
  }
}

type NumberFormat = "u8" | "u32" | "f64";
const ELEMENT_SIZE: Record<NumberFormat, number> = { u8: 1, u32: 4, f64: 8 };
const PER_LINE: Record<NumberFormat, number> = { u8: 16, u32: 8, f64: 4 };
const CELL_WIDTH: Record<NumberFormat, number> = { u8: 3, u32: 10, f64: 22 };

/** Little-endian values, read with a DataView so any offset works. */
function numbers(bytes: Uint8Array, as: NumberFormat): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = ELEMENT_SIZE[as];
  const out: number[] = [];
  for (let i = 0; i + size <= bytes.length; i += size) {
    out.push(as === "u8" ? view.getUint8(i) : as === "u32" ? view.getUint32(i, true) : view.getFloat64(i, true));
  }
  return out;
}

/** JSON has no NaN or Infinity: those become strings. */
function jsonNumber(n: number): number | string {
  return Number.isFinite(n) ? n : String(n);
}

function fail(file: string, error: unknown): CliError {
  if (error instanceof CliError) return error;
  return new CliError(fileProblem(file, error).message, 1, { cause: error });
}

/** The size of `file`, which must be a regular file at least `offset` bytes long. */
function sizeFrom(file: string, offset: number): number {
  let size: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new CliError(`${file}: not a regular file`);
    size = st.size;
  } catch (error) {
    throw fail(file, error);
  }
  if (offset > size) throw new CliError(`offset ${offset} is beyond the end of ${file} (${size} bytes)`);
  return size;
}

/** Maps `length` bytes of `file` from `offset`. */
function mapRange(file: string, offset: number, length: number): MappedFile {
  try {
    return mapFile(file, { offset, length });
  } catch (error) {
    throw fail(file, error);
  }
}

export function runPeek(file: string, options: PeekOptions): number {
  const structOnly = (["struct", "packed", "row", "count"] as const).filter((k) => options[k] !== undefined);
  if (options.as !== "struct-json" && structOnly.length > 0)
    throw usageError(`--${structOnly[0]} only applies to --as struct-json`);
  if (options.length !== undefined && options.length > MAX_PEEK_BYTES)
    throw usageError(`--length is at most ${MAX_PEEK_BYTES} (16 MiB) bytes; peek a range at a time`);
  if (options.as === "struct-json") return peekRecords(file, options);

  const offset = options.offset ?? 0;
  const size = sizeFrom(file, offset);
  const length = Math.min(options.length ?? DEFAULT_PEEK_LENGTH, size - offset); // never past the end of the file

  const m = mapRange(file, offset, length);
  try {
    const bytes = m.bytes;
    const head = { file, size, offset, length, as: options.as };
    switch (options.as) {
      case "hex": {
        if (options.json) printJson({ ...head, hex: Buffer.from(bytes).toString("hex") });
        else writeLines(hexLines(bytes, offset));
        break;
      }
      case "u8":
      case "u32":
      case "f64": {
        const as = options.as;
        const values = numbers(bytes, as);
        const trailing = length - values.length * ELEMENT_SIZE[as];
        if (options.json) {
          printJson({ ...head, values: values.map(jsonNumber), trailingBytes: trailing });
          break;
        }
        const width = offsetWidth(offset + length);
        writeLines(
          (function* () {
            for (let i = 0; i < values.length; i += PER_LINE[as]) {
              const cells = values.slice(i, i + PER_LINE[as]).map((v) => String(v).padStart(CELL_WIDTH[as]));
              yield `${(offset + i * ELEMENT_SIZE[as]).toString(16).padStart(width, "0")}  ${cells.join(" ")}`;
            }
            if (trailing > 0) yield `(${trailing} trailing byte${trailing === 1 ? "" : "s"} not shown)`;
          })(),
        );
        break;
      }
      case "utf8": {
        const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
        if (options.json) printJson({ ...head, text });
        else process.stdout.write(text.endsWith("\n") || text.length === 0 ? text : `${text}\n`);
        break;
      }
    }
  } finally {
    m.close();
  }
  return EXIT_OK;
}

/**
 * struct-json: rows of a record file (its header gives the layout), or of
 * any file with --struct, as JSON. --row and --count pick the rows.
 */
function peekRecords(file: string, options: PeekOptions): number {
  if (options.length !== undefined) throw usageError("--as struct-json shows records: use --row and --count instead of --length");
  if (options.struct === undefined && (options.offset !== undefined || options.packed !== undefined))
    throw usageError("--offset and --packed need --struct (a record file's header gives the layout and where rows start)");
  const from = options.row ?? 0;
  const checkCount = (rowSize: number): void => {
    if ((options.count ?? 0) * rowSize > MAX_PEEK_BYTES)
      throw usageError(`--count ${options.count} records of ${rowSize} bytes is more than peek shows at once (16 MiB)`);
  };
  let layout: Layout;
  let total: number;
  let records: unknown[] = [];
  let described: Record<string, unknown>;
  if (options.struct === undefined) {
    let rf;
    try {
      rf = openRecordFile(file);
    } catch (error) {
      if (error instanceof MmapError && error.code === "ERR_CORRUPT")
        throw new CliError(`${file}: ${error.message.replace(/\s*'[^']*'$/, "")}; to read raw records give --struct`, 1, { cause: error });
      throw fail(file, error);
    }
    try {
      layout = rf.layout;
      checkCount(layout.byteLength);
      total = rf.length;
      if (from > total) throw new CliError(`row ${from} is beyond the end of ${file} (${total} rows)`);
      const count = Math.min(options.count ?? DEFAULT_PEEK_RECORDS, total - from);
      const rows = rf.rows;
      for (let i = from; i < from + count; i++) records.push(jsonSafe(rows.read(i)));
      described = { recordFile: true, headerLength: rf.headerLength };
    } finally {
      rf.close();
    }
  } else {
    layout = parseStructLayout(options.struct, options.packed === true);
    checkCount(layout.byteLength);
    const offset = options.offset ?? 0;
    const size = sizeFrom(file, offset);
    total = Math.floor((size - offset) / layout.byteLength);
    if (from > total) throw new CliError(`row ${from} is beyond the end of ${file} (${total} whole rows of ${layout.byteLength} bytes from offset ${offset})`);
    const count = Math.min(options.count ?? DEFAULT_PEEK_RECORDS, total - from);
    if (count > 0) {
      const m = mapRange(file, offset + from * layout.byteLength, count * layout.byteLength);
      try {
        const rows = layout.array(m);
        records = Array.from({ length: count }, (_, i) => jsonSafe(rows.read(i)));
      } finally {
        m.close();
      }
    }
    described = { recordFile: false, offset };
  }

  if (options.json) {
    printJson({ file, as: options.as, layout: layout.toString(), rowSize: layout.byteLength, rows: total, ...described, from, records });
  } else {
    process.stderr.write(`# ${layout.toString()}; ${total.toLocaleString("en-US")} rows; showing ${records.length} from row ${from}\n`);
    for (const r of records) process.stdout.write(`${JSON.stringify(r)}\n`);
  }
  return EXIT_OK;
}
