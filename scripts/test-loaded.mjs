// `npm run test:loaded [-- runs]`: runs `npm test` (3 times by default, stopping
// at the first failure) while two busy-loop processes compete for the CPUs, as
// on a loaded CI machine. The busy loops are killed however this ends.
import { spawn, spawnSync } from "node:child_process";

const runs = Number(process.argv[2] ?? 3);
const hogs = [0, 1].map(() => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
const stop = () => {
  for (const hog of hogs) hog.kill("SIGKILL");
};
process.on("exit", stop);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(130));

let status = 0;
for (let run = 1; run <= runs && status === 0; run++) {
  console.error(`\ntest:loaded: npm test, run ${run} of ${runs}, beside 2 busy loops (pids ${hogs.map((h) => h.pid).join(", ")})`);
  const started = performance.now();
  const r = spawnSync(process.env.npm_execpath ? process.execPath : "npm", process.env.npm_execpath ? [process.env.npm_execpath, "test"] : ["test"], { stdio: "inherit" });
  status = r.status ?? 1;
  console.error(`test:loaded: run ${run} ${status === 0 ? "passed" : `failed (exit ${status})`} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
stop(); // the busy loops' handles would keep this process alive
process.exitCode = status;
