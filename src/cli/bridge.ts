/**
 * `memmap bridge push <logdir>` and `memmap bridge pull <logdir>`: run a
 * JetStream bridge until SIGINT or SIGTERM. On a terminal a progress line
 * is refreshed every second; notices (retries, reconnects) are lines on
 * stderr; the end prints one line of counts (or the stats with --json).
 */
import { bridgeFromJetStream, bridgeToJetStream, openLog, type Log, type PullBridge, type PushBridge } from "../index.ts";
import { CliError, EXIT_FAILURE, EXIT_OK, formatCount, printJson } from "./common.ts";

export interface BridgePushCliOptions {
  server: string;
  stream: string;
  subject: string;
  cursor?: string;
  maxInFlight?: number;
  connectTimeout?: number;
  json?: boolean;
}

export interface BridgePullCliOptions {
  server: string;
  stream: string;
  consumer: string;
  subject?: string;
  connectTimeout?: number;
  json?: boolean;
}

/** Runs `bridge` until a signal, showing progress; returns the exit code. */
async function runUntilSignal(bridge: PushBridge | PullBridge, controller: AbortController, progress: () => string, final: () => string, json: boolean): Promise<number> {
  const stop = (): void => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const tty = process.stderr.isTTY === true && !json;
  const timer = tty ? setInterval(() => process.stderr.write(`\r${progress()}\x1b[K`), 1000) : undefined;
  try {
    await bridge.done;
  } catch (error) {
    throw new CliError((error as Error).message, EXIT_FAILURE, { cause: error });
  } finally {
    if (timer !== undefined) {
      clearInterval(timer);
      process.stderr.write("\r\x1b[K");
    }
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  if (json) printJson(bridge.stats());
  else process.stdout.write(`${final()}\n`);
  return EXIT_OK;
}

function events(message: string): void {
  process.stderr.write(`${process.stderr.isTTY ? "\r\x1b[K" : ""}memmap bridge: ${message}\n`);
}

export async function runBridgePush(dir: string, o: BridgePushCliOptions): Promise<number> {
  const log: Log = openLog(dir); // a log that does not exist is an error (ENOENT), never created here
  const controller = new AbortController();
  try {
    const bridge = await bridgeToJetStream(log, {
      servers: o.server, stream: o.stream, subject: o.subject, cursor: o.cursor, signal: controller.signal,
      maxInFlight: o.maxInFlight, connectTimeoutMs: o.connectTimeout, onEvent: events,
    });
    events(`pushing ${dir} to stream ${o.stream} (subject ${o.subject}) at ${o.server}; Ctrl-C to stop`);
    return await runUntilSignal(bridge, controller, () => {
      const s = bridge.stats();
      return `published ${formatCount(s.published)}  acknowledged ${formatCount(s.acknowledged)}  lag ${formatCount(s.lagRecords)}  reconnects ${s.reconnects}`;
    }, () => {
      const s = bridge.stats();
      return `pushed: ${formatCount(s.acknowledged)} records acknowledged (${formatCount(s.published)} publishes), last seq ${s.lastSeq ?? "-"}, lag ${formatCount(s.lagRecords)}, ${s.reconnects} reconnects`;
    }, o.json === true);
  } finally {
    log.close();
  }
}

export async function runBridgePull(dir: string, o: BridgePullCliOptions): Promise<number> {
  const log: Log = openLog(dir, { create: true }); // the mirror is made on the first run
  const controller = new AbortController();
  try {
    const bridge = await bridgeFromJetStream({
      servers: o.server, stream: o.stream, consumer: o.consumer, subject: o.subject, signal: controller.signal,
      connectTimeoutMs: o.connectTimeout, onEvent: events,
    }, log);
    events(`pulling stream ${o.stream} (consumer ${o.consumer}) at ${o.server} into ${dir}; Ctrl-C to stop`);
    return await runUntilSignal(bridge, controller, () => {
      const s = bridge.stats();
      return `appended ${formatCount(s.appended)}  acknowledged ${formatCount(s.acknowledged)}  lag ${formatCount(s.lagRecords)}  reconnects ${s.reconnects}`;
    }, () => {
      const s = bridge.stats();
      return `pulled: ${formatCount(s.appended)} messages appended (${formatCount(s.skipped)} already there), last stream seq ${s.lastSeq ?? "-"}, ${s.reconnects} reconnects`;
    }, o.json === true);
  } finally {
    log.close();
  }
}
