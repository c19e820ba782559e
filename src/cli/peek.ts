/**
 * `memmap peek <file>`: show bytes of a file, read through a mapping of
 * just that range, as hex, integers, floats, text or struct records.
 */
import * as fs from "node:fs";
import { MmapError, mapFile, openRecordFile, type Layout, type MappedFile, type ScalarTypeName } from "../index.ts";
import { CliError, EXIT_OK, printJson, usageError } from "./common.ts";
import { fileProblem } from "./files.ts";
import { jsonSafe, parseStructLayout } from "./struct-layout.ts";

/** Every scalar type of struct(), read little-endian. */
export type NumberFormat = ScalarTypeName;

export type PeekFormat = "hex" | NumberFormat | "utf8" | "struct-json";

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

type Scalar = number | bigint | boolean;

/** Per type: bytes per value, values per text line, text cell width, and the little-endian read. */
const NUMBER_TYPES: Record<NumberFormat, { size: number; perLine: number; width: number; read: (v: DataView, i: number) => Scalar }> = {
  u8: { size: 1, perLine: 16, width: 3, read: (v, i) => v.getUint8(i) },
  i8: { size: 1, perLine: 16, width: 4, read: (v, i) => v.getInt8(i) },
  u16: { size: 2, perLine: 8, width: 5, read: (v, i) => v.getUint16(i, true) },
  i16: { size: 2, perLine: 8, width: 6, read: (v, i) => v.getInt16(i, true) },
  u32: { size: 4, perLine: 8, width: 10, read: (v, i) => v.getUint32(i, true) },
  i32: { size: 4, perLine: 8, width: 11, read: (v, i) => v.getInt32(i, true) },
  f32: { size: 4, perLine: 4, width: 22, read: (v, i) => v.getFloat32(i, true) },
  f64: { size: 8, perLine: 4, width: 22, read: (v, i) => v.getFloat64(i, true) },
  u64: { size: 8, perLine: 4, width: 20, read: (v, i) => v.getBigUint64(i, true) },
  i64: { size: 8, perLine: 4, width: 20, read: (v, i) => v.getBigInt64(i, true) },
  bool: { size: 1, perLine: 16, width: 5, read: (v, i) => v.getUint8(i) !== 0 },
};

/** Little-endian values, read with a DataView so any offset works. */
function numbers(bytes: Uint8Array, as: NumberFormat): Scalar[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { size, read } = NUMBER_TYPES[as];
  const out: Scalar[] = [];
  for (let i = 0; i + size <= bytes.length; i += size) out.push(read(view, i));
  return out;
}

/** JSON has no NaN, Infinity or 64-bit integers: those become strings (integers only beyond 2⁵³, as struct-json does). */
function jsonNumber(n: Scalar): number | string | boolean {
  if (typeof n === "bigint") return n >= -BigInt(Number.MAX_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : String(n);
  if (typeof n === "boolean") return n;
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
      case "utf8": {
        const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
        if (options.json) printJson({ ...head, text });
        else process.stdout.write(text.endsWith("\n") || text.length === 0 ? text : `${text}\n`);
        break;
      }
      default: {
        const as = options.as;
        const { size: elementSize, perLine, width: cellWidth } = NUMBER_TYPES[as];
        const values = numbers(bytes, as);
        const trailing = length - values.length * elementSize;
        if (options.json) {
          printJson({ ...head, values: values.map(jsonNumber), trailingBytes: trailing });
          break;
        }
        const width = offsetWidth(offset + length);
        writeLines(
          (function* () {
            for (let i = 0; i < values.length; i += perLine) {
              const cells = values.slice(i, i + perLine).map((v) => String(v).padStart(cellWidth));
              yield `${(offset + i * elementSize).toString(16).padStart(width, "0")}  ${cells.join(" ")}`;
            }
            if (trailing > 0) yield `(${trailing} trailing byte${trailing === 1 ? "" : "s"} not shown)`;
          })(),
        );
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
