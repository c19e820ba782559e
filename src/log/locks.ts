/**
 * File locks (flock) the log uses to learn who is alive without PIDs or
 * timeouts: the kernel drops a process's locks when it dies, however it dies.
 *
 * - `locks/open.lock`: shared by every process that has the log open;
 *   exclusive while one process repairs the log on open (only possible when
 *   nobody else has it open, i.e. every writer that could be mid-append is dead).
 * - `locks/writer-NN.lock`: held by the live process that uses writer slot NN.
 * - `locks/meta.lock`: a short mutex around changes to the cursor table.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MmapError, sys } from "../core/errors.ts";
import { openInLog, openOrCreateInLog } from "./dir.ts";
import { native, LockOp } from "../core/native.ts";
import { LOCK_DIR, WRITER_SLOT_COUNT, writerLockFileName } from "./layout.ts";


const sleepWord = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the thread for `ms` milliseconds (used only between lock attempts). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleepWord, 0, 0, ms);
}

/** An open lock file; flock operations never block. */
export class FileLock {
  readonly path: string;
  #fd: number;

  private constructor(file: string, fd: number) {
    this.path = file;
    this.#fd = fd;
  }

  /**
   * Opens (creating it if needed, with the log's file mode) a lock file, or
   * returns undefined if `create` is false and it is missing. `readOnly`
   * opens it for reading (flock needs no more) and never creates it. Reached
   * through the log directory's descriptor; a symbolic link is refused
   * (ERR_INSECURE), so the lock taken is always the log's own file.
   */
  static open(file: string, create = true, readOnly = false): FileLock | undefined {
    let fd: number;
    try {
      fd = readOnly ? openInLog(file, fs.constants.O_RDONLY) : create ? openOrCreateInLog(file) : openInLog(file, fs.constants.O_RDWR);
    } catch (error) {
      if ((!create || readOnly) && (error as MmapError).code === "ENOENT") return undefined;
      throw error;
    }
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd);
      throw new MmapError("ERR_INSECURE", `the lock file '${file}' is not a regular file (someone replaced it)`, { path: file });
    }
    return new FileLock(file, fd);
  }

  tryShared(): boolean {
    return sys(this.path, () => native.flock(this.#fd, LockOp.shared));
  }

  tryExclusive(): boolean {
    return sys(this.path, () => native.flock(this.#fd, LockOp.exclusive));
  }

  unlock(): void {
    if (this.#fd >= 0) native.flock(this.#fd, LockOp.unlock);
  }

  close(): void {
    if (this.#fd < 0) return;
    fs.closeSync(this.#fd); // also drops the lock
    this.#fd = -1;
  }
}

export function lockDir(dir: string): string {
  return path.join(dir, LOCK_DIR);
}

/**
 * Takes the open lock: exclusive if nobody else has the log open (the caller
 * may then repair), else shared. Waits (bounded) while another process holds
 * it exclusively for its own repair.
 */
export function acquireOpenLock(file: string, timeoutMs: number): { lock: FileLock; exclusive: boolean } {
  const lock = FileLock.open(file)!;
  try {
    if (lock.tryExclusive()) return { lock, exclusive: true };
    waitFor(() => lock.tryShared(), timeoutMs, file, "another process is repairing the log");
    return { lock, exclusive: false };
  } catch (error) {
    lock.close();
    throw error;
  }
}

/**
 * Takes the open lock shared, for a read-only open (which never repairs, so
 * never needs it exclusively), waiting (bounded) while another process
 * repairs. Undefined if the lock file is missing (a read-only open creates
 * nothing) or this user may not open it.
 */
export function acquireSharedOpenLock(file: string, timeoutMs: number): FileLock | undefined {
  let lock: FileLock | undefined;
  try {
    lock = FileLock.open(file, false, true);
  } catch (error) {
    // Another user's log whose lock files this user may not read: a reader goes on without the lock.
    if ((error as MmapError).code === "EACCES") return undefined;
    throw error;
  }
  if (lock === undefined) return undefined;
  try {
    waitFor(() => lock.tryShared(), timeoutMs, file, "another process is repairing the log");
    return lock;
  } catch (error) {
    lock.close();
    throw error;
  }
}

/** Turns the exclusive open lock into a shared one (not atomic in flock: retried while another opener repairs). */
export function downgradeOpenLock(lock: FileLock, timeoutMs: number): void {
  waitFor(() => lock.tryShared(), timeoutMs, lock.path, "another process is repairing the log");
}

function waitFor(attempt: () => boolean, timeoutMs: number, file: string, why: string): void {
  const deadline = performance.now() + timeoutMs;
  for (let delay = 1; !attempt(); delay = Math.min(delay * 2, 20)) {
    if (performance.now() >= deadline)
      throw new MmapError("ERR_BUSY", `timed out after ${timeoutMs} ms: ${why}`, { path: file });
    sleepSync(delay);
  }
}

/** Runs `fn` holding the exclusive lock on `file` (waiting for it, bounded). */
export function withLock<T>(file: string, timeoutMs: number, fn: () => T): T {
  const lock = FileLock.open(file)!;
  try {
    waitFor(() => lock.tryExclusive(), timeoutMs, file, "another process holds the log's meta lock");
    return fn();
  } finally {
    lock.close();
  }
}

/** Takes the first free writer slot; its lock is held until `close()`. */
export function acquireWriterSlot(dir: string): { slot: number; lock: FileLock } {
  const locks = lockDir(dir);
  for (let slot = 0; slot < WRITER_SLOT_COUNT; slot++) {
    const lock = FileLock.open(path.join(locks, writerLockFileName(slot)))!;
    if (lock.tryExclusive()) return { slot, lock };
    lock.close();
  }
  throw new MmapError("ERR_BUSY", `all ${WRITER_SLOT_COUNT} writer slots of the log are in use by live processes`, { path: dir });
}

/**
 * True while the process that holds writer slot `slot` is alive. Proof of
 * death is the kernel having released its lock; a missing lock file means no
 * process ever held the slot. Opened for reading only (flock needs no more),
 * so inspecting a log needs no write permission.
 */
export function isWriterSlotAlive(dir: string, slot: number): boolean {
  const lock = FileLock.open(path.join(lockDir(dir), writerLockFileName(slot)), false, true);
  if (lock === undefined) return false;
  try {
    return !lock.tryExclusive();
  } finally {
    lock.close();
  }
}
