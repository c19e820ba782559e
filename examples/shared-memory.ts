// Shared memory without a file: a memfd handed to a child through a stdio slot.
// Run: node --import tsx examples/shared-memory.ts
import { spawn } from "node:child_process";
import { createSharedMemory, mapFile } from "../src/index.ts";

if (process.argv[2] === "child") {
  const m = mapFile(3, { access: "write" }); // fd 3: the slot the parent filled
  const counter = m.view(Int32Array, 0, 1);
  Atomics.add(counter, 0, 41);
  m.close();
} else {
  const shm = createSharedMemory(4096);
  const m = shm.map();
  const counter = m.view(Int32Array, 0, 1);
  counter[0] = 1;
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, "child"], {
    stdio: ["inherit", "inherit", "inherit", shm.fd],
  });
  await new Promise((resolve) => child.on("exit", resolve));
  console.log(`the child added 41: counter = ${Atomics.load(counter, 0)}`); // 42
  m.close();
  shm.close();
}
