/**
 * The push bridge: a log's records into a JetStream stream, exactly once.
 *
 * - Each record is published with `Nats-Msg-Id: <log id>:<seq>` (JetStream
 *   drops a second copy within the stream's duplicate_window) and the
 *   headers `Memmap-Log: <log id>`, `Memmap-Seq: <seq>`.
 * - Up to `maxInFlight` publishes wait for their acks at once; the log's
 *   durable cursor moves only over records whose ack came back, in log order.
 * - On start, and after any failed publish, the bridge asks the stream what
 *   it already holds of this log (the last message on the subject; after a
 *   failure, every message on the subject after the last one known in order)
 *   and publishes only what is missing. So a restart never relies on the
 *   duplicate window alone: an outage longer than the window duplicates
 *   nothing either.
 */
import { MmapError, invalidArg } from "../core/errors.ts";
import { validateBoolean } from "../core/validate.ts";
import type { Log } from "../log/log.ts";
import type { LogReader } from "../log/reader.ts";
import { checkCommon, positiveInt, startBridge, watchStatus, type Started } from "./common.ts";
import { HeaderMaker } from "./headers.ts";
import { logId } from "./log-id.ts";
import { SUBJECT, checkName, isNotFound, sleep, subjectMatches, type NatsClient, type NatsConnection } from "./nats.ts";
import type * as JS from "@nats-io/jetstream";
import type { MsgHdrs } from "@nats-io/transport-node";

/** Options of {@link bridgeToJetStream}. */
export interface PushBridgeOptions {
  /** NATS server URL(s): "nats://127.0.0.1:4222", "host:port", a comma-separated list or an array. */
  servers: string | string[];
  /** The stream; created with subjects [subject] if missing (see createStream). */
  stream: string;
  /** The subject the records are published to. One log per subject: the bridge reads the subject's last message to resume. */
  subject: string;
  /** The log's durable reader that tracks what the stream has acknowledged. Default "jetstream". */
  cursor?: string;
  /** Stops the bridge cleanly (as close()). */
  signal?: AbortSignal;
  /** Most records read from the log and not yet acknowledged (each one copied in memory, published or about to be): memory stays bounded by it. Default 1024. */
  maxInFlight?: number;
  /** How long to keep trying the first connection before ERR_TIMEOUT. Default 30 000 ms. */
  connectTimeoutMs?: number;
  /** How long one publish waits for its ack before it counts as failed (and is checked and retried). Default 5000 ms. */
  publishTimeoutMs?: number;
  /** Create the stream if it does not exist. Default true. */
  createStream?: boolean;
  /** duplicate_window of a stream the bridge creates, in ms. Default: the server's (2 minutes). */
  duplicateWindowMs?: number;
  /** Receives the bridge's notices (retries, disconnects, reconnects). Default: one line on stderr each. */
  onEvent?: (message: string) => void;
}

/** What a push bridge has done (this process's counts, and the log's position). */
export interface PushBridgeStats {
  /** Publishes sent (a retried record counts again). */
  published: number;
  /** Records acknowledged in log order (the cursor moves over them). */
  acknowledged: number;
  /** Publishes waiting for their ack now (never more than maxInFlight). */
  inFlight: number;
  /** Records in the log not yet acknowledged: the log's next seq minus the cursor. */
  lagRecords: number;
  /** The last log seq the stream has acknowledged (in order), or null before the first. */
  lastSeq: number | null;
  /** Times the client reconnected to the server. */
  reconnects: number;
  /** Records found in the stream after a later record that was lost (kept: JetStream has no insert). */
  outOfOrder: number;
}

/** A running push bridge. */
export interface PushBridge {
  /** The log's id, the first part of each Nats-Msg-Id. */
  readonly logId: string;
  /** This bridge's counts and position (see {@link PushBridgeStats}). */
  stats(): PushBridgeStats;
  /** Stops publishing, waits for the acks in flight, commits the cursor, closes the connection. Idempotent. */
  close(): Promise<void>;
  /** Settles when the bridge stops: resolves on close() or the signal, rejects with the error that stopped it. */
  readonly done: Promise<void>;
}

const PUSH_KEYS = new Set(["servers", "stream", "subject", "cursor", "signal", "maxInFlight", "connectTimeoutMs", "publishTimeoutMs", "createStream", "duplicateWindowMs", "onEvent"]);

interface Entry {
  seq: number;
  /** A copy of the record (kept to publish it again after a failure). */
  data: Uint8Array;
  state: typeof PENDING | typeof ACKED | typeof FAILED;
  streamSeq: number;
  /** performance.now() of the last publish. */
  sentAt: number;
}

/** A copy of a record (its view into the mapped segment may not outlive the reader's next step), from Node's shared pool when small. */
function copyOf(data: Uint8Array): Uint8Array {
  const copy = Buffer.allocUnsafe(data.byteLength);
  copy.set(data);
  return copy;
}

/**
 * The headers of record `seq`: the bridge's own pre-encoded object when the
 * client sends headers by calling their encode() (./headers.ts), otherwise
 * the client's own header object.
 */
function recordHeaders(nats: NatsClient, id: string): (seq: number) => MsgHdrs {
  if (typeof (nats.transport.headers() as { encode?: unknown }).encode === "function") {
    const maker = new HeaderMaker(id);
    return (seq) => maker.make(seq);
  }
  return (seq) => {
    const h = nats.transport.headers();
    h.set("Memmap-Log", id);
    h.set("Nats-Msg-Id", `${id}:${seq}`);
    h.set("Memmap-Seq", String(seq));
    return h;
  };
}

/** Ensures the stream exists and takes `subject`: creates it if allowed; ERR_SUBJECT_MISMATCH / ERR_NO_STREAM otherwise. */
async function ensureStream(nats: NatsClient, jsm: JS.JetStreamManager, stream: string, subject: string, create: boolean, dupMs: number | undefined): Promise<void> {
  let info: JS.StreamInfo | undefined;
  try {
    info = await jsm.streams.info(stream);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  if (info === undefined) {
    if (!create) throw new MmapError("ERR_NO_STREAM", `no JetStream stream '${stream}' (createStream is false)`);
    const config: Partial<JS.StreamConfig> & { name: string } = { name: stream, subjects: [subject], storage: nats.jetstream.StorageType.File };
    if (dupMs !== undefined) config.duplicate_window = nats.transport.nanos(dupMs);
    try {
      await jsm.streams.add(config);
    } catch (error) {
      const message = (error as Error).message ?? String(error);
      if (/overlap/i.test(message))
        throw new MmapError("ERR_SUBJECT_MISMATCH", `cannot create stream '${stream}' with subject '${subject}': another stream already takes that subject (${message})`, { cause: error });
      throw error;
    }
    return;
  }
  const subjects = info.config.subjects ?? [];
  if (!subjects.some((f) => subjectMatches(f, subject)))
    throw new MmapError("ERR_SUBJECT_MISMATCH", `stream '${stream}' does not take subject '${subject}' (its subjects: ${subjects.length === 0 ? "none" : subjects.join(", ")})`);
}

/** The memmap headers of a stored message, or undefined if it has none. */
function memmapHeaders(m: JS.StoredMsg): { log: string; seq: number } | undefined {
  const log = m.header?.get("Memmap-Log");
  const seqText = m.header?.get("Memmap-Seq");
  if (!log || !seqText || !/^\d{1,16}$/.test(seqText)) return undefined;
  const seq = Number(seqText);
  return Number.isSafeInteger(seq) ? { log, seq } : undefined;
}

/**
 * Starts mirroring `log` into a JetStream stream: every record already in
 * the log past the bridge's cursor, then each new one as it is appended,
 * exactly once and in order (see the module comment). Resolves once
 * connected and resumed; keeps running until close() or the signal.
 *
 * Errors: ERR_INVALID_ARG (bad options or URL), ERR_MISSING_DEPENDENCY (the
 * NATS client is not installed), ERR_TIMEOUT (no server within
 * connectTimeoutMs), ERR_SUBJECT_MISMATCH (the stream does not take the
 * subject, or the subject holds another log's messages), ERR_NO_STREAM,
 * ERR_CLOSED / ERR_READ_ONLY (the log).
 */
export async function bridgeToJetStream(log: Log, options: PushBridgeOptions): Promise<PushBridge> {
  const { o, servers, stream, connectTimeoutMs, onEvent } = checkCommon(options, PUSH_KEYS, log);
  const subject = checkName("subject", o.subject, SUBJECT, "a subject such as events.local (no wildcards)");
  const cursor = o.cursor ?? "jetstream";
  if (typeof cursor !== "string" || cursor === "") throw invalidArg("cursor must be a non-empty string");
  const maxInFlight = positiveInt("maxInFlight", o.maxInFlight, 1024);
  const publishTimeoutMs = positiveInt("publishTimeoutMs", o.publishTimeoutMs, 5000);
  const dupMs = o.duplicateWindowMs === undefined ? undefined : positiveInt("duplicateWindowMs", o.duplicateWindowMs, 0);
  if (o.createStream !== undefined) validateBoolean(o.createStream, "createStream");

  const id = logId(log.dir);
  return startBridge({ signal: o.signal, onEvent, servers, connectTimeoutMs, name: `memmap push ${id}` }, async (s) => {
    const jsm = await s.nats.jetstream.jetstreamManager(s.nc, { timeout: publishTimeoutMs });
    await ensureStream(s.nats, jsm, stream, subject, o.createStream ?? true, dupMs);
    const reader = log.reader({ name: cursor });
    try {
      // Resume: skip what the stream already holds of this log (the cursor may lag the acks).
      let lastGoodStreamSeq = 0;
      const last = await jsm.streams.getMessage(stream, { last_by_subj: subject });
      if (last !== null) {
        const h = memmapHeaders(last);
        if (h === undefined || h.log !== id)
          throw new MmapError("ERR_SUBJECT_MISMATCH", `subject '${subject}' of stream '${stream}' holds messages that are not this log's (last message ${last.seq}: ${h === undefined ? "no Memmap-Seq/Memmap-Log headers" : `log ${h.log}`}, this log is ${id}): give each log its own subject`);
        if (h.seq >= log.nextSeq)
          throw new MmapError("ERR_CORRUPT", `stream '${stream}' holds seq ${h.seq} of this log (${id}) but the log ends at ${log.nextSeq}: the log lost records the stream has`, { path: log.dir });
        lastGoodStreamSeq = last.seq;
        if (h.seq + 1 > reader.position) {
          reader.seek(h.seq + 1);
          reader.commit();
        }
      }
      return new Push(log, id, stream, subject, s, jsm, publishTimeoutMs, reader, maxInFlight, onEvent, lastGoodStreamSeq);
    } catch (error) {
      reader.close();
      throw error;
    }
  });
}

const PENDING = 0;
const ACKED = 1;
const FAILED = 2;

class Push implements PushBridge {
  readonly logId: string;
  readonly done: Promise<void>;
  readonly #log: Log;
  readonly #stream: string;
  readonly #subject: string;
  readonly #nc: NatsConnection;
  readonly #jsm: JS.JetStreamManager;
  readonly #publishTimeoutMs: number;
  readonly #headers: (seq: number) => MsgHdrs;
  readonly #inbox: string;
  readonly #sub: { unsubscribe(): void };
  readonly #watchdog: ReturnType<typeof setInterval>;
  /** Publishes waiting for their ack, by log seq, oldest first. */
  readonly #pending = new Map<number, Entry>();
  readonly #reader: LogReader;
  readonly #maxInFlight: number;
  /** The run loop refills the window once it is down to this many records (so it publishes in batches, not one per ack). */
  readonly #lowWater: number;
  readonly #stop: AbortController;
  readonly #onEvent: (message: string) => void;
  readonly #cleanup: () => void;
  /** Records read from the log and not yet acknowledged in order, in log order; [#head, length) are live. At most maxInFlight. */
  #queue: Entry[] = [];
  #head = 0;
  #inFlight = 0;
  #failed = false;
  /** Stream seq of the newest message known to hold this log's records in order. */
  #lastGoodStreamSeq: number;
  #wake: (() => void) | undefined;
  #stats = { published: 0, acknowledged: 0, reconnects: 0, outOfOrder: 0 };
  #lastSeq: number | null = null;
  /** The cursor as last committed (exclusive: the next record to publish after a restart). */
  #committedSeq = -1;
  #closing: Promise<void> | undefined;
  #tailWait: Promise<void> | undefined;

  constructor(log: Log, id: string, stream: string, subject: string, s: Started, jsm: JS.JetStreamManager, publishTimeoutMs: number,
    reader: LogReader, maxInFlight: number, onEvent: (m: string) => void, lastGood: number) {
    this.logId = id;
    this.#log = log;
    this.#stream = stream;
    this.#subject = subject;
    this.#nc = s.nc;
    this.#jsm = jsm;
    this.#publishTimeoutMs = publishTimeoutMs;
    this.#headers = recordHeaders(s.nats, id);
    this.#inbox = s.nats.transport.createInbox();
    this.#sub = s.nc.subscribe(`${this.#inbox}.*`, { callback: (error, msg) => { if (error === null) this.#onReply(msg); } });
    this.#watchdog = setInterval(() => this.#checkTimeouts(), Math.max(50, Math.min(1000, publishTimeoutMs / 4)));
    this.#reader = reader;
    this.#maxInFlight = maxInFlight;
    this.#lowWater = Math.floor(maxInFlight / 2);
    this.#stop = s.stop;
    this.#onEvent = onEvent;
    this.#lastGoodStreamSeq = lastGood;
    this.#cleanup = s.detach;
    void watchStatus(s.nc, this.#stats, onEvent);
    s.stop.signal.addEventListener("abort", () => this.#notify(), { once: true });
    this.done = this.#run().finally(() => this.#shutdown());
    this.done.catch(() => {}); // the caller sees it through done or close()
  }

  stats(): PushBridgeStats {
    let lag = 0;
    try {
      if (!this.#log.closed) lag = Math.max(0, this.#log.nextSeq - this.#committed());
    } catch {
      /* the log was closed under us */
    }
    return { ...this.#stats, inFlight: this.#inFlight, lagRecords: lag, lastSeq: this.#lastSeq };
  }

  close(): Promise<void> {
    this.#stop.abort();
    this.#closing ??= this.done.catch(() => {});
    return this.#closing;
  }

  #committed(): number {
    return this.#log.cursors().find((c) => c.name === this.#reader.name)?.seq ?? 0;
  }

  #held(): number {
    return this.#queue.length - this.#head;
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Resolves on an ack that empties the window to its low-water mark, a failure, stop or (when `tail`) a record appended at the reader's position. */
  #sleep(tail: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      if (this.#stop.signal.aborted) resolve();
      if (tail) {
        // One tail wait at a time: a pending one waits at or before the reader's position, so it wakes no later.
        this.#tailWait ??= this.#waitForRecord(this.#reader.position);
        void this.#tailWait.then(resolve);
      }
    });
  }

  /** Resolves when a record at `seq` exists (a throwaway reader tails it), or on stop or close. */
  async #waitForRecord(seq: number): Promise<void> {
    let waiter: LogReader | undefined;
    try {
      waiter = this.#log.reader({ from: seq });
      const it = waiter.tail({ signal: this.#stop.signal });
      await it.next();
      await it.return(undefined);
    } catch {
      /* stopped, or the log closed: the run loop sees it */
    } finally {
      waiter?.close();
      this.#tailWait = undefined;
    }
  }

  async #run(): Promise<void> {
    const stopped = this.#stop.signal;
    while (!stopped.aborted) {
      this.#commit(); // once per wake: per window of acks, not per ack
      if (this.#failed) {
        if (this.#inFlight > 0) {
          await this.#sleep(false);
          continue;
        }
        await this.#resync();
        continue;
      }
      // Fill the window; the client writes the whole batch to the socket at once (after this turn).
      const now = performance.now();
      let drained = false;
      while (this.#held() < this.#maxInFlight) {
        const rec = this.#reader.next();
        if (rec === null) {
          drained = true;
          break;
        }
        const e: Entry = { seq: rec.seq, data: copyOf(rec.data), state: PENDING, streamSeq: 0, sentAt: now };
        this.#queue.push(e);
        this.#publish(e, now);
      }
      await this.#sleep(drained);
    }
    // Stopping: let the acks in flight arrive so the cursor covers them.
    while (this.#inFlight > 0) await this.#sleep(false);
    this.#commit();
  }

  /**
   * Publishes one record (already in the queue) with a reply subject of its
   * own (`<inbox>.<seq>`): JetStream's ack (or error) comes back there. One
   * subscription and one watchdog timer serve every publish (js.publish()
   * would make a request, with a timer and a promise, per record).
   */
  #publish(e: Entry, now: number): void {
    e.state = PENDING;
    e.sentAt = now;
    this.#inFlight++;
    this.#stats.published++;
    this.#pending.set(e.seq, e);
    try {
      this.#nc.publish(this.#subject, e.data, { headers: this.#headers(e.seq), reply: `${this.#inbox}.${e.seq}` });
    } catch (error) {
      this.#failPending(`publish of seq ${e.seq} failed (${(error as Error).message ?? String(error)})`);
    }
  }

  /** A reply from JetStream: a PubAck `{ stream, seq, duplicate? }`, an `{ error }`, or a status such as 503 (no responders). */
  #onReply(msg: { subject: string; data: Uint8Array; headers?: { hasError: boolean; code: number; description: string } | undefined; json<T>(): T }): void {
    const seq = Number(msg.subject.slice(this.#inbox.length + 1));
    const e = this.#pending.get(seq);
    if (e === undefined) return; // already given up on (the watchdog): the resync looks at the stream instead
    this.#pending.delete(seq);
    this.#inFlight--;
    let why: string | undefined;
    let streamSeq = 0;
    if (msg.headers?.hasError === true || msg.data.byteLength === 0) why = `status ${msg.headers?.code ?? "?"} ${msg.headers?.description ?? "no reply"}`;
    else {
      try {
        const r = msg.json<{ seq?: unknown; error?: { description?: string } }>();
        if (r.error !== undefined) why = r.error.description ?? "JetStream error";
        else if (typeof r.seq === "number" && Number.isSafeInteger(r.seq) && r.seq > 0) streamSeq = r.seq;
        else why = "a malformed ack";
      } catch {
        why = "a malformed ack";
      }
    }
    if (why === undefined) {
      e.state = ACKED;
      e.streamSeq = streamSeq;
      this.#advance();
      if (this.#held() > this.#lowWater && this.#inFlight > 0) return; // the run loop waits for room for a batch
    } else {
      e.state = FAILED;
      if (!this.#failed) this.#onEvent(`publish of seq ${e.seq} failed (${why}); checking the stream and retrying`);
      this.#failed = true;
    }
    this.#notify();
  }

  /** Gives up on every publish waiting for its ack (the resync will find out what the stream got). */
  #failPending(why: string): void {
    if (this.#pending.size === 0) return;
    for (const e of this.#pending.values()) e.state = FAILED;
    this.#inFlight -= this.#pending.size;
    this.#pending.clear();
    if (!this.#failed) this.#onEvent(`${why}; checking the stream and retrying`);
    this.#failed = true;
    this.#notify();
  }

  /** Fails the publishes in flight once the oldest has waited publishTimeoutMs for its ack. */
  #checkTimeouts(): void {
    const oldest = this.#pending.values().next().value;
    if (oldest !== undefined && performance.now() - oldest.sentAt > this.#publishTimeoutMs)
      this.#failPending(`no ack for seq ${oldest.seq} within ${this.#publishTimeoutMs} ms`);
  }

  /** Pops the acknowledged prefix of the queue (the run loop commits the cursor past it). */
  #advance(): void {
    const q = this.#queue;
    while (this.#head < q.length && q[this.#head]!.state === ACKED) {
      const e = q[this.#head++]!;
      if (e.streamSeq > this.#lastGoodStreamSeq) this.#lastGoodStreamSeq = e.streamSeq;
      this.#lastSeq = e.seq;
      this.#stats.acknowledged++;
    }
    if (this.#head === q.length) {
      q.length = 0;
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > q.length) {
      this.#queue = q.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Commits the cursor past the records acknowledged in order (a store into the log's meta file). */
  #commit(): void {
    const next = this.#lastSeq === null ? -1 : this.#lastSeq + 1;
    if (next > this.#committedSeq && !this.#log.closed) {
      this.#reader.commit(next);
      this.#committedSeq = next;
    }
  }

  /**
   * After a failed publish (every publish settled): read what the stream
   * holds of this log after the last message known in order, mark those
   * records acknowledged, and publish the rest again, in order.
   */
  async #resync(): Promise<void> {
    const present = new Set<number>();
    for (let attempt = 1; !this.#stop.signal.aborted; attempt++) {
      try {
        present.clear();
        let s = this.#lastGoodStreamSeq + 1;
        for (;;) {
          const m = await this.#jsm.streams.getMessage(this.#stream, { seq: s, next_by_subj: this.#subject } as unknown as JS.MsgRequest);
          if (m === null) break;
          const h = memmapHeaders(m);
          if (h !== undefined && h.log === this.logId) present.add(h.seq);
          s = m.seq + 1;
        }
        break;
      } catch (error) {
        if (isNotFound(error) && /stream/i.test((error as Error).message) && !/message/i.test((error as Error).message))
          throw new MmapError("ERR_NO_STREAM", `stream '${this.#stream}' is gone`, { cause: error });
        if (attempt === 1 || attempt % 10 === 0) this.#onEvent(`waiting for JetStream to answer (${(error as Error).message ?? String(error)})`);
        await sleep(Math.min(1000, 100 * attempt), this.#stop.signal);
      }
    }
    if (this.#stop.signal.aborted) return;
    const q = this.#queue;
    let missing = false;
    const retry: Entry[] = [];
    for (let i = this.#head; i < q.length; i++) {
      const e = q[i]!;
      if (e.state === ACKED) continue;
      if (present.has(e.seq)) {
        if (missing) this.#stats.outOfOrder++;
        e.state = ACKED;
        continue;
      }
      missing = true;
      retry.push(e);
    }
    this.#failed = false;
    this.#advance();
    const now = performance.now();
    for (const e of retry) this.#publish(e, now);
  }

  async #shutdown(): Promise<void> {
    this.#cleanup();
    clearInterval(this.#watchdog);
    try {
      if (!this.#log.closed) {
        this.#advance();
        this.#commit();
        await this.#log.flush();
      }
    } catch {
      /* the log closed under us: its page cache holds the cursor */
    }
    this.#reader.close();
    this.#sub.unsubscribe();
    await this.#nc.close().catch(() => {});
  }
}
