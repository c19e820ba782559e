/**
 * Is the process that registered in a channel slot still running?
 *
 * A slot stores the process id, its PID namespace and its start time (clock
 * ticks since boot, field 22 of /proc/<pid>/stat). A pid alone can be reused
 * by an unrelated process; pid + start time cannot. A process in another PID
 * namespace (another container sharing /dev/shm) cannot be judged from here:
 * it counts as alive, so its claims are never taken from it.
 */
import * as fs from "node:fs";

const MAX_PID = 4_194_304; // the kernel's PID_MAX_LIMIT on 64-bit

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

const haveProc = fs.existsSync("/proc/self/stat");

export const ownPid: number = process.pid;
export const ownPidNamespace: number = pidNamespace();
export const ownStartTime: number = processStartTime(process.pid) ?? 0;

/**
 * False only when the process is provably gone: no such pid, or the pid now
 * belongs to a process that started at another time. Values read from a
 * shared file are untrusted: a pid outside the kernel's range is "gone".
 */
export function isProcessAlive(pid: number, namespace: number, startTime: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid > MAX_PID) return false;
  if (pid === ownPid && (namespace === 0 || namespace === ownPidNamespace)) return true;
  if (namespace !== 0 && ownPidNamespace !== 0 && namespace !== ownPidNamespace) return true;
  if (!haveProc) return signalZero(pid);
  const start = processStartTime(pid);
  if (start === undefined) return false;
  return startTime === 0 || start === 0 || start === startTime;
}

function signalZero(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
