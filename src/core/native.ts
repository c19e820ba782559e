/**
 * The one place that loads the native addon. Everything the addon does is a
 * system call on checked, positional arguments; see native/*.c.
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MmapError } from "./errors.ts";

/** An opaque handle to one mmap'd region (an External). */
export type MappingHandle = { readonly __mapping: unique symbol };
/** An opaque handle to an asynchronous futex wait. */
export type WaitRequest = { readonly __wait: unique symbol };

/** map()'s access codes (native/mapping.h ACCESS_*): read (private, read-only), write (shared), copy (private). */
export const Access = { read: 0, write: 1, copy: 2 } as const;
export type AccessCode = (typeof Access)[keyof typeof Access];

/** advise()/fadvise() indices into the addon's tables of MADV_* and POSIX_FADV_* values (native/ranges.c, files.c). */
export const Advice = { normal: 0, sequential: 1, random: 2, willneed: 3, dontneed: 4 } as const;
export type AdviceCode = (typeof Advice)[keyof typeof Advice];
/** fadvise(…, FADV_DONTNEED) drops a file's clean pages from the page cache. */
export const FADV_DONTNEED = Advice.dontneed;

/** flock() operations (native/files.c ops[]); none of them blocks. */
export const LockOp = { unlock: 0, shared: 1, exclusive: 2 } as const;
export type LockOpCode = (typeof LockOp)[keyof typeof LockOp];

export interface NativeBinding {
  /** access: an {@link Access} code. */
  map(fd: number, offset: number, length: number, access: AccessCode, populate: boolean): MappingHandle;
  buffer(handle: MappingHandle, byteOffset: number, byteLength: number): ArrayBuffer;
  /** False when V8 refused to detach it (the memory stays safe: see native/mapping.c). */
  detach(buffer: ArrayBuffer): boolean;
  unmap(handle: MappingHandle): void;
  /** fd: the mapped file, used when the mapping must move to grow. On failure nothing has changed. */
  remap(handle: MappingHandle, fd: number, newLength: number): void;
  /** Puts the SIGBUS guard back on top of a handler installed after it (libuv's, for process.on("SIGBUS")). */
  guardReassert(): void;
  stale(handle: MappingHandle): boolean;
  sync(handle: MappingHandle, byteOffset: number, byteLength: number): void;
  syncAsync(handle: MappingHandle, byteOffset: number, byteLength: number): Promise<void>;
  populateAsync(handle: MappingHandle, byteOffset: number, byteLength: number): Promise<void>;
  /** advice: an {@link Advice} code. */
  advise(handle: MappingHandle, byteOffset: number, byteLength: number, advice: AdviceCode): void;
  lock(handle: MappingHandle, byteOffset: number, byteLength: number, on: boolean): void;
  /** Refuses (ERR_TOO_LARGE) a range of 2^32 pages or more. */
  residency(handle: MappingHandle, byteOffset: number, byteLength: number): Uint8Array;
  fallocate(fd: number, offset: number, length: number): void;
  memfd(name: string): number;
  dup(fd: number): number;
  /** advice: an {@link Advice} code; FADV_DONTNEED evicts clean pages. */
  fadvise(fd: number, offset: number, length: number, advice: AdviceCode): void;
  pageSize(): number;
  /** 0 woken, 1 timed out, 2 the word did not hold `expected`. timeoutMs < 0: forever. */
  futexWait(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): number;
  /** count >= 1 (a smaller count is ERR_INVALID_ARG: the kernel would read 0 as 1). */
  futexWake(buffer: ArrayBuffer, byteOffset: number, count: number): number;
  /**
   * Parks on one of the addon's waiter threads (with futex_waitv, 127 waits
   * share a thread); callback(0 woken, 1 timed out, 2 not equal, < 0 -errno).
   * A waker should change the word before waking (as Doorbell does).
   */
  waitAsync(
    buffer: ArrayBuffer,
    byteOffset: number,
    expected: number,
    timeoutMs: number,
    callback: (result: number) => void,
  ): WaitRequest;
  /** Its callback will not run. Anything but a wait request is ERR_INVALID_ARG (type-tagged). */
  cancelWait(request: WaitRequest): void;
  /** op: a {@link LockOp}; non-blocking. True when taken. */
  flock(fd: number, op: LockOpCode): boolean;
  /** Open-file-description lock on the byte at `offset`: take (non-blocking; false if held elsewhere) or release. */
  rangeLock(fd: number, offset: number, take: boolean): boolean;
  /** True when another open file description holds a lock on the byte at `offset`. */
  rangeLocked(fd: number, offset: number): boolean;
  /** This thread's environment owns `fd`: closed when the environment ends (a worker terminated) unless closeFd() came first. */
  adoptFd(fd: number): void;
  /** Closes an adopted descriptor. */
  closeFd(fd: number): void;
  /** CRC32C (Castagnoli) of [byteOffset, byteOffset+byteLength); pass a previous result as seed to chain. */
  crc32c(buffer: ArrayBuffer, byteOffset: number, byteLength: number, seed: number): number;
  /** sched_yield(2) */
  yield(): void;
}

/** The prebuilt addon's directory name: `<platform>-<arch>`, `-musl` for musl libc (glibc builds do not load there). */
export function prebuildTag(): string {
  let tag = `${process.platform}-${process.arch}`;
  if (process.platform === "linux") {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    if (!report?.header?.glibcVersionRuntime) tag += "-musl";
  }
  return tag;
}

function load(): NativeBinding {
  const require = createRequire(import.meta.url);
  // src/core/native.ts and dist/core/native.js both sit two levels below the package root.
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  // A local build (a source checkout, or an install that compiled) wins over the prebuilt one shipped in the package.
  const local = join(root, "build", "Release", "memmap.node");
  const candidates = [local, join(root, "build", "Debug", "memmap.node")];
  const prebuilt = join(root, "prebuilds", prebuildTag(), "memmap.node");
  candidates.push(prebuilt);
  const failures: string[] = [];
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    try {
      return require(file) as NativeBinding;
    } catch (error) {
      failures.push(`${file}: ${(error as Error).message}`);
    }
  }
  throw new MmapError(
    "ERR_NO_ADDON",
    `memmap: no native addon loads here (looked for ${local} and ${prebuilt}` +
      (failures.length > 0 ? `; ${failures.join("; ")}` : "") +
      `). ${failures.length > 0 ? "Rebuild it" : `This package has no prebuilt addon for ${prebuildTag()}; build one`} ` +
      `with \`npm rebuild memmap\` (needs a C compiler and Python for node-gyp; with npm 11 or newer, allow ` +
      `its install script first: \`npm install-scripts approve memmap\`, or "allowScripts": { "memmap": true } in package.json).`,
    { path: local },
  );
}

export const native: NativeBinding = load();
