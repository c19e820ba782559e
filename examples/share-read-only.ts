// One copy shared by many processes: four processes map the same file
// read-only, touch every page, and report how much of it is really theirs.
// Run: node --import tsx examples/share-read-only.ts
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { mapFile } from "../src/index.ts";

const PROCESSES = 4;
const [file, barrierFile] = process.argv.slice(2);

/** Waits until every process has reached the same step (a counter in a shared mapping). */
async function barrier(counter: Int32Array, index: number): Promise<void> {
  Atomics.add(counter, index, 1);
  while (Atomics.load(counter, index) < PROCESSES) await sleep(5);
}

if (file && barrierFile) {
  const shared = mapFile(barrierFile, { access: "write" });
  const counter = shared.view(Int32Array);
  const m = mapFile(file);
  let sum = 0;
  for (let i = 0; i < m.byteLength; i += 4096) sum += m.bytes[i]!; // touch every page
  await barrier(counter, 0); // everyone has the file mapped
  const smaps = fs.readFileSync("/proc/self/smaps", "utf8").split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const entry = smaps.find((s) => s.includes(file)) ?? "";
  const mib = (field: string) => Number(entry.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0) / 1024;
  console.log(`pid ${process.pid}: Rss ${mib("Rss").toFixed(0)} MiB, Pss ${mib("Pss").toFixed(0)} MiB (checksum ${sum})`);
  await barrier(counter, 1); // everyone has measured
  m.close();
  shared.close();
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-example-"));
  const data = path.join(dir, "data.bin");
  const sync = path.join(dir, "barrier.bin");
  fs.writeFileSync(data, Buffer.alloc(64 << 20, 7)); // 64 MiB
  fs.writeFileSync(sync, Buffer.alloc(8));
  const children = Array.from({ length: PROCESSES }, () =>
    spawn(process.execPath, [...process.execArgv, process.argv[1]!, data, sync], { stdio: "inherit" }),
  );
  await Promise.all(children.map((c) => new Promise((r) => c.on("exit", r))));
  console.log(`Pss ≈ Rss / ${PROCESSES}: the processes share one physical copy of the file.`);
  fs.rmSync(dir, { recursive: true });
}
