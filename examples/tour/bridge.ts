/**
 * Tour part 5: the log of part 4 into NATS JetStream and back, when
 * nats-server is installed (a private server on a free port, in the tour's
 * temporary directory, stopped at the end); otherwise it says how to get it.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { bridgeFromJetStream, bridgeToJetStream, decodeBridgedRecord, openLog, type Log, type MmapError, type PushBridge } from "../../src/index.ts";

/** What part 5 needs from the tour's main module. */
export interface TourOutput {
  say(text?: string): void;
  heading(n: number, title: string): void;
  dim(text: string): string;
  /** Makes a child process part of the tour's cleanup (killed if the tour fails). */
  track(child: ChildProcess): void;
}

/** Records pushed: the newest of the orders log. */
const PUSHED = 1000;
/** Any wait longer than this means something is broken: fail rather than hang. */
const TIMEOUT_MS = 20_000;

/**
 * nats-server on PATH, or where Debian installs it (/usr/sbin is not on
 * every user's PATH), or the one MEMMAP_NATS_SERVER names (as in the
 * bridge tests); undefined if none runs.
 */
export function findNatsServer(): string | undefined {
  const candidates = process.env.MEMMAP_NATS_SERVER ? [process.env.MEMMAP_NATS_SERVER] : ["nats-server", "/usr/sbin/nats-server"];
  for (const bin of candidates) {
    const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
    if (r.status === 0) return bin;
  }
  return undefined;
}

/** Starts `nats-server -js` on a port it picks (-p -1) and resolves with that port once it says it is ready. */
async function startServer(bin: string, storeDir: string, out: TourOutput): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(bin, ["-js", "-sd", storeDir, "-a", "127.0.0.1", "-p", "-1"], { stdio: ["ignore", "pipe", "pipe"] });
  out.track(proc);
  let text = "";
  const port = await new Promise<number>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`nats-server did not start within ${TIMEOUT_MS / 1000} s:\n${text}`)), TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      text = (text + chunk.toString()).slice(-20_000);
      const listening = /Listening for client connections on [\d.]+:(\d+)/.exec(text);
      if (listening !== null && text.includes("Server is ready")) {
        clearTimeout(guard);
        resolve(Number(listening[1]));
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData); // keeps reading after start-up, so the server never blocks on a full pipe
    proc.once("exit", (code) => {
      clearTimeout(guard);
      reject(new Error(`nats-server exited (${String(code)}):\n${text}`));
    });
  });
  return { proc, port };
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`the bridge did not finish in ${TIMEOUT_MS / 1000} s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export async function partBridge(dir: string, logDir: string, out: TourOutput): Promise<void> {
  const { say, dim } = out;
  out.heading(5, "Scale-out: the log into NATS JetStream and back");
  const bin = findNatsServer();
  if (bin === undefined) {
    say(`     This part needs nats-server (the NATS JetStream server), which is not on PATH. Install it with`);
    say(`     \`apt-get install -y nats-server\` (Debian, Ubuntu) or take a binary from`);
    say(`     https://github.com/nats-io/nats-server/releases, then run the tour again.`);
    say(dim(`     (docs/scale-out.md: mirroring a log to other machines, exactly once.)`));
    return;
  }
  const storeDir = path.join(dir, "nats");
  const { proc: server, port } = await startServer(bin, storeDir, out);
  const servers = `nats://127.0.0.1:${port}`;
  const quiet = (): void => {};
  using log = openLog(logDir);
  using mirror = openLog(path.join(dir, "mirror.log"), { create: true, segmentSize: 1024 * 1024 });
  try {
    say(`     A private nats-server with JetStream runs on 127.0.0.1:${port}. A push bridge publishes the`);
    say(`     newest ${PUSHED.toLocaleString("en-US")} orders of part 4's log to the stream ORDERS; a pull bridge copies the stream into`);
    say(`     a second log, as another machine would.`);
    // The push bridge reads the log with its own durable cursor, "jetstream": start it near the end.
    const from = Math.max(log.firstSeq, log.nextSeq - PUSHED);
    const cursor = log.reader({ name: "jetstream" });
    cursor.seek(from);
    cursor.commit();
    cursor.close();
    const count = log.nextSeq - from;

    let t = performance.now();
    let push: PushBridge;
    try {
      push = await bridgeToJetStream(log, { servers, stream: "ORDERS", subject: "orders.tour", onEvent: quiet });
    } catch (error) {
      if ((error as MmapError).code !== "ERR_MISSING_DEPENDENCY") throw error;
      say(`     ${(error as Error).message}.`); // the NATS client is an optional dependency of memmap
      return;
    }
    await until("push", () => push.stats().acknowledged === count);
    await push.close();
    const pushMs = performance.now() - t;
    say(`     Pushed ${count.toLocaleString("en-US")} records (seq ${from.toLocaleString("en-US")} to ${(log.nextSeq - 1).toLocaleString("en-US")}) in ${pushMs.toFixed(0)} ms, each acknowledged by JetStream`);
    say(`     before the cursor moved; each message carries Nats-Msg-Id ${push.logId.slice(0, 8)}…:<seq>.`);

    t = performance.now();
    const pull = await bridgeFromJetStream({ servers, stream: "ORDERS", consumer: "tour", onEvent: quiet }, mirror);
    await until("pull", () => pull.stats().appended === count);
    await pull.close();
    checkMirror(log, mirror, from, count);
    say(`     The pull bridge appended the ${count.toLocaleString("en-US")} messages to the mirror log in ${(performance.now() - t).toFixed(0)} ms, each stored with its`);
    say(`     stream sequence and acked only once on disk; every one matches the original.`);

    // Move the cursor back, as if the bridge had died between JetStream's acks and its commit.
    const rewind = log.reader({ name: "jetstream" });
    rewind.commit(log.nextSeq - 100);
    rewind.close();
    const again = await bridgeToJetStream(log, { servers, stream: "ORDERS", subject: "orders.tour", onEvent: quiet });
    await again.close();
    say(`     Restarted with its cursor 100 records back (a crash between the acks and the commit), the push`);
    say(`     bridge found those records in the stream and published ${again.stats().published}: nothing is sent twice.`);
    say(dim(`     (\`memmap bridge push|pull\` runs the same bridges from the command line; see docs/scale-out.md.)`));
  } finally {
    const gone = new Promise((resolve) => (server.exitCode !== null ? resolve(null) : server.once("exit", resolve)));
    server.kill("SIGTERM");
    await gone;
  }
}

/** The mirror holds records from..from+count-1 of `log`, in order, byte for byte. */
function checkMirror(log: Log, mirror: Log, from: number, count: number): void {
  using original = log.reader({ from });
  using copy = mirror.reader({ from: "start" });
  for (let i = 0; i < count; i++) {
    const a = original.next();
    const b = copy.next();
    if (a === null || b === null || !Buffer.from(decodeBridgedRecord(b.data).payload).equals(a.data))
      throw new Error(`the mirror log differs from the original at record ${i}`);
  }
  if (copy.next() !== null) throw new Error("the mirror log holds more records than were pushed");
}
