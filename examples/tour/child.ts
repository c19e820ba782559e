/**
 * The tour's child processes. `node child.ts <role> …`; each role talks to
 * the tour over the IPC channel Node sets up (process.send).
 */
import { mapFile, openChannel, openLog, pageSize } from "../../src/index.ts";
import { PRODUCER_BATCH, type PingRound } from "./protocol.ts";

type Message = Record<string, unknown>;

function send(message: Message): void {
  process.send?.(message);
}

function nextMessage(): Promise<Message> {
  return new Promise((resolve) => process.once("message", (m: Message) => resolve(m)));
}

/** Every IPC message, queued: none is lost while a channel round blocks the thread. */
const inbox: Message[] = [];
let inboxWaiter: ((m: Message) => void) | undefined;
function listen(): void {
  process.on("message", (m: Message) => {
    if (inboxWaiter) {
      const w = inboxWaiter;
      inboxWaiter = undefined;
      w(m);
    } else inbox.push(m);
  });
}
function nextQueued(): Promise<Message> {
  const m = inbox.shift();
  return m ? Promise.resolve(m) : new Promise((resolve) => (inboxWaiter = resolve));
}

/** Part 1: map the file read-only, read every page, and stay until told to go. */
async function share(file: string): Promise<void> {
  using m = mapFile(file);
  // Keep the pages in this process (mlock, where RLIMIT_MEMLOCK allows) so a busy kernel cannot reclaim them before the tour reads /proc.
  try {
    m.lock();
  } catch {
    /* not allowed: the figures still hold unless memory is short */
  }
  const bytes = m.bytes;
  let sum = 0;
  for (let i = 0; i < bytes.length; i += pageSize) sum = (sum + bytes[i]!) | 0;
  send({ ready: true, pid: process.pid, checksum: sum });
  await nextMessage(); // "done": the tour has read our /proc figures
}

/**
 * Part 3: answer pings, one round at a time as the tour asks over IPC
 * ({ round }): over two channels in shared memory (fds 4 and 5: requests in,
 * replies out) until the message "next", or over process.send until
 * { end: true }. { exit: true } ends.
 */
async function pong(): Promise<void> {
  listen();
  for (;;) {
    const m = await nextQueued();
    if (m.exit) break;
    const round = m.round as PingRound;
    if (round === "send") {
      send({ ready: true });
      for (let p = await nextQueued(); !p.end; p = await nextQueued()) send(p);
      continue;
    }
    const options = round === "default" ? {} : { strategy: round };
    const requests = openChannel(4, options);
    const replies = openChannel(5, options);
    send({ ready: true });
    for (;;) {
      const r = requests.receive();
      if (r.length === 4 && r[0] === 0x6e /* "next" */) break;
      replies.send(r);
    }
    requests.close();
    replies.close();
  }
  process.removeAllListeners("message");
}

/** Part 4: append numbered records to the log, a batch every millisecond, until killed. */
async function produce(dir: string): Promise<void> {
  const log = openLog(dir);
  let n = 0;
  for (;;) {
    for (let i = 0; i < PRODUCER_BATCH; i++) log.append(`order ${n++}`);
    send({ appended: n });
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/**
 * Part 4: read the log with a durable cursor named "billing", committing
 * every 100 records, and check each record is the next one expected.
 * Reports where it started; runs until killed, or with "drain" until the
 * end of the log.
 */
async function consume(dir: string, mode: string): Promise<void> {
  const log = openLog(dir);
  const reader = log.reader({ name: "billing" });
  const first = reader.position;
  // What opening repaired: a record a killed writer left half-written is rolled back or sealed.
  send({ resumedAt: first, repaired: log.recovery.rewoundFrames + log.recovery.abortedFrames });
  let read = 0;
  const check = (seq: number, data: Uint8Array): void => {
    const text = new TextDecoder().decode(data);
    if (text !== `order ${seq}`) throw new Error(`record ${seq} holds "${text}"`);
    if (++read % 100 === 0) reader.commit();
  };
  if (mode === "drain") {
    for (let r = reader.next(); r !== null; r = reader.next()) check(r.seq, r.data);
  } else {
    for await (const r of reader) check(r.seq, r.data);
  }
  reader.commit();
  send({ done: true, first, read, next: reader.position });
  reader.close();
  log.close();
}

const [role, ...args] = process.argv.slice(2);
try {
  switch (role) {
    case "share":
      await share(args[0]!);
      break;
    case "pong":
      await pong();
      break;
    case "produce":
      await produce(args[0]!);
      break;
    case "consume":
      await consume(args[0]!, args[1] ?? "follow");
      break;
    default:
      throw new Error(`unknown tour role ${String(role)}`);
  }
  process.disconnect?.();
} catch (error) {
  send({ error: error instanceof Error ? error.message : String(error) });
  process.exitCode = 1;
  process.disconnect?.();
}
