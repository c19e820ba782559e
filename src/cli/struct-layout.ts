/**
 * Records for `memmap peek --as struct-json`: the layout written on the
 * command line (`--struct id:u32,price:f64,name:utf8(16),tags:u16[4]`) made
 * into a {@link Layout} with struct(), and rows turned into JSON.
 */
import { MmapError, array, struct, utf8, type FieldType, type Layout, type ScalarTypeName } from "../index.ts";
import { usageError } from "./common.ts";

const SCALARS: readonly ScalarTypeName[] = ["i8", "u8", "i16", "u16", "i32", "u32", "f32", "f64", "i64", "u64", "bool"];

/**
 * Parses comma-separated `name:type` fields; a type is a scalar
 * (`u8 … u64`, `i8 … i64`, `f32`, `f64`, `bool`), `utf8(n)`, or either
 * followed by `[n]` for an array. Laid out like struct(): C alignment unless
 * `packed`.
 */
export function parseStructLayout(text: string, packed = false): Layout {
  const schema: Record<string, FieldType> = {};
  for (const part of text.split(",")) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([a-z0-9]+)(?:\((\d+)\))?(?:\[(\d+)\])?\s*$/.exec(part);
    if (!match)
      throw usageError(`bad --struct field "${part.trim()}": expected name:type, e.g. id:u32, name:utf8(16) or tags:u16[4]`);
    const [, name, type, size, count] = match as unknown as [string, string, string, string | undefined, string | undefined];
    if (Object.hasOwn(schema, name)) throw usageError(`--struct names field "${name}" twice`);
    let field: FieldType;
    if (type === "utf8" && size !== undefined) field = utf8(Number(size));
    else if ((SCALARS as readonly string[]).includes(type) && size === undefined) field = type as ScalarTypeName;
    else throw usageError(`--struct field "${name}": unknown type "${type}${size === undefined ? "" : `(${size})`}" (expected ${SCALARS.join(", ")} or utf8(n))`);
    schema[name] = count === undefined ? field : array(field, Number(count));
  }
  try {
    return struct(schema, { packed });
  } catch (error) {
    // struct() explains what is wrong (reserved names, sizes); on the command line that is a usage error.
    if (error instanceof MmapError) throw usageError(`--struct: ${error.message}`);
    throw error;
  }
}

/**
 * A row as JSON can hold it: 64-bit integers become numbers when exact and
 * decimal strings otherwise; NaN and ±Infinity become strings.
 */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === "bigint")
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = jsonSafe(v);
    return out;
  }
  return value;
}
