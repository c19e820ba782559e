/**
 * channel.messages({ timeout }): a `for await` consumer whose producer dies
 * ends with ERR_PEER_GONE instead of waiting forever (issue 11 item 10).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { makeTmpDir, removeTmpDir } from "./helpers/tmp.ts";
import { createChannel, MmapError } from "../src/index.ts";

let dir: string;
before(() => (dir = makeTmpDir("memmap-chmsg-")));
after(() => removeTmpDir(dir));

/** A producer process that sends `n` messages, says so, and then hangs until killed. */
function producer(file: string, n: number) {
  const script = `
    import { openChannel } from ${JSON.stringify(path.resolve("src/index.ts"))};
    const ch = openChannel(${JSON.stringify(file)});
    for (let i = 0; i < ${n}; i++) ch.send("job " + i);
    process.stdout.write("sent\\n");
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const sent = new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => d.toString().includes("sent") && resolve());
    child.on("exit", () => reject(new Error("the producer exited early")));
  });
  return { child, exited, sent };
}

test("for await over channel.messages({ timeout }) ends with ERR_PEER_GONE when the producer is SIGKILLed", { timeout: 60_000 }, async () => {
  const file = path.join(dir, "jobs");
  // As in the README (there with the new names overwrite and timeoutMs; replace and timeout are their deprecated aliases): running it twice works.
  createChannel(file, { capacity: 1 << 16, replace: true }).close();
  const channel = createChannel(file, { capacity: 1 << 16, replace: true });
  const p = producer(file, 3);
  await p.sent;
  const received: string[] = [];
  let failure: unknown;
  try {
    for await (const message of channel.messages({ timeout: 500 })) {
      received.push(new TextDecoder().decode(message));
      if (received.length === 3) p.child.kill("SIGKILL");
    }
  } catch (error) {
    failure = error;
  } finally {
    p.child.kill("SIGKILL"); // (already dead when the loop got its three messages)
  }
  await p.exited;
  assert.deepEqual(received, ["job 0", "job 1", "job 2"]);
  assert.ok(failure instanceof MmapError, `the loop ended with ${String(failure)}`);
  assert.equal(failure.code, "ERR_PEER_GONE");
  channel.close();
});

test("messages(): a live but quiet producer gives ERR_TIMEOUT; end() ends the loop; options are checked", async () => {
  const file = path.join(dir, "quiet");
  const channel = createChannel(file, { capacity: 4096, replace: true });
  const p = producer(file, 1);
  await p.sent;
  const got: number[] = [];
  after(() => p.child.kill("SIGKILL"));
  await assert.rejects(
    (async () => {
      for await (const m of channel.messages({ timeout: 200, copy: true })) got.push(m.length);
    })(),
    { code: "ERR_TIMEOUT" },
  );
  assert.deepEqual(got, [5]);
  p.child.kill("SIGKILL");
  await p.exited;
  channel.send("last");
  channel.end();
  const rest: string[] = [];
  for await (const m of channel.messages({ timeout: 1000 })) rest.push(new TextDecoder().decode(m));
  assert.deepEqual(rest, ["last"]);
  assert.throws(() => channel.messages({ timeout: -5 }), { code: "ERR_INVALID_ARG" });
  assert.throws(() => channel.messages({ wait: 1 } as never), { code: "ERR_INVALID_ARG" });
  channel.close();
});
