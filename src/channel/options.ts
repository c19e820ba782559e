/**
 * The options of the channel's public functions and methods, and the checks
 * of arguments that are not the channel's own state (see ./channel.ts).
 */
import { invalidArg } from "../core/errors.ts";
import { SharedMemory } from "../core/shared-memory.ts";
import type { WaitStrategy } from "../core/wait.ts";
import { describe, validateAbortSignal, validateBoolean, validateInteger } from "../core/validate.ts";
import type { ChannelProducers } from "./file.ts";
import { MIN_CAPACITY } from "./layout.ts";
import type { ChannelData } from "./producer.ts";

/** Options of {@link createChannel}. */
export interface CreateChannelOptions {
  /**
   * Ring size in bytes, 4 KiB to 1 GiB; rounded up to a power of two.
   * @default 1 << 20 (1 MiB)
   */
  capacity?: number;
  /**
   * One producer, or any number of producer processes.
   * @default "single"
   */
  producers?: ChannelProducers;
  /**
   * Every message carries a CRC32C of its bytes, which the consumer checks
   * before delivering it (ERR_CORRUPT for a damaged message). Costs 4 bytes
   * per message and a checksum on each side (see docs/channel.md,
   * Performance). Without it, every frame still carries a 16-bit check of
   * its length and type, so damage never invents a message; only damage
   * inside a message's own bytes goes unnoticed.
   * @default false
   */
  checksum?: boolean;
  /**
   * Permission bits (0 to 0o777) of a channel file created at a path, applied exactly (the umask does not apply).
   * @default 0o600
   */
  mode?: number;
  /**
   * With a path: replace an existing file instead of failing with EEXIST.
   * @default false
   */
  overwrite?: boolean;
  /**
   * @deprecated Use `overwrite`, the name {@link createRecordFile} and
   * {@link createNpy} use too; `replace` goes in the next minor version.
   */
  replace?: boolean;
  /**
   * How send() and receive() wait: poll ("spin"), poll then yield the CPU
   * ("yield"), sleep on a futex ("futex"), or poll as long as polling pays
   * off here, then sleep ("adaptive").
   * @default "adaptive"
   */
  strategy?: WaitStrategy;
  /**
   * Polls before a synchronous wait yields or sleeps; with "adaptive", the
   * most it polls (about 100 µs of polls).
   * @default 2000
   */
  spin?: number;
}

/** Options of {@link openChannel}. */
export interface OpenChannelOptions {
  /**
   * How send() and receive() wait: poll ("spin"), poll then yield the CPU
   * ("yield"), sleep on a futex ("futex"), or poll as long as polling pays
   * off here, then sleep ("adaptive").
   * @default "adaptive"
   */
  strategy?: WaitStrategy;
  /**
   * Polls before a synchronous wait yields or sleeps; with "adaptive", the
   * most it polls (about 100 µs of polls).
   * @default 2000
   */
  spin?: number;
}

/** Options of {@link Channel.send}, {@link Channel.sendBatch} and {@link Channel.claim}. */
export interface SendOptions {
  /**
   * Milliseconds to wait for space; default forever.
   * @default Infinity
   */
  timeoutMs?: number;
  /** @deprecated Use `timeoutMs` (every duration option of memmap ends in `Ms`); `timeout` goes in the next minor version. */
  timeout?: number;
}

/** Options of {@link Channel.sendAsync}. */
export interface SendAsyncOptions extends SendOptions {
  /**
   * Cancels the wait (ERR_ABORTED).
   * @default undefined (the wait cannot be cancelled)
   */
  signal?: AbortSignal;
}

/** Options of {@link Channel.tryReceive}. */
export interface TryReceiveOptions {
  /**
   * Return a copy instead of a view into the ring.
   * @default false
   */
  copy?: boolean;
}

/** Options of {@link Channel.receive}. */
export interface ReceiveOptions extends TryReceiveOptions {
  /**
   * Milliseconds to wait for a message; default forever.
   * @default Infinity
   */
  timeoutMs?: number;
  /** @deprecated Use `timeoutMs` (every duration option of memmap ends in `Ms`); `timeout` goes in the next minor version. */
  timeout?: number;
}

/** Options of {@link Channel.receiveAsync}. */
export interface ReceiveAsyncOptions extends ReceiveOptions {
  /**
   * Cancels the wait (ERR_ABORTED).
   * @default undefined (the wait cannot be cancelled)
   */
  signal?: AbortSignal;
}

export const DEFAULT_CAPACITY = 1 << 20;

export function nextPowerOfTwo(n: number): number {
  let p = MIN_CAPACITY;
  while (p < n) p *= 2;
  return p;
}

export function payloadLength(data: ChannelData): number {
  if (typeof data === "string") return Buffer.byteLength(data, "utf8");
  if (ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof ArrayBuffer) return data.byteLength;
  throw invalidArg(`a message must be a string, a typed array, a DataView or an ArrayBuffer, got ${describe(data)}`);
}

export function checkCopy(options: TryReceiveOptions | undefined): boolean {
  return options?.copy === undefined ? false : validateBoolean(options.copy, "copy");
}

export function checkSpin(spin: unknown): number | undefined {
  return spin === undefined ? undefined : validateInteger(spin, "spin", 0, 1e9);
}

export function checkSignal(signal: unknown): AbortSignal | undefined {
  return signal === undefined ? undefined : validateAbortSignal(signal, "signal");
}

export const EXISTS_HINT = "open it with openChannel(), or pass overwrite: true";

/**
 * `overwrite`, or its deprecated alias `replace`. The one name is
 * `overwrite`: two of the three create functions (createRecordFile,
 * createNpy) used it already, and it says what happens to the old file's
 * contents for whoever still reads the path. `replace` is read for one minor
 * version.
 */
export function overwriteOf(options: CreateChannelOptions): boolean {
  for (const name of ["overwrite", "replace"] as const) {
    const value = options[name];
    if (value !== undefined && typeof value !== "boolean") throw invalidArg(`${name} must be a boolean, got ${describe(value)}`);
  }
  if (options.overwrite !== undefined && options.replace !== undefined)
    throw invalidArg("pass overwrite, not both overwrite and replace (its deprecated alias)");
  return (options.overwrite ?? options.replace) === true;
}

export function targetOf(target: unknown, what: string): string | number {
  if (target instanceof SharedMemory) return target.fd;
  if (typeof target === "string" || typeof target === "number") return target;
  throw invalidArg(`${what} expects a path, a file descriptor or a SharedMemory, got ${describe(target)}`);
}
