/**
 * The bridge's only contact with the NATS client: loading it (an optional
 * peer dependency, imported when a bridge starts, so `import "memmap"` never
 * needs it), checking server URLs, and connecting with a visible retry.
 */
import { MmapError, invalidArg } from "../core/errors.ts";
import type * as Transport from "@nats-io/transport-node";
import type * as JetStream from "@nats-io/jetstream";

export type NatsConnection = Transport.NatsConnection;
export type NatsClient = { transport: typeof Transport; jetstream: typeof JetStream };

const INSTALL_HINT = "npm install @nats-io/transport-node @nats-io/jetstream";

let loaded: Promise<NatsClient> | undefined;

/** Imports the client; a clear ERR_MISSING_DEPENDENCY when it is not installed. */
export function loadNats(): Promise<NatsClient> {
  loaded ??= (async () => {
    const missing: string[] = [];
    const load = async <T>(name: string): Promise<T | undefined> => {
      try {
        return (await import(name)) as T;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") {
          missing.push(name);
          return undefined;
        }
        throw error;
      }
    };
    const transport = await load<typeof Transport>("@nats-io/transport-node");
    const jetstream = await load<typeof JetStream>("@nats-io/jetstream");
    if (transport === undefined || jetstream === undefined)
      throw new MmapError("ERR_MISSING_DEPENDENCY", `the JetStream bridge needs the NATS client, which is not installed (missing ${missing.join(" and ")}): run \`${INSTALL_HINT}\``);
    return { transport, jetstream };
  })();
  loaded.catch(() => {
    loaded = undefined; // let a later call try again (after an install)
  });
  return loaded;
}

/** Checks `servers` ("nats://host:port", "host:port", or a list): a bad URL is ERR_INVALID_ARG before any connection. */
export function checkServers(servers: unknown): string[] {
  const list = typeof servers === "string" ? servers.split(",") : Array.isArray(servers) ? servers : undefined;
  if (list === undefined || list.length === 0) throw invalidArg("servers must be a URL such as nats://127.0.0.1:4222, or a list of them");
  return list.map((s: unknown) => {
    if (typeof s !== "string" || s.trim() === "") throw invalidArg(`servers: expected a URL, got ${JSON.stringify(s)}`);
    const text = s.trim();
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `nats://${text}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw invalidArg(`servers: '${text}' is not a valid URL (expected nats://host:port)`);
    }
    if (!["nats:", "tls:"].includes(url.protocol)) throw invalidArg(`servers: '${text}' must use nats:// or tls://, not ${url.protocol}//`);
    if (url.hostname === "") throw invalidArg(`servers: '${text}' names no host`);
    if (url.pathname !== "" && url.pathname !== "/") throw invalidArg(`servers: '${text}' must not have a path`);
    return withScheme;
  });
}

export function checkName(what: string, value: unknown, pattern: RegExp, hint: string): string {
  if (typeof value !== "string" || !pattern.test(value)) throw invalidArg(`${what} must be ${hint}, got ${JSON.stringify(value)}`);
  return value;
}

/** Stream and consumer names: no spaces, dots, wildcards or path separators (JetStream's rule). */
export const NAME = /^[^\s.*>/\\]{1,255}$/;
/** A subject to publish to: tokens separated by dots, no wildcards. */
export const SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

export interface ConnectOptions {
  servers: string[];
  /** How long to keep trying the first connection. */
  connectTimeoutMs: number;
  signal: AbortSignal;
  onEvent: (message: string) => void;
  name: string;
}

/**
 * Connects, retrying every second until `connectTimeoutMs` (each failure
 * reported through onEvent); then ERR_TIMEOUT naming the last error. Once
 * connected the client reconnects on its own, forever.
 */
export async function connectWithRetry(nats: NatsClient, o: ConnectOptions): Promise<NatsConnection> {
  const deadline = Date.now() + o.connectTimeoutMs;
  let attempt = 0;
  for (;;) {
    if (o.signal.aborted) throw new MmapError("ERR_ABORTED", "the bridge was stopped before it connected", { cause: o.signal.reason });
    attempt++;
    try {
      return await nats.transport.connect({
        servers: o.servers,
        name: o.name,
        timeout: Math.max(250, Math.min(2000, deadline - Date.now())),
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        pingInterval: 10_000,
      });
    } catch (error) {
      const left = deadline - Date.now();
      const why = (error as Error).message ?? String(error);
      if (left <= 0)
        throw new MmapError("ERR_TIMEOUT", `could not reach NATS at ${o.servers.join(", ")} within ${o.connectTimeoutMs} ms (${attempt} attempts; last error: ${why})`, { cause: error });
      o.onEvent(`cannot reach NATS at ${o.servers.join(", ")} (${why}); retrying for ${Math.ceil(left / 1000)} s more`);
      await sleep(Math.min(1000, left), o.signal);
    }
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** True when a JetStream API error says "not found" (stream, consumer or message). */
export function isNotFound(error: unknown): boolean {
  const e = error as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  const code = (e as { apiError?: () => { err_code?: number } }).apiError?.()?.err_code;
  return code === 10059 || code === 10014 || code === 10037 || /not found/i.test(e.message ?? "");
}

/** A subject filter of a stream (with * and > wildcards) matches `subject`. */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (f[i] !== "*" && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}

/** Default event sink: one line on stderr. */
export function stderrEvents(message: string): void {
  process.stderr.write(`memmap bridge: ${message}\n`);
}
