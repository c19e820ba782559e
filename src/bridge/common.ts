/**
 * What the push and pull bridges share: option checks, the start-up
 * plumbing (the caller's signal wired to the bridge's own stop controller,
 * a connection with a visible retry, everything undone if start-up fails)
 * and the reconnect notices.
 */
import { MmapError, invalidArg } from "../core/errors.ts";
import { validateAbortSignal, validateOptions } from "../core/validate.ts";
import type { Log } from "../log/log.ts";
import { NAME, checkName, checkServers, connectWithRetry, loadNats, stderrEvents, type NatsClient, type NatsConnection } from "./nats.ts";

export function positiveInt(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) throw invalidArg(`${name} must be a positive integer, got ${String(value)}`);
  return value;
}

/** The options both bridges take. */
interface CommonOptions {
  servers: string | string[];
  stream: string;
  signal?: AbortSignal;
  connectTimeoutMs?: number;
  onEvent?: (message: string) => void;
}

/** Checks the options both bridges take, and the log; returns them checked, with their defaults. */
export function checkCommon<T extends CommonOptions>(options: T, keys: Set<string>, log: unknown) {
  const o = validateOptions(options as unknown as Record<string, unknown>, keys, "bridge") as unknown as T;
  if (o.signal !== undefined) validateAbortSignal(o.signal, "signal");
  if (o.onEvent !== undefined && typeof o.onEvent !== "function") throw invalidArg("onEvent must be a function");
  checkLog(log, "log");
  return {
    o,
    servers: checkServers(o.servers),
    stream: checkName("stream", o.stream, NAME, "a stream name (no spaces, dots or wildcards)"),
    connectTimeoutMs: positiveInt("connectTimeoutMs", o.connectTimeoutMs, 30_000),
    onEvent: o.onEvent ?? stderrEvents,
  };
}

function checkLog(log: unknown, what: string): Log {
  const l = log as Log;
  if (typeof l !== "object" || l === null || typeof l.reader !== "function" || typeof l.dir !== "string") throw invalidArg(`${what} must be a Log from openLog()`);
  if (l.closed) throw new MmapError("ERR_CLOSED", "the log is closed", { path: l.dir });
  if (l.readOnly) throw new MmapError("ERR_READ_ONLY", `${what} needs a log opened for writing (the bridge keeps its position in the log)`, { path: l.dir });
  return l;
}

/** What a bridge gets once connected. */
export interface Started {
  nats: NatsClient;
  nc: NatsConnection;
  /** Aborted by close(), or by the caller's signal. */
  stop: AbortController;
  /** Unhooks the caller's signal (the bridge calls it when it stops). */
  detach: () => void;
}

/**
 * Loads the client, wires `signal` to a stop controller, connects (retrying
 * for `connectTimeoutMs`), then runs `start`. If anything fails, the signal
 * is unhooked and the connection closed before the error is thrown.
 */
export async function startBridge<T>(
  o: { signal?: AbortSignal | undefined; onEvent: (message: string) => void; servers: string[]; connectTimeoutMs: number; name: string },
  start: (s: Started) => Promise<T>,
): Promise<T> {
  const nats = await loadNats();
  if (o.signal?.aborted) throw new MmapError("ERR_ABORTED", "the signal was aborted before the bridge started", { cause: o.signal.reason });
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(o.signal?.reason);
  o.signal?.addEventListener("abort", onAbort, { once: true });
  const detach = (): void => o.signal?.removeEventListener("abort", onAbort);
  let nc: NatsConnection | undefined;
  try {
    nc = await connectWithRetry(nats, { servers: o.servers, connectTimeoutMs: o.connectTimeoutMs, signal: stop.signal, onEvent: o.onEvent, name: o.name });
    return await start({ nats, nc, stop, detach });
  } catch (error) {
    detach();
    await nc?.close().catch(() => {});
    throw error;
  }
}

/** Reports disconnects and reconnects through onEvent and counts the reconnects, until the connection closes. */
export async function watchStatus(nc: NatsConnection, stats: { reconnects: number }, onEvent: (message: string) => void): Promise<void> {
  for await (const s of nc.status()) {
    if (s.type === "disconnect") onEvent(`disconnected from NATS (${s.server}); reconnecting`);
    else if (s.type === "reconnect") {
      stats.reconnects++;
      onEvent(`reconnected to NATS (${s.server})`);
    }
  }
}
