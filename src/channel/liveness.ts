/**
 * Who a producer slot or the consumer is, for people: the process id, its PID
 * namespace and its start time (clock ticks since boot, field 22 of
 * /proc/<pid>/stat), shown by stats() and `memmap channel stat`. Whether the
 * holder is alive is decided by locks the kernel drops when it dies (see
 * SLOT_LOCK_OFFSET in ./layout.ts), never by these numbers: a pid can be
 * reused, and one from another PID namespace means nothing here.
 */
import * as fs from "node:fs";

const statBuffer = Buffer.alloc(1024);

/** Start time of `pid` in clock ticks since boot, or undefined when no such process exists. */
export function processStartTime(pid: number): number | undefined {
  let fd: number;
  try {
    fd = fs.openSync(`/proc/${pid}/stat`, "r");
  } catch {
    return undefined;
  }
  try {
    const n = fs.readSync(fd, statBuffer, 0, statBuffer.length, 0);
    const text = statBuffer.toString("latin1", 0, n);
    // "pid (comm) state ppid …": comm may hold spaces and parentheses; fields restart after the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // A zombie (killed, not yet reaped by its parent) is gone for every purpose here.
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    const start = Number(fields[19]); // field 22 overall; field 3 is fields[0]
    return Number.isFinite(start) ? start : 0;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** This process's PID namespace inode (0 when /proc does not say). */
export function pidNamespace(): number {
  try {
    const link = fs.readlinkSync("/proc/self/ns/pid"); // "pid:[4026531836]"
    const n = Number(/\[(\d+)\]/.exec(link)?.[1]);
    return Number.isSafeInteger(n) && n <= 0xffffffff ? n : 0;
  } catch {
    return 0;
  }
}

export const ownPid: number = process.pid;
export const ownPidNamespace: number = pidNamespace();
export const ownStartTime: number = processStartTime(process.pid) ?? 0;
