/**
 * Async waits on channels never hold libuv's thread pool (4 threads by
 * default): file I/O of the same process keeps working while many channels
 * wait, and every wait still ends when its message comes.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { createChannel, openChannel, type Channel } from "../src/index.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

test("fs.promises operations complete while 8 channels have receiveAsync pending and 8 have sendAsync pending", async () => {
  const receivers: Channel[] = [];
  const senders: Channel[] = [];
  const full: Channel[] = [];
  for (let i = 0; i < 8; i++) {
    const rx = createChannel(path.join(dir, `rx-${i}`), { capacity: 4096, producers: i % 2 ? "multi" : "single" });
    receivers.push(rx);
    senders.push(openChannel(rx.path!));
    const f = createChannel(path.join(dir, `full-${i}`), { capacity: 4096 });
    f.tryReceive(); // a consumer that does not read
    full.push(f);
  }
  const fullTx = full.map((f) => openChannel(f.path!));
  for (const tx of fullTx) while (tx.trySend(new Uint8Array(1000)));

  const received = receivers.map((rx) => rx.receiveAsync({ timeout: 30_000 }));
  const sent = fullTx.map((tx) => tx.sendAsync(new Uint8Array(1000), { timeout: 30_000 }));
  await new Promise((r) => setTimeout(r, 50)); // every wait is parked by now

  const t0 = performance.now();
  const io = Array.from({ length: 32 }, async (_, i) => {
    const p = path.join(dir, `io-${i}`);
    await fs.promises.writeFile(p, `file ${i}`);
    const back = await fs.promises.readFile(p, "utf8");
    await fs.promises.stat(p);
    return back;
  });
  let timer: NodeJS.Timeout | undefined;
  const results = await Promise.race([
    Promise.all(io),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("fs.promises starved: the thread pool is occupied")), 5000);
    }),
  ]).finally(() => clearTimeout(timer));
  assert.deepEqual(results, Array.from({ length: 32 }, (_, i) => `file ${i}`));
  assert.ok(performance.now() - t0 < 5000);

  // The waits are still there, and each ends when its peer acts.
  senders.forEach((tx, i) => tx.send(`message ${i}`));
  assert.deepEqual(
    (await Promise.all(received)).map((m) => new TextDecoder().decode(m)),
    Array.from({ length: 8 }, (_, i) => `message ${i}`),
  );
  for (const f of full) f.drain(() => {});
  await Promise.all(sent);
  for (const c of [...receivers, ...senders, ...full, ...fullTx]) c.close();
});
