// Persistent IPC: a producer process appends to a log and is killed with
// SIGKILL; a consumer process with a durable cursor is killed too, and a new
// consumer resumes where the last one committed.
// Run: node --import tsx examples/log-resume.ts
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { openLog } from "../src/index.ts";

const [role, dir] = process.argv.slice(2);

if (role === "producer") {
  const log = openLog(dir!, { create: true });
  for (let n = 0; ; n++) {
    log.append(`event ${n}`);
    if (n % 100 === 0) await sleep(1); // about 100 records per millisecond, until killed
  }
} else if (role === "consumer") {
  const log = openLog(dir!, { create: true });
  const reader = log.reader({ name: "indexer" }); // durable: resumes at its last commit()
  let expected = reader.position;
  console.log(`consumer ${process.pid} starts at seq ${expected}`);
  for await (const { seq, data } of reader) {
    const text = new TextDecoder().decode(data); // a view into the file: decode before the next record
    if (seq !== expected++ || text !== `event ${seq}`) throw new Error(`record ${seq} holds "${text}"`);
    reader.commit(); // after processing each record: at-least-once, never a gap
    if (seq % 200 === 0) await sleep(1); // a consumer slower than its producer
  }
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memmap-example-log-"));
  openLog(dir, { create: true }).close();
  const self = (r: string): ChildProcess =>
    spawn(process.execPath, [...process.execArgv, process.argv[1]!, r, dir], { stdio: ["ignore", "inherit", "inherit"] });
  const log = openLog(dir);
  const cursor = (): number => log.reader({ name: "indexer" }).position; // a durable cursor's committed position
  const until = async (done: () => boolean): Promise<void> => {
    for (let i = 0; i < 3000 && !done(); i++) await sleep(5);
  };
  const producer = self("producer");
  let consumer = self("consumer");
  await until(() => log.nextSeq > 20_000 && cursor() > 1000); // both are at work
  producer.kill("SIGKILL");
  consumer.kill("SIGKILL");
  await Promise.all([producer, consumer].map((c) => new Promise((resolve) => c.on("exit", resolve))));
  const committed = cursor();
  console.log(`both killed; the log holds ${log.nextSeq} records, the consumer had committed up to ${committed}`);
  consumer = self("consumer"); // prints where it resumes, then catches up with the log
  await until(() => cursor() >= log.nextSeq);
  consumer.kill("SIGKILL");
  await new Promise((resolve) => consumer.on("exit", resolve));
  console.log(`resumed at seq ${committed}; no record lost: the new consumer checked every record up to ${cursor()} of ${log.nextSeq}`);
  log.close();
  fs.rmSync(dir, { recursive: true });
}
