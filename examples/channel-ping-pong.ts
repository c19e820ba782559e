// Fast IPC: two channels in shared memory between a parent and a child
// process, a ping-pong of 16-byte messages, timed.
// Run: node --import tsx examples/channel-ping-pong.ts
import { spawn } from "node:child_process";
import { createChannel, createSharedMemory, openChannel } from "../src/index.ts";

const ROUNDS = 20_000;

if (process.argv[2] === "child") {
  const ping = openChannel(3); // the parent's memfds arrive as fds 3 and 4
  const pong = openChannel(4);
  for (let i = 0; i < ROUNDS; i++) {
    const msg = ping.receive({ timeoutMs: 10_000 }); // blocks this (dedicated) process until a message arrives
    if (!msg) throw new Error("the parent went quiet");
    pong.send(msg); // echo it back
  }
  ping.close();
  pong.close();
} else {
  const pingMem = createSharedMemory(4096);
  const pongMem = createSharedMemory(4096);
  const ping = createChannel(pingMem, { capacity: 1 << 16 });
  const pong = createChannel(pongMem, { capacity: 1 << 16 });
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, "child"], {
    stdio: ["inherit", "inherit", "inherit", pingMem.fd, pongMem.fd],
  });
  const message = new Uint8Array(16);
  const start = process.hrtime.bigint();
  for (let i = 0; i < ROUNDS; i++) {
    new DataView(message.buffer).setUint32(0, i, true);
    ping.send(message);
    const back = pong.receive({ timeoutMs: 10_000 });
    if (!back || new DataView(back.buffer, back.byteOffset).getUint32(0, true) !== i) throw new Error("lost a message");
  }
  const ns = Number(process.hrtime.bigint() - start) / ROUNDS;
  console.log(`${ROUNDS} round trips, ${(ns / 1000).toFixed(1)} µs per round trip (send + receive both ways)`);
  await new Promise((resolve) => child.on("exit", resolve));
  ping.close();
  pong.close();
  pingMem.close();
  pongMem.close();
}
