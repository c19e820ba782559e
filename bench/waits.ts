/**
 * What parked async waits cost: N Doorbell.waitUntilAsync() calls parked
 * with no timeout, then woken by one ring. Reports the process's threads and
 * VmRSS (/proc/self/status) before and while parked, the CPU the parked waits
 * use while idle, and how long parking and the wake took.
 *
 *   node --import tsx bench/waits.ts [count=10000]
 *   MEMMAP_NO_FUTEX_WAITV=1 node --import tsx bench/waits.ts   # the fallback: a thread per wait
 */
import * as fs from "node:fs";
import { Doorbell, createSharedMemory, pageSize } from "../src/index.ts";

function status(): { threads: number; rssMiB: number } {
  const text = fs.readFileSync("/proc/self/status", "utf8");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)![1]);
  return { threads: field("Threads"), rssMiB: Math.round(field("VmRSS") / 102.4) / 10 };
}

const count = Number(process.argv[2] ?? 10_000);
const shm = createSharedMemory(pageSize);
const m = shm.map();
const bell = new Doorbell(m.buffer, 0, 4);
let ready = false;

// One wait first, so the baseline includes the addon's first waiter thread.
const first = bell.waitUntilAsync(() => ready, { spin: 0 });
await new Promise((r) => setTimeout(r, 200));
const before = status();
let start = performance.now();
const waits = Array.from({ length: count - 1 }, () => bell.waitUntilAsync(() => ready, { spin: 0 }));
const parkMs = performance.now() - start;
await new Promise((r) => setTimeout(r, 500));
const parked = status();
const cpu0 = process.cpuUsage();
const idleMs = 2000;
await new Promise((r) => setTimeout(r, idleMs));
const cpu = process.cpuUsage(cpu0);
start = performance.now();
ready = true;
bell.ring();
await Promise.all([first, ...waits]);
const wakeMs = performance.now() - start;

console.log(
  JSON.stringify({
    count,
    futexWaitv: !process.env.MEMMAP_NO_FUTEX_WAITV,
    before,
    parked,
    addedThreads: parked.threads - before.threads,
    addedRssMiB: Math.round((parked.rssMiB - before.rssMiB) * 10) / 10,
    idleCpuPercent: Math.round(((cpu.user + cpu.system) / 1000 / idleMs) * 1000) / 10,
    parkMs: Math.round(parkMs),
    wakeAllMs: Math.round(wakeMs),
  }),
);
m.close();
shm.close();
