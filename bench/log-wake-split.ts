/**
 * Where a sleeping `waitNext()` reader's latency goes (a diagnostic for
 * bench:log's end-to-end rows). The producer appends a 64 B record every
 * 200 µs, sleeping in between; the reader, in another process, waits with
 * `strategy: "futex", spin: 0` and notes when its futex wait returned (the
 * addon's futexWait, wrapped) and when the record was in its hands. Per
 * record: the producer's append (with the wake-up system call), the kernel's
 * part (stamp → the reader's futex wait returns), and the reader's own part.
 * Then the same split of C's futex wake (bench/c/futex-wake.c) in the same
 * placement: the whole, and when the waker's FUTEX_WAKE returned.
 *
 * Run: node --import tsx bench/log-wake-split.ts pinned|one-cpu|unpinned
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { native } from "../src/core/native.ts";
import { openLog } from "../src/index.ts";
import { buildC, fmtNs } from "./common.ts";

const [role, arg] = process.argv.slice(2);
const COUNT = 5000;
const CPUS: Record<string, [string, string]> = { pinned: ["0", "1"], "one-cpu": ["0", "0"], unpinned: ["0-" + (os.cpus().length - 1), ""] };

if (role === "--reader") {
  let woke = 0n;
  const futexWait = native.futexWait.bind(native);
  native.futexWait = (buffer, offset, expected, timeoutMs) => {
    const result = futexWait(buffer, offset, expected, timeoutMs);
    woke = process.hrtime.bigint();
    return result;
  };
  const log = openLog(arg!);
  const reader = log.reader({ from: "end", strategy: "futex", spin: 0 });
  const rows: [seq: number, woke: number, inHand: number][] = [];
  process.stdout.write("ready\n");
  for (;;) {
    woke = 0n;
    const rec = reader.waitNext()!;
    const now = process.hrtime.bigint();
    if (new DataView(rec.data.buffer, rec.data.byteOffset, 8).getBigUint64(0, true) === 0n) break;
    if (woke > 0n) rows.push([rec.seq, Number(woke % 10n ** 12n), Number(now % 10n ** 12n)]); // only records it slept for
  }
  process.stdout.write(JSON.stringify(rows) + "\n");
  process.exit(0);
}

const placement = role ?? "pinned";
const [self, child] = CPUS[placement] ?? CPUS.pinned!;
spawnSync("taskset", ["-a", "-pc", self, String(process.pid)], { stdio: "ignore" });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-wake-split-"));
const log = openLog(dir, { create: true });
const node = [process.execPath, "--import", "tsx", fileURLToPath(import.meta.url), "--reader", dir];
const proc = spawn(child ? "taskset" : node[0]!, child ? ["-c", child, ...node] : node.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
let out = "";
proc.stdout.setEncoding("utf8");
await new Promise<void>((resolve) => proc.stdout.on("data", (d: string) => (out += d).startsWith("ready\n") && resolve()));
await new Promise((r) => setTimeout(r, 50));
const record = new Uint8Array(64);
const dv = new DataView(record.buffer);
const pause = new Int32Array(new SharedArrayBuffer(4));
const sent: number[] = [];
const appended: number[] = [];
for (let i = 0; i < COUNT; i++) {
  Atomics.wait(pause, 0, 0, 0.2);
  const t = process.hrtime.bigint();
  dv.setBigUint64(0, t, true);
  log.append(record);
  appended.push(Number(process.hrtime.bigint() % 10n ** 12n));
  sent.push(Number(t % 10n ** 12n));
  if (i % 500 === 499) await new Promise((r) => setImmediate(r)); // let stdout drain
}
dv.setBigUint64(0, 0n, true);
log.append(record);
await new Promise((r) => proc.once("exit", r));
log.close();
fs.rmSync(dir, { recursive: true, force: true });

const rows = (JSON.parse(out.slice("ready\n".length)) as [number, number, number][]).filter(([seq]) => seq >= 100);
/** "p50 (p99 …)" of `values`. */
const p50 = (values: number[]): string => {
  values.sort((a, b) => a - b);
  return `${fmtNs(values[values.length >> 1]!)} (p99 ${fmtNs(values[Math.floor(values.length * 0.99)]!)})`;
};
const beforeReturn = rows.filter(([seq, woke]) => woke < appended[seq]!).length;
console.log(`${placement} (load average ${os.loadavg()[0]!.toFixed(2)}), ${rows.length} records the reader slept for; p50s (p99s):`);
console.log(`  append() in the producer, with the wake-up system call: ${p50(rows.map(([seq]) => appended[seq]! - sent[seq]!))}`);
console.log(`  stamp → the reader's futex wait returns (the kernel's part): ${p50(rows.map(([seq, woke]) => woke - sent[seq]!))}`);
console.log(`  futex wait returns → the record in the reader's hands (memmap's reader): ${p50(rows.map(([, woke, inHand]) => inHand - woke))}`);
console.log(`  the whole: ${p50(rows.map(([seq, , inHand]) => inHand - sent[seq]!))}; the reader ran before the producer's append() returned in ${Math.round((beforeReturn / rows.length) * 100)}% of records`);

const bin = buildC("futex-wake");
if (bin !== undefined) {
  const args = ["idle", String(COUNT), ...(placement === "pinned" ? [] : ["unpinned"])];
  const [cmd, ...rest] = placement === "one-cpu" ? ["taskset", "-c", "0", bin, ...args] : [bin, ...args];
  const lines = execFileSync(cmd!, rest, { encoding: "utf8", env: { ...process.env, FUTEX_WAKE_SPLIT: "1" }, maxBuffer: 64 << 20 })
    .trim().split("\n").slice(100).map((l) => l.split(" ").map(Number) as [number, number]);
  console.log(`  C: the whole ${p50(lines.map(([total]) => total))}; its FUTEX_WAKE returned after ${p50(lines.map(([, wake]) => wake))}; the sleeper ran before it returned in ${Math.round((lines.filter(([total, wake]) => total < wake).length / lines.length) * 100)}% of events`);
}
