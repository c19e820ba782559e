/**
 * Argument validation shared by every public function, in the manner of
 * Node's lib/internal/validators.js: a public function makes a few of these
 * calls, then does its work. Every failure is an MmapError ERR_INVALID_ARG
 * whose message names the argument and says what it got.
 */
import { invalidArg } from "./errors.ts";

/** A short, safe description of a value for an error message (never its full contents). */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || typeof value === "boolean" || value === undefined) return String(value);
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object" || typeof value === "function") {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === "string" && name !== "" ? name : typeof value;
  }
  return typeof value;
}

/** An integer from `min` to `max` (both included). */
export function validateInteger(value: unknown, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isInteger(value)) throw invalidArg(`${name} must be an integer, got ${describe(value)}`);
  if (value < min) throw invalidArg(min === 0 ? `${name} must not be negative, got ${value}` : `${name} must be at least ${min}, got ${value}`);
  if (value > max) throw invalidArg(`${name} must be at most ${max}, got ${value}`);
  return value;
}

/** One of the strings in `allowed`. */
export function validateOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
  throw invalidArg(`${name} must be one of ${allowed.map((c) => `"${c}"`).join(", ")}, got ${describe(value)}`);
}

export function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== "boolean") throw invalidArg(`${name} must be a boolean, got ${describe(value)}`);
  return value;
}

export function validateAbortSignal(value: unknown, name: string): AbortSignal {
  if (!(value instanceof AbortSignal)) throw invalidArg(`${name} must be an AbortSignal, got ${describe(value)}`);
  return value;
}

/**
 * An options argument: an object or undefined (then `{}`), whose keys are all
 * in `allowedKeys`. A misspelled option fails here instead of being ignored.
 * `fnName` starts the message ("mapFile", "openLog retention", …).
 */
export function validateOptions<T extends object>(options: T | undefined, allowedKeys: Iterable<string>, fnName: string): T {
  if (options === undefined) return {} as T;
  if (typeof options !== "object" || options === null || Array.isArray(options))
    throw invalidArg(`${fnName}: options must be an object, got ${describe(options)}`);
  const allowed = [...allowedKeys];
  for (const key of Object.keys(options))
    if (!allowed.includes(key)) throw invalidArg(`${fnName}: unknown option "${key}" (expected one of: ${allowed.join(", ")})`);
  return options;
}

/** validateInteger with a lower bound of 0, under the name the layers above already call. */
export function checkInteger(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  return validateInteger(value, name, 0, max);
}

/**
 * A `mode` option: permission bits only (0 to 0o777), default 0o600. Setuid,
 * setgid and sticky bits have no use on a mapped file, and a setuid file in a
 * shared directory is a gift to whoever can write it.
 */
export function checkMode(value: unknown, fallback = 0o600): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0o777)
    throw invalidArg(
      `mode must be permission bits from 0 to 0o777 (no setuid, setgid or sticky bit), got ${typeof value === "number" ? `0o${value.toString(8)}` : describe(value)}`,
    );
  return value;
}
