/**
 * close() while Node's own asynchronous work still holds a mapped buffer:
 * crypto.randomFill and zlib on the thread pool, fs.read, a socket write to a
 * slow reader, and ArrayBuffer.prototype.transfer(). None of it may crash the
 * process, write into another file that reuses the address, or send another
 * file's bytes. Each case runs in a child process: a crash is the child's
 * signal exit.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { makeTmpDir, removeTmpDir, runChild } from "./fixtures/core-helpers.ts";

let dir: string;
before(() => (dir = makeTmpDir()));
after(() => removeTmpDir(dir));

const SIZE = 16 * 2 ** 20;
const SECRET = 0x5e;

function file(name: string, fill: number, size = SIZE): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.alloc(size, fill));
  return p;
}

function fifo(name: string): string {
  const p = path.join(dir, name);
  execFileSync("mkfifo", [p]);
  return p;
}

function untouched(p: string, fill: number): boolean {
  return fs.readFileSync(p).every((b) => b === fill);
}

const onePoolThread = { ...process.env, UV_THREADPOOL_SIZE: "1" };

async function run(args: string[], nodeArgs: string[] = []): Promise<Record<string, unknown>> {
  const { code, signal, messages, stderr } = await runChild("core-inflight-child.ts", args, { nodeArgs, env: onePoolThread });
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, `the child crashed:\n${stderr}`);
  assert.equal(messages.length, 1, stderr);
  return messages[0]!;
}

describe("close() while the thread pool still uses the memory", () => {
  test("crypto.randomFill(m.bytes) then close(): the fill lands in memory that reaches no file; no crash", async () => {
    const a = file("rf-a.bin", 0);
    assert.deepEqual(await run(["randomfill", fifo("rf.fifo"), a]), { filled: true });
    assert.ok(untouched(a, 0));
  });

  test("randomFill then close() and map another file: the other file is unchanged", async () => {
    const a = file("rfr-a.bin", 0);
    const b = file("rfr-b.bin", 0);
    assert.deepEqual(await run(["randomfill-reuse", fifo("rfr.fifo"), a, b]), { filled: true });
    assert.ok(untouched(b, 0), "randomFill wrote into a file the program never wrote");
  });

  for (const [how, newLength] of [["grows (and moves)", 4 * SIZE], ["shrinks", SIZE / 4]] as const) {
    test(`randomFill then a resize() that ${how}, and map another file: no crash, the other file is unchanged`, async () => {
      const a = file(`rz-${newLength}-a.bin`, 0);
      const b = file(`rz-${newLength}-b.bin`, 0);
      const r = await run(["randomfill-resize", fifo(`rz-${newLength}.fifo`), a, b, String(newLength)]);
      assert.deepEqual(r, { filled: true, detached: true });
      assert.ok(untouched(b, 0), "randomFill wrote into a file the program never wrote");
    });
  }

  test("fs.read into m.bytes then close() and map another file: the other file is unchanged", async () => {
    const src = file("fr-src.bin", 0xa5);
    const a = file("fr-a.bin", 0);
    const b = file("fr-b.bin", 0);
    const r = await run(["fsread-reuse", fifo("fr.fifo"), src, a, b]);
    assert.equal(r.read, SIZE, "the read completes into the released memory");
    assert.ok(untouched(b, 0), "fs.read wrote into a file the program never wrote");
  });

  test("zlib.deflate(m.bytes) then close() and map a secret: the output holds none of the secret", async () => {
    const a = file("z-a.bin", 0x11);
    const secret = file("z-secret.bin", SECRET);
    const r = await run(["zlib-secret", fifo("z.fifo"), a, secret]);
    assert.equal(r.length, SIZE);
    assert.equal(r.secretBytes, 0, "zlib compressed another file's bytes");
  });
});

describe("close() while a socket still sends the memory", () => {
  test("socket.end(m.bytes) to a slow reader, close(), map a secret: the peer receives none of the secret", async () => {
    const a = file("s-a.bin", 0x11);
    const secret = file("s-secret.bin", SECRET);
    const r = await run(["socket-secret", a, secret]);
    assert.equal(r.received, SIZE);
    assert.equal(r.secretBytes, 0, "the peer received another file's bytes");
  });
});

describe("ArrayBuffer.prototype.transfer()", () => {
  const flag = process.versions.node.startsWith("20.") ? ["--harmony-rab-gsab-transfer"] : [];

  test("a buffer moved out with transfer() before close() reads zeros, and writes through it reach no file", async () => {
    const a = file("t-a.bin", 0x11);
    const b = file("t-b.bin", 0);
    const r = await run(["transfer", a, b], flag);
    assert.deepEqual(r, { length: SIZE, before: 0, after: 0xff });
    assert.ok(untouched(b, 0), "writes through the moved buffer reached another file");
    assert.ok(untouched(a, 0x11));
  });
});
