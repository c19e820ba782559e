/**
 * The pull bridge: a JetStream stream into a local log, exactly once.
 *
 * - Each message becomes one record with a 16-byte header holding its stream
 *   sequence (./record.ts), so the position "last message applied" is in
 *   the log itself, written by the same atomic append as the message.
 * - Messages are acked only after their records are flushed (`log.flush()`).
 *   A message whose ack was lost comes again; its stream sequence is not
 *   above the last applied, so it is acked and skipped.
 * - On start the bridge reads the last applied stream sequence from the end
 *   of the log and (re)creates its durable consumer to deliver from the next
 *   one: the log, not the consumer's ack state, says what has been applied,
 *   so messages a killed bridge had fetched but not acked come again at once
 *   and in order (not after ack_wait, behind newer ones). If deliveries ever
 *   skip (a gap in the consumer's delivery sequence, a redelivery, a broken
 *   connection), it does the same again, from the log's truth.
 */
import { MmapError, invalidArg } from "../core/errors.ts";
import type { Log } from "../log/log.ts";
import { checkCommon, startBridge, watchStatus, type Started } from "./common.ts";
import { NAME, checkName, isNotFound, sleep, type NatsClient, type NatsConnection } from "./nats.ts";
import { encodeBridged, tryDecodeBridged } from "./record.ts";
import type * as JS from "@nats-io/jetstream";

/** Options of {@link bridgeFromJetStream}. */
export interface PullBridgeOptions {
  /** NATS server URL(s). */
  servers: string | string[];
  /** The stream to read (it must exist). */
  stream: string;
  /** The durable consumer's name; the bridge owns it (it re-creates it on start). */
  consumer: string;
  /** Only messages on this subject (a filter; wildcards allowed). Default: every message of the stream. */
  subject?: string;
  /** Stops the bridge cleanly (as close()). */
  signal?: AbortSignal;
  /** Messages fetched, appended and flushed per round. Default 256. */
  batch?: number;
  /** How long to keep trying the first connection before ERR_TIMEOUT. Default 30 000 ms. */
  connectTimeoutMs?: number;
  /** Receives the bridge's notices (retries, disconnects, reconnects). Default: one line on stderr each. */
  onEvent?: (message: string) => void;
}

/** What a pull bridge has done. */
export interface PullBridgeStats {
  /** Messages appended to the log by this process. */
  appended: number;
  /** Messages acked (including those skipped as already applied). */
  acknowledged: number;
  /** Messages received that were already in the log (skipped). */
  skipped: number;
  /** Messages of the stream not yet delivered to this consumer, as the server last said (0 before it said). */
  lagRecords: number;
  /** The stream sequence of the last message applied to the log, or null. */
  lastSeq: number | null;
  /** Times the client reconnected to the server. */
  reconnects: number;
}

/** A running pull bridge. */
export interface PullBridge {
  /** This bridge's counts and position (see {@link PullBridgeStats}). */
  stats(): PullBridgeStats;
  /** Stops fetching, flushes and acks what was appended, closes the connection. Idempotent. */
  close(): Promise<void>;
  /** Settles when the bridge stops: resolves on close() or the signal, rejects with the error that stopped it. */
  readonly done: Promise<void>;
}

const PULL_KEYS = new Set(["servers", "stream", "consumer", "subject", "signal", "batch", "connectTimeoutMs", "onEvent"]);
const FILTER = /^[^\s]+$/;

/**
 * The stream sequence of the last message a pull bridge applied to `log`:
 * read from the newest record carrying the bridge's header (0 if none).
 */
export function lastApplied(log: Log): number {
  const reader = log.reader({ from: "start" });
  try {
    for (let seq = log.nextSeq - 1; seq >= log.firstSeq; seq--) {
      reader.seek(seq);
      const r = reader.next();
      if (r === null || r.seq !== seq) continue; // ABORTED (skipped) or not committed
      const h = tryDecodeBridged(r.data);
      if (h !== undefined) return h.streamSeq;
    }
    return 0;
  } finally {
    reader.close();
  }
}

/**
 * Starts mirroring a JetStream stream into `log`: each message appended
 * once, in stream order (see the module comment). Resolves once connected
 * and resumed; keeps running until close() or the signal. Records carry a
 * 16-byte header: read them with {@link decodeBridgedRecord}.
 *
 * Errors: ERR_INVALID_ARG, ERR_MISSING_DEPENDENCY, ERR_TIMEOUT (no server
 * within connectTimeoutMs), ERR_NO_STREAM (the stream does not exist),
 * ERR_CLOSED / ERR_READ_ONLY (the log).
 */
export async function bridgeFromJetStream(options: PullBridgeOptions, log: Log): Promise<PullBridge> {
  const { o, servers, stream, connectTimeoutMs, onEvent } = checkCommon(options, PULL_KEYS, log);
  const consumer = checkName("consumer", o.consumer, NAME, "a consumer name (no spaces, dots or wildcards)");
  if (o.subject !== undefined) checkName("subject", o.subject, FILTER, "a subject filter such as events.>");
  const batch = o.batch ?? 256;
  if (!Number.isSafeInteger(batch) || batch < 1 || batch > 10_000) throw invalidArg(`batch must be an integer from 1 to 10000, got ${String(batch)}`);

  return startBridge({ signal: o.signal, onEvent, servers, connectTimeoutMs, name: `memmap pull ${consumer}` }, async (s) => {
    const jsm = await s.nats.jetstream.jetstreamManager(s.nc);
    try {
      await jsm.streams.info(stream);
    } catch (error) {
      if (isNotFound(error)) throw new MmapError("ERR_NO_STREAM", `no JetStream stream '${stream}' at ${servers.join(", ")}`, { cause: error });
      throw error;
    }
    const pull = new Pull(log, stream, consumer, o.subject, batch, s, jsm, onEvent);
    await pull.reset();
    pull.start();
    return pull;
  });
}

class Pull implements PullBridge {
  done!: Promise<void>;
  readonly #log: Log;
  readonly #stream: string;
  readonly #consumer: string;
  readonly #subject: string | undefined;
  readonly #batch: number;
  readonly #nats: NatsClient;
  readonly #nc: NatsConnection;
  readonly #jsm: JS.JetStreamManager;
  readonly #js: JS.JetStreamClient;
  readonly #stop: AbortController;
  readonly #onEvent: (m: string) => void;
  readonly #cleanup: () => void;
  #lastApplied = 0;
  /** The stream seq of the last message appended or waiting to be: anything at or below it is skipped. */
  #queued = 0;
  #records: Uint8Array[] = [];
  #acks: JS.JsMsg[] = [];
  #applying: Promise<void> | undefined;
  #failure: unknown;
  #stats = { appended: 0, acknowledged: 0, skipped: 0, lagRecords: 0, reconnects: 0 };
  #current: { stop(): void } | undefined;
  #closing: Promise<void> | undefined;

  constructor(log: Log, stream: string, consumer: string, subject: string | undefined, batch: number, s: Started, jsm: JS.JetStreamManager, onEvent: (m: string) => void) {
    this.#log = log;
    this.#stream = stream;
    this.#consumer = consumer;
    this.#subject = subject;
    this.#batch = batch;
    this.#nats = s.nats;
    this.#nc = s.nc;
    this.#jsm = jsm;
    this.#js = s.nats.jetstream.jetstream(s.nc);
    this.#stop = s.stop;
    this.#onEvent = onEvent;
    this.#cleanup = s.detach;
    s.stop.signal.addEventListener("abort", () => this.#current?.stop(), { once: true });
  }

  start(): void {
    void watchStatus(this.#nc, this.#stats, this.#onEvent);
    this.done = this.#run().finally(() => this.#shutdown());
    this.done.catch(() => {});
  }

  stats(): PullBridgeStats {
    return { ...this.#stats, lastSeq: this.#lastApplied === 0 ? null : this.#lastApplied };
  }

  close(): Promise<void> {
    this.#stop.abort();
    this.#closing ??= (this.done ?? Promise.resolve()).catch(() => {});
    return this.#closing;
  }

  /** Re-creates the durable consumer to deliver from the message after the last one the log holds. */
  async reset(): Promise<void> {
    this.#lastApplied = lastApplied(this.#log);
    try {
      await this.#jsm.consumers.delete(this.#stream, this.#consumer);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const { AckPolicy, DeliverPolicy } = this.#nats.jetstream;
    const config: Partial<JS.ConsumerConfig> = {
      durable_name: this.#consumer,
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: Math.max(1000, this.#batch * 4),
    };
    if (this.#lastApplied > 0) {
      config.deliver_policy = DeliverPolicy.StartSequence;
      config.opt_start_seq = this.#lastApplied + 1;
    } else config.deliver_policy = DeliverPolicy.All;
    if (this.#subject !== undefined) config.filter_subject = this.#subject;
    await this.#jsm.consumers.add(this.#stream, config);
  }

  async #run(): Promise<void> {
    const stopped = this.#stop.signal;
    let needReset = false;
    let attempt = 0;
    try {
      while (!stopped.aborted) {
        try {
          if (needReset) {
            await this.#drain();
            await this.reset();
            needReset = false;
          }
          this.#queued = this.#lastApplied;
          const c = await this.#js.consumers.get(this.#stream, this.#consumer);
          let expected = 0; // the next delivery sequence (0: not known yet)
          while (!stopped.aborted && !needReset) {
            const msgs = await c.fetch({ max_messages: this.#batch, expires: 2000 });
            this.#current = msgs;
            if (stopped.aborted) msgs.stop();
            try {
              for await (const m of msgs) {
                const d = m.info.deliverySequence;
                if ((expected !== 0 && d !== expected) || m.redelivered) {
                  needReset = true; // a delivery skipped or came again: restart from the log's truth
                  msgs.stop();
                  break;
                }
                expected = d + 1;
                this.#stats.lagRecords = m.info.pending;
                this.#acks.push(m);
                if (m.seq <= this.#queued) this.#stats.skipped++;
                else {
                  this.#records.push(encodeBridged(m.seq, m.data));
                  this.#queued = m.seq;
                }
                this.#kick();
                if (this.#acks.length >= this.#batch * 4) await this.#applying; // back-pressure while the disk catches up
              }
            } finally {
              this.#current = undefined;
            }
            if (this.#failure !== undefined) throw this.#failure;
            attempt = 0;
          }
        } catch (error) {
          if (this.#failure !== undefined) throw this.#failure;
          if (stopped.aborted) break;
          if (isNotFound(error) && /stream/i.test((error as Error).message))
            throw new MmapError("ERR_NO_STREAM", `stream '${this.#stream}' is gone`, { cause: error });
          attempt++;
          if (attempt === 1 || attempt % 10 === 0) this.#onEvent(`fetching from '${this.#stream}' failed (${(error as Error).message ?? String(error)}); retrying`);
          needReset = true;
          await sleep(Math.min(1000, 100 * attempt), stopped);
        }
      }
    } finally {
      await this.#drain();
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Starts the applier unless it runs: it takes whatever has arrived, so the flushes batch themselves. */
  #kick(): void {
    this.#applying ??= this.#applyLoop().finally(() => (this.#applying = undefined));
  }

  async #drain(): Promise<void> {
    while (this.#applying !== undefined) await this.#applying;
  }

  /** Appends what has arrived, waits for it to be on disk, then acks those messages; again while more came. */
  async #applyLoop(): Promise<void> {
    await Promise.resolve(); // let the messages already received join this round
    try {
      while (this.#acks.length > 0) {
        const records = this.#records;
        const acks = this.#acks;
        this.#records = [];
        this.#acks = [];
        if (records.length > 0) {
          this.#log.appendBatch(records);
          this.#stats.appended += records.length;
          this.#lastApplied = tryDecodeBridged(records[records.length - 1]!)!.streamSeq;
        }
        await this.#log.flush();
        for (const m of acks) m.ack();
        this.#stats.acknowledged += acks.length;
      }
    } catch (error) {
      this.#failure ??= error; // the log failed (closed, damaged, full disk): stop, ack nothing more
      this.#current?.stop();
      this.#stop.abort();
    }
  }

  async #shutdown(): Promise<void> {
    this.#cleanup();
    try {
      await this.#nc.flush(); // the last acks reach the server
    } catch {
      /* the server is gone: those messages come again and are skipped */
    }
    await this.#nc.close().catch(() => {});
  }
}
