/**
 * Channel: a message ring in a writable shared mapping, for fast IPC between
 * processes. Once set up, a message moves with no system call: the producer
 * copies it into the ring and publishes a position; the consumer reads it
 * where it lies. Waiting and waking go through two {@link Doorbell}s ("data
 * available" and "space available"), so a sender pays one atomic load for
 * the wake-up when nobody sleeps.
 *
 * This file holds the handle: sending, receiving, waiting, errors. The parts
 * beside and underneath it:
 * - ./open.ts: createChannel, openChannel, inspectChannel;
 * - ./options.ts: the options and their checks;
 * - ./layout.ts: the file format (header offsets, positions);
 * - ./file.ts: validating a mapped file, reading its header, slots, stats;
 * - ./producer.ts: a handle's sending side (slots, claims, frames);
 * - ./consumer.ts: its receiving side (the lock, reading, giving space back,
 *   sealing frames that dead producers left claimed);
 * - ./liveness.ts: is a process still there;
 * - ../core/framing.ts: the frame format, shared with the log.
 *
 * Everything read from the shared file is validated before use: a bad value
 * is an ERR_CORRUPT, never an out-of-bounds access or an endless loop.
 */
import * as fs from "node:fs";
import { setImmediate as nextTurn } from "node:timers/promises";
import { MmapError, invalidArg } from "../core/errors.ts";
import { type MappedFile } from "../core/mapped-file.ts";
import { Doorbell, SpinBudget, timeoutOf, type WaitStrategy } from "../core/wait.ts";
import { checkInteger, describe, validateOptions } from "../core/validate.ts";
import { RingReader } from "./consumer.ts";
import { ENDED_I32, collectStats, lockReaper, probeConsumer, slotAlive, viewsOf, type ChannelProducers, type ChannelStats, type HeaderInfo, type Ring } from "./file.ts";
import { DATA_SEQ_OFFSET, DATA_WAITERS_OFFSET, SLOT_COUNT, SPACE_SEQ_OFFSET, SPACE_WAITERS_OFFSET } from "./layout.ts";
import {
  checkCopy,
  checkSignal,
  payloadLength,
  type ReceiveAsyncOptions,
  type ReceiveOptions,
  type SendAsyncOptions,
  type SendOptions,
  type TryReceiveOptions,
} from "./options.ts";
import { RingWriter, frameLength, type ChannelData } from "./producer.ts";

/**
 * Waits are cut into slices this long: with many producers, so that the
 * consumer notices claims abandoned by dead processes; and every async
 * wait, so that its waiter thread is handed back now and then (the addon
 * starts a new waiter thread only when none is idle, so a wait queued while
 * another is being picked up would otherwise sit behind a long sleep).
 */
const WAIT_SLICE_MS = 100;
/** An async wait polls this long (once per event-loop turn) before it sleeps. */
const ASYNC_POLL_MS = 0.05;

/** @internal Proves a Channel is made by open.ts (createChannel, openChannel), not by users. */
export const channelToken = Symbol("Channel");

/**
 * A handle on a channel. The first send (or claim) makes it a producer; the
 * first receive makes it the consumer (one per channel at a time: a second
 * live consumer gets ERR_BUSY). A handle may be both.
 *
 * Messages received as views (the default) stay valid until the next
 * receive on this handle; pass `{ copy: true }` to keep one longer.
 */
export class Channel {
  /** Ring bytes (a power of two). */
  readonly capacity: number;
  /** Largest message: capacity − 8 bytes (capacity − 12 with `checksum`). */
  readonly maxMessageLength: number;
  readonly producers: ChannelProducers;
  /** Every message carries a CRC32C of its bytes (createChannel's `checksum` option). */
  readonly checksum: boolean;
  /** The channel file's path; undefined when opened from a descriptor. */
  readonly path: string | undefined;
  readonly strategy: WaitStrategy;

  readonly #file: MappedFile;
  /** This handle's own open file description: the consumer lock is taken on it. */
  readonly #fd: number;
  readonly #ring: Ring;
  readonly #bytes: Uint8Array;
  readonly #words: Int32Array;
  readonly #spin: number | undefined;
  readonly #dataBell: Doorbell;
  readonly #spaceBell: Doorbell;
  readonly #closing = new AbortController();
  readonly #isClosed = (): boolean => this.#closed;
  #closed = false;
  #asyncWaits = 0;
  /** How long receiveAsync / sendAsync poll before they sleep, with the "adaptive" strategy (ms). */
  readonly #asyncDataPoll = new SpinBudget();
  readonly #asyncSpacePoll = new SpinBudget();
  #writer: RingWriter | undefined;
  #reader: RingReader | undefined;

  /** @internal use createChannel() or openChannel() */
  constructor(
    token: symbol,
    file: MappedFile,
    fd: number,
    path: string | undefined,
    info: HeaderInfo,
    strategy: WaitStrategy,
    spin: number | undefined,
  ) {
    if (token !== channelToken) throw new TypeError("use createChannel() or openChannel()");
    this.#file = file;
    this.#fd = fd;
    this.path = path;
    this.capacity = info.capacity;
    this.maxMessageLength = info.capacity - info.payloadOffset;
    this.checksum = info.checksum;
    this.producers = info.multi ? "multi" : "single";
    this.strategy = strategy;
    this.#spin = spin;
    this.#ring = { fd, ownSlot: -1, v: viewsOf(file, info.capacity), ...info, path };
    this.#bytes = this.#ring.v.bytes;
    this.#words = this.#ring.v.words;
    this.#dataBell = new Doorbell(file.buffer, DATA_SEQ_OFFSET, DATA_WAITERS_OFFSET);
    this.#spaceBell = new Doorbell(file.buffer, SPACE_SEQ_OFFSET, SPACE_WAITERS_OFFSET);
    lockReaper.register(this, fd, this);
  }

  /** True once {@link close} was called on this handle. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True once some handle called {@link end}. */
  get ended(): boolean {
    this.#check();
    return this.#words[ENDED_I32] !== 0;
  }

  /** Frames this consumer sealed as ABORTED because their producer died mid-send. */
  get abortedFrames(): number {
    return this.#reader?.sealed ?? 0;
  }

  // ---------------------------------------------------------------- sending

  /**
   * Sends one message if there is room now; false when the ring is full.
   * Throws ERR_TOO_LARGE for a message over {@link maxMessageLength} and
   * ERR_CLOSED once the channel was ended.
   */
  trySend(data: ChannelData): boolean {
    const n = payloadLength(data);
    return this.#producer(n).send(data, n);
  }

  /**
   * Sends one message, blocking the thread until there is room (for workers
   * and dedicated processes; use {@link sendAsync} on an event loop).
   * Throws ERR_TIMEOUT, or ERR_PEER_GONE when it timed out with no consumer attached.
   */
  send(data: ChannelData, options?: SendOptions): void {
    validateOptions(options, ["timeoutMs", "timeout"], "send");
    const timeout = timeoutOf(options);
    if (this.trySend(data)) return;
    const frame = frameLength(payloadLength(data), this.#ring.payloadOffset);
    this.#waitForRoom(() => frame, timeout, () => this.trySend(data));
  }

  /**
   * Sends one message, waiting for room without blocking the event loop (the
   * wait runs on one of the addon's waiter threads, never on libuv's pool).
   * Rejects with ERR_TIMEOUT / ERR_PEER_GONE, or ERR_ABORTED from the signal.
   */
  async sendAsync(data: ChannelData, options?: SendAsyncOptions): Promise<void> {
    validateOptions(options, ["timeoutMs", "timeout", "signal"], "sendAsync");
    const timeout = timeoutOf(options);
    const signal = checkSignal(options?.signal);
    if (signal?.aborted) throw new MmapError("ERR_ABORTED", "the send was aborted", { cause: signal.reason });
    if (this.trySend(data)) return;
    const frame = frameLength(payloadLength(data), this.#ring.payloadOffset);
    const deadline = timeout < 0 ? Infinity : performance.now() + timeout;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) throw this.#sendTimeout(timeout);
      const writer = this.#writer!;
      await writer.waitingForSpaceAsync(() => this.#waitAsync(this.#spaceBell, writer.spaceReady(frame, this.#isClosed), Math.min(left, WAIT_SLICE_MS), signal));
      if (this.trySend(data)) return;
    }
  }

  /**
   * Sends as many of `messages` as fit now, in order, published together
   * (one tail update with a single producer, one claim with many).
   * Returns how many were sent.
   */
  trySendBatch(messages: readonly ChannelData[]): number {
    return this.#sendSome(messages, this.#lengthsOf(messages), 0);
  }

  /** Sends every message, waiting (blocking the thread) for room as needed; as few publications as room allows. */
  sendBatch(messages: readonly ChannelData[], options?: SendOptions): void {
    validateOptions(options, ["timeoutMs", "timeout"], "sendBatch");
    const timeout = timeoutOf(options);
    const lengths = this.#lengthsOf(messages);
    let sent = this.#sendSome(messages, lengths, 0);
    if (sent === messages.length) return;
    this.#waitForRoom(() => frameLength(lengths[sent]!, this.#ring.payloadOffset), timeout, () => {
      sent += this.#sendSome(messages, lengths, sent);
      return sent === messages.length;
    });
  }

  /**
   * Zero-copy send: reserves room for an `n`-byte message and returns a
   * writable view of it in the ring, or null when full. Fill it, then
   * {@link commit}. With many producers, the consumer waits at this message
   * until it is committed, so keep the claim short.
   */
  tryClaim(n: number): Uint8Array | null {
    checkInteger("n", n);
    return this.#producer(n).claim(n);
  }

  /** {@link tryClaim}, waiting (blocking the thread) for room; ERR_TIMEOUT / ERR_PEER_GONE on timeout. */
  claim(n: number, options?: SendOptions): Uint8Array {
    validateOptions(options, ["timeoutMs", "timeout"], "claim");
    const timeout = timeoutOf(options);
    let view = this.tryClaim(n);
    if (view) return view;
    this.#waitForRoom(() => frameLength(n, this.#ring.payloadOffset), timeout, () => (view = this.tryClaim(n)) !== null);
    return view!;
  }

  /**
   * Publishes the claimed message, `length` bytes of it (default: all that
   * was claimed). The view from claim() must not be written afterwards.
   */
  commit(length?: number): void {
    this.#check();
    const writer = this.#writer;
    if (!writer?.claiming) throw invalidArg("commit() without a claim: call claim(n) first");
    writer.commit(length === undefined ? writer.claimLength : checkInteger("length", length, writer.claimLength));
  }

  /** Gives up a claim: nothing is delivered (with many producers the consumer skips an ABORTED frame). */
  abortClaim(): void {
    this.#check();
    this.#writer?.abortClaim();
  }

  /**
   * Marks the channel finished for everyone: sends fail with ERR_CLOSED; the
   * consumer receives what is left, then receive() throws ERR_CLOSED and
   * `for await` loops end.
   */
  end(): void {
    this.#check();
    Atomics.store(this.#words, ENDED_I32, 1);
    this.#dataBell.ringAlways();
    this.#spaceBell.ringAlways();
  }

  // -------------------------------------------------------------- receiving

  /**
   * The next message, or null when there is none now. The view points into
   * the ring and stays valid until the next receive on this handle (or
   * close); pass `{ copy: true }` for a copy that lives on.
   */
  tryReceive(options?: TryReceiveOptions): Uint8Array | null {
    const copy = options === undefined ? false : checkCopy(options);
    const reader = this.#consumer();
    if (reader.holding) reader.release();
    const off = reader.next();
    if (off < 0) {
      // Padding or aborted frames skipped on the way: give them back now, not at the next call
      // (a producer may be waiting for exactly that room while this consumer goes to sleep).
      if (reader.holding) reader.release();
      return null;
    }
    const end = off + reader.length;
    return copy ? this.#bytes.slice(off, end) : this.#bytes.subarray(off, end);
  }

  /**
   * The next message, blocking the thread until one arrives (for workers
   * and dedicated processes). Throws ERR_TIMEOUT, ERR_PEER_GONE (timed out
   * and no producer is alive), or ERR_CLOSED when the channel was ended and
   * is empty.
   */
  receive(options?: ReceiveOptions): Uint8Array {
    validateOptions(options, ["timeoutMs", "timeout", "copy"], "receive");
    const timeout = timeoutOf(options);
    const first = this.tryReceive(options);
    if (first) return first;
    const deadline = timeout < 0 ? Infinity : performance.now() + timeout;
    for (;;) {
      const left = this.#receiveWaitLeft(options, deadline, timeout);
      if (typeof left !== "number") return left; // the channel was ended: what was left in it
      const slice = this.#ring.multi ? Math.min(left, WAIT_SLICE_MS) : left;
      this.#dataBell.waitUntil(this.#reader!.dataReady(this.#isClosed), {
        strategy: this.strategy,
        ...(this.#spin === undefined ? {} : { spin: this.#spin }),
        ...(slice === Infinity ? {} : { timeoutMs: slice }),
      });
      const m = this.tryReceive(options);
      if (m) return m;
    }
  }

  /**
   * The next message, waiting without blocking the event loop: it polls
   * once per turn of the event loop for a few tens of microseconds (the
   * whole wait with the "spin" strategy), then sleeps on one of the addon's
   * waiter threads, never on libuv's pool. Rejects like {@link receive}, or
   * with ERR_ABORTED when the signal fires.
   */
  async receiveAsync(options?: ReceiveAsyncOptions): Promise<Uint8Array> {
    validateOptions(options, ["timeoutMs", "timeout", "copy", "signal"], "receiveAsync");
    const timeout = timeoutOf(options);
    const signal = checkSignal(options?.signal);
    if (signal?.aborted) throw new MmapError("ERR_ABORTED", "the receive was aborted", { cause: signal.reason });
    const first = this.tryReceive(options);
    if (first) return first;
    const deadline = timeout < 0 ? Infinity : performance.now() + timeout;
    for (;;) {
      const left = this.#receiveWaitLeft(options, deadline, timeout);
      if (typeof left !== "number") return left; // the channel was ended: what was left in it
      await this.#waitAsync(this.#dataBell, this.#reader!.dataReady(this.#isClosed), Math.min(left, WAIT_SLICE_MS), signal);
      const m = this.tryReceive(options);
      if (m) return m;
    }
  }

  /**
   * Batch draining: calls `onMessage` for every message waiting now (up to
   * `max`), then gives their space back in one step. Each view is valid
   * only during its call. Returns the number of messages.
   */
  drain(onMessage: (message: Uint8Array) => void, max = Infinity): number {
    if (typeof onMessage !== "function") throw invalidArg(`onMessage must be a function, got ${describe(onMessage)}`);
    if (max !== Infinity) checkInteger("max", max);
    const reader = this.#consumer();
    if (reader.holding) reader.release();
    let count = 0;
    try {
      while (count < max) {
        const off = reader.next();
        if (off < 0) break;
        count++;
        onMessage(this.#bytes.subarray(off, off + reader.length));
      }
    } finally {
      if (!this.#closed && reader.holding) reader.release();
    }
    return count;
  }

  /**
   * `for await (const message of channel)`: every message, waiting without
   * blocking the event loop; ends when the channel is ended (and drained)
   * or this handle is closed. Each message is valid until the next one.
   */
  [Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    return this.#messages(undefined);
  }

  /**
   * The messages, for `for await`, with the options of {@link receiveAsync}:
   * each wait for the next message is bounded by `timeoutMs` and then rejects
   * like receiveAsync (ERR_PEER_GONE when no producer process is alive, so
   * a loop whose producer died ends with an error instead of waiting
   * forever; ERR_TIMEOUT when a live producer sent nothing), or `signal`
   * (ERR_ABORTED). Ends, like `for await (… of channel)`, once the channel
   * is ended and drained or this handle is closed.
   *
   * ```ts
   * for await (const m of channel.messages({ timeoutMs: 10_000 })) handle(m);
   * ```
   */
  messages(options?: ReceiveAsyncOptions): AsyncGenerator<Uint8Array, void, undefined> {
    if (options !== undefined) {
      validateOptions(options, ["timeoutMs", "timeout", "copy", "signal"], "messages");
      timeoutOf(options);
      checkCopy(options);
      checkSignal(options.signal);
    }
    return this.#messages(options);
  }

  async *#messages(options: ReceiveAsyncOptions | undefined): AsyncGenerator<Uint8Array, void, undefined> {
    for (;;) {
      let message: Uint8Array | null;
      try {
        message = this.tryReceive(options?.copy === undefined ? undefined : { copy: options.copy }) ?? (await this.receiveAsync(options));
      } catch (error) {
        if (error instanceof MmapError && error.code === "ERR_CLOSED") return;
        throw error;
      }
      yield message;
    }
  }

  // ------------------------------------------------------------ inspection

  /** A snapshot of the channel's state (see {@link ChannelStats}). */
  stats(): ChannelStats {
    this.#check();
    return collectStats(this.#ring, this.#ring, this.#consumerAttached(), this.path);
  }

  /**
   * Whether the other side is there: for the consumer, some producer process
   * is alive; for a producer, a consumer is attached. For a handle that has
   * not sent or received yet: either.
   */
  peerAlive(): boolean {
    this.#check();
    if (this.#reader) return this.#liveProducers() > 0;
    if (this.#writer) return this.#consumerAttached();
    return this.#consumerAttached() || this.#liveProducers() > 0;
  }

  /**
   * Leaves the channel: gives back received messages and any claim, releases
   * the consumer lock and the producer slot, and unmaps (every view this
   * handle gave out becomes empty). The channel lives on for other handles.
   * Pending waits reject with ERR_CLOSED. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    try {
      this.#writer?.abortClaim();
      // The slot is left once no async wait of this handle is pending (in #unmap): a waiter still
      // counted in the shared space-waiter count must belong to a live slot, or a consumer could
      // clear the count under it (see forgetDeadWaiters) and its late decrement would drive it below 0.
      this.#reader?.leave();
    } finally {
      this.#closed = true;
      this.#closing.abort();
      if (this.#asyncWaits === 0) this.#unmap();
    }
  }

  /** {@link close}, for `using channel = openChannel(…)`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // ------------------------------------------------------------- internals

  /** This handle's producer side, after the checks every send makes; joins the producers on first use. */
  #producer(n: number): RingWriter {
    if (this.#closed) throw this.#closedError();
    if (this.#writer?.claiming) throw new MmapError("ERR_BUSY", "a claim is outstanding: commit() or abortClaim() it first");
    if (n > this.maxMessageLength)
      throw new MmapError("ERR_TOO_LARGE", `a message of ${n} bytes does not fit: the largest is ${this.maxMessageLength} (capacity − ${this.capacity - this.maxMessageLength})`, {
        path: this.path,
      });
    if (this.#words[ENDED_I32] !== 0) throw this.#closedError("the channel was ended");
    return (this.#writer ??= new RingWriter(this.#ring, this.#dataBell));
  }

  /** This handle's consumer side; becomes the consumer on first use. */
  #consumer(): RingReader {
    if (this.#closed) throw this.#closedError();
    return (this.#reader ??= new RingReader(this.#ring, this.#fd, this.#spaceBell));
  }

  #lengthsOf(messages: readonly ChannelData[]): number[] {
    if (!Array.isArray(messages)) throw invalidArg(`messages must be an array, got ${describe(messages)}`);
    return messages.map((m) => payloadLength(m));
  }

  /** Sends what fits of messages[from…] (all lengths checked first); returns how many. */
  #sendSome(messages: readonly ChannelData[], lengths: readonly number[], from: number): number {
    if (from === messages.length) {
      this.#check();
      return 0;
    }
    let longest = 0;
    for (let i = from; i < lengths.length; i++) longest = Math.max(longest, lengths[i]!);
    return this.#producer(longest).sendBatch(messages, lengths, from);
  }

  /** Blocks until `attempt()` succeeds, waiting on the space doorbell for room for a `frame()`-byte frame between tries. */
  #waitForRoom(frame: () => number, timeout: number, attempt: () => boolean): void {
    const deadline = timeout < 0 ? Infinity : performance.now() + timeout;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) throw this.#sendTimeout(timeout);
      const writer = this.#writer!;
      writer.waitingForSpace(() =>
        this.#spaceBell.waitUntil(writer.spaceReady(frame(), this.#isClosed), {
          strategy: this.strategy,
          ...(this.#spin === undefined ? {} : { spin: this.#spin }),
          ...(left === Infinity ? {} : { timeoutMs: left }),
        }),
      );
      if (attempt()) return;
    }
  }

  /**
   * Waits until `ready()` or `timeout` ms. First it polls once per turn of
   * the event loop (other callbacks run in between) for ASYNC_POLL_MS, or the
   * whole time with the "spin" strategy: a peer that answers quickly is seen
   * without any wake-up, on either side. Then it sleeps on one of the addon's
   * waiter threads.
   */
  async #waitAsync(bell: Doorbell, ready: () => boolean, timeout: number, signal: AbortSignal | undefined): Promise<void> {
    this.#asyncWaits++;
    try {
      // "adaptive": how long to poll is learned per direction, as for a synchronous wait (see SpinBudget in ../wait.ts).
      const budget = this.strategy !== "adaptive" ? undefined : bell === this.#dataBell ? this.#asyncDataPoll : this.#asyncSpacePoll;
      const start = performance.now();
      const pollMs =
        this.strategy === "spin" ? timeout : budget ? budget.next(Math.min(timeout, ASYNC_POLL_MS), 0) : Math.min(timeout, ASYNC_POLL_MS);
      while (performance.now() < start + pollMs) {
        await nextTurn();
        if (this.#closed) throw this.#closedError();
        if (signal?.aborted) throw new MmapError("ERR_ABORTED", "the wait was aborted", { cause: signal.reason });
        if (ready()) {
          budget?.hit(performance.now() - start);
          return;
        }
      }
      budget?.miss();
      if (this.strategy === "spin") return;
      const combined = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
      await bell.waitUntilAsync(ready, { ...(timeout === Infinity ? {} : { timeoutMs: timeout }), signal: combined });
    } catch (error) {
      if (this.#closed) throw this.#closedError();
      throw error;
    } finally {
      if (--this.#asyncWaits === 0 && this.#closed) this.#unmap();
    }
    if (this.#closed) throw this.#closedError();
  }

  #unmap(): void {
    this.#writer?.leave();
    lockReaper.unregister(this);
    this.#file.close();
    fs.closeSync(this.#fd);
  }

  #check(): void {
    if (this.#closed) throw this.#closedError();
  }

  #closedError(message = "the channel handle is closed"): MmapError {
    return new MmapError("ERR_CLOSED", message, { path: this.path });
  }

  #sendTimeout(timeout: number): MmapError {
    if (this.#words[ENDED_I32] !== 0) return this.#closedError("the channel was ended");
    if (!this.#consumerAttached())
      return new MmapError("ERR_PEER_GONE", `no room in the channel after ${timeout} ms, and no consumer is attached`, { path: this.path });
    return new MmapError("ERR_TIMEOUT", `no room in the channel after ${timeout} ms`, { path: this.path });
  }

  /**
   * Before each wait of a receive: once the channel was ended, what is left
   * in it (else ERR_CLOSED); past the deadline, ERR_TIMEOUT or ERR_PEER_GONE;
   * otherwise how many ms are left to wait.
   */
  #receiveWaitLeft(options: TryReceiveOptions | undefined, deadline: number, timeout: number): Uint8Array | number {
    if (this.#words[ENDED_I32] !== 0) {
      const last = this.tryReceive(options);
      if (last) return last;
      throw this.#closedError("the channel was ended");
    }
    const left = deadline - performance.now();
    if (left <= 0) throw this.#receiveTimeout(timeout);
    return left;
  }

  #receiveTimeout(timeout: number): MmapError {
    if (this.#liveProducers() === 0)
      return new MmapError("ERR_PEER_GONE", `no message after ${timeout} ms, and no producer process is alive`, { path: this.path });
    return new MmapError("ERR_TIMEOUT", `no message after ${timeout} ms`, { path: this.path });
  }

  #consumerAttached(): boolean {
    return this.#reader !== undefined || probeConsumer(this.#fd);
  }

  /** Live producer processes other than this handle. */
  #liveProducers(): number {
    let n = 0;
    for (let s = 0; s < SLOT_COUNT; s++) if (s !== this.#ring.ownSlot && slotAlive(this.#ring, s)) n++;
    return n;
  }
}
