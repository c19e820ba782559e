/**
 * Cross-process wait/notify, shared by the channel and the log.
 *
 * A doorbell is two 32-bit words in shared memory: `seq`, the futex word, and
 * `waiters`, how many threads (in any process) are parked on it. A waiter
 * announces itself, re-checks its condition, and only then sleeps on `seq`; a
 * publisher makes its data visible, then reads `waiters` and rings (bumps
 * `seq` and wakes) only when somebody is parked. All accesses are sequentially
 * consistent Atomics, so either the waiter sees the data or the publisher sees
 * the waiter: no lost wake-ups, and a publisher pays one atomic load when
 * nobody waits.
 *
 * The futex is a shared one (keyed by the physical page), so it works across
 * processes that map the same file or memfd; V8's Atomics.wait cannot, as it
 * needs a SharedArrayBuffer and is process-local.
 */
import { availableParallelism } from "node:os";
import { MmapError, invalidArg, sys } from "./errors.ts";
import { native } from "./native.ts";

/**
 * How a thread waits for a condition:
 * - `"spin"`: busy-poll (lowest latency, burns a core);
 * - `"yield"`: poll, then poll with sched_yield between checks;
 * - `"futex"` (the doorbell's default): poll `spin` times, then sleep in the kernel until woken;
 * - `"adaptive"` (the channel's default): like "futex", but how long it
 *   polls adapts to whether polling has been paying off (see SpinBudget):
 *   it polls when the peer answers from another CPU, and hardly at all when
 *   the peer shares this thread's CPU or is kept off its own by other load.
 */
export type WaitStrategy = "spin" | "yield" | "futex" | "adaptive";

/** Options of {@link Doorbell.waitUntil}. */
export interface WaitOptions {
  /** How to wait: see {@link WaitStrategy}. @default "futex" */
  strategy?: WaitStrategy;
  /**
   * Polls before yielding or sleeping. With "adaptive": the most it polls.
   * @default 2000 (a few µs); with "adaptive", about 100 µs of polls
   */
  spin?: number;
  /**
   * Milliseconds; undefined or Infinity waits forever.
   * @default Infinity
   */
  timeoutMs?: number;
  /** @deprecated Use `timeoutMs` (every duration option of memmap ends in `Ms`); `timeout` goes in the next minor version. */
  timeout?: number;
}

/** Options of {@link Doorbell.waitUntilAsync}. */
export interface AsyncWaitOptions {
  /**
   * Milliseconds; undefined or Infinity waits forever.
   * @default Infinity
   */
  timeoutMs?: number;
  /** @deprecated Use `timeoutMs` (every duration option of memmap ends in `Ms`); `timeout` goes in the next minor version. */
  timeout?: number;
  /** Ends the wait with MmapError ERR_ABORTED when it fires. @default undefined (no signal) */
  signal?: AbortSignal;
  /** Synchronous polls before parking on a waiter thread. @default 200 */
  spin?: number;
}

const SLICE_CHECK = 1024; // polls between clock reads in unbounded spins
/**
 * A synchronous futex sleep lasts at most this long before JavaScript runs
 * again. V8 can only stop a thread that runs JavaScript, so without slices a
 * worker parked with no timeout would block worker.terminate() and
 * process.exit() (which joins workers) forever. A wake still returns at once.
 */
const SYNC_SLICE_MS = 50;

export function checkTimeout(timeout: number | undefined, name = "timeoutMs"): number {
  if (timeout === undefined || timeout === Infinity) return -1;
  if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0)
    throw invalidArg(`${name} must be a non-negative number of milliseconds, got ${String(timeout)}`);
  return timeout;
}

/**
 * The wait of `options` in milliseconds (-1: forever), from `timeoutMs` or
 * its deprecated alias `timeout`. Every duration option of memmap ends in
 * `Ms` (`abandonTimeoutMs`, `flushIntervalMs`, `maxAgeMs`, the bridge's), so
 * the waits' `timeout` became `timeoutMs`; `timeout` is still read for one
 * minor version. Errors name the option that was passed.
 */
export function timeoutOf(options: { timeoutMs?: number | undefined; timeout?: number | undefined } | undefined): number {
  if (options?.timeout === undefined) return checkTimeout(options?.timeoutMs, "timeoutMs");
  if (options.timeoutMs !== undefined) throw invalidArg("pass timeoutMs, not both timeoutMs and timeout (its deprecated alias)");
  return checkTimeout(options.timeout, "timeout");
}

export function checkStrategy(strategy: unknown, fallback: WaitStrategy = "futex"): WaitStrategy {
  if (strategy === undefined) return fallback;
  if (strategy === "spin" || strategy === "yield" || strategy === "futex" || strategy === "adaptive") return strategy;
  throw invalidArg(`strategy must be "spin", "yield", "futex" or "adaptive", got ${JSON.stringify(strategy)}`);
}

/*
 * The adaptive strategy polls for a budget that it learns per doorbell handle
 * (so per direction of a channel, per process):
 * - a wait that polling ended after i polls raises the budget to 4·i (a peer
 *   that answers in i polls is caught next time, even a little late);
 * - a wait that polled its budget in vain and slept halves it, down to
 *   ADAPTIVE_MIN_NS of polls, or to none when this thread may run on one CPU
 *   only (taskset -c 0: there polling only keeps the peer off the CPU);
 * - while the budget is below the most (`spin`, default ADAPTIVE_MAX_NS of
 *   polls), every probe-th wait polls the most once (a probe). A probe that
 *   sees the condition resets the probe interval to PROBE_EVERY; one that
 *   does not doubles it, up to PROBE_MAX.
 * Polling pays when the peer runs on another CPU and answers within
 * microseconds. It is wasted when the peer was descheduled (a CPU hog beside
 * it), and it delays the peer when both share one CPU (the peer cannot answer
 * while this thread polls). Those misses drive the budget down to a few polls
 * and the probes to rare ones, and then a wait is a futex handoff, which costs
 * no more than a pipe handoff. When both sides sleep, each one's wait includes
 * the other's wake-up; a probe long enough to cover it restarts polling on
 * both sides.
 */
const ADAPTIVE_START = 1000;
/** The least an adaptive wait polls when this thread may run on more than one CPU: a peer in a tight loop answers within it. */
const ADAPTIVE_MIN_NS = 500;
/** The longest an adaptive wait polls (converted to polls with the measured cost of one). */
const ADAPTIVE_MAX_NS = 100_000;
const PROBE_EVERY = 32;
const PROBE_MAX = 256;
/** The adaptive strategy times its polls from this many on (a clock read costs about as much as a few polls). */
const CALIBRATE_AT = 64;

/**
 * The learned polling budget of the adaptive strategy: {@link next} before
 * polling, then {@link hit} with how many polls saw the condition, or
 * {@link miss} when polling gave up.
 */
export class SpinBudget {
  #budget = ADAPTIVE_START;
  #every = PROBE_EVERY;
  #probe = PROBE_EVERY;
  #probing = false;
  #most = ADAPTIVE_START;
  #least = 0;

  /** How many polls this time, at most `most`: the budget, or `most` for a probe. */
  next(most: number, least: number): number {
    this.#most = most;
    this.#least = Math.min(least, most);
    const budget = Math.min(this.#budget, most);
    this.#probing = budget < most && --this.#probe <= 0;
    if (!this.#probing) return budget;
    this.#probe = this.#every;
    return most;
  }

  hit(used: number): void {
    this.#budget = Math.min(this.#most, Math.max(this.#budget, 4 * used));
    if (this.#probing) this.#every = this.#probe = PROBE_EVERY;
  }

  miss(): void {
    if (this.#probing) this.#every = this.#probe = Math.min(PROBE_MAX, this.#every * 2);
    else this.#budget = Math.max(this.#least, this.#budget / 2);
  }
}

/**
 * A cross-process wait/notify pair of 32-bit words (`seq`, `waiters`) in
 * shared memory; see the module comment. The channel and the log wait with it.
 */
export class Doorbell {
  readonly #buffer: ArrayBuffer;
  readonly #words: Int32Array;
  readonly #seqIndex: number;
  readonly #waitersIndex: number;
  readonly #seqByteOffset: number;
  /** The adaptive strategy's polls (per handle: each side of a channel learns its own). */
  readonly #budget = new SpinBudget();
  #waits = 0;
  #manyCpus = true;
  /** What one poll of the waits on this doorbell costs, as last measured (ns). */
  #nsPerPoll = 20;

  /** `seqByteOffset` and `waitersByteOffset` are 4-byte aligned offsets into `buffer`. */
  constructor(buffer: ArrayBuffer, seqByteOffset: number, waitersByteOffset: number) {
    if (Object.prototype.toString.call(buffer) !== "[object ArrayBuffer]")
      throw invalidArg("a doorbell needs an ArrayBuffer (e.g. mappedFile.buffer)");
    for (const [name, offset] of [["seqByteOffset", seqByteOffset], ["waitersByteOffset", waitersByteOffset]] as const) {
      if (!Number.isSafeInteger(offset) || offset < 0)
        throw invalidArg(`${name} must be a non-negative integer, got ${String(offset)}`);
      if (offset % 4 !== 0) throw new MmapError("ERR_MISALIGNED", "doorbell words must be 4-byte aligned");
      if (offset + 4 > buffer.byteLength)
        throw new MmapError("ERR_OUT_OF_RANGE", `${name} ${offset} leaves no room for a 4-byte word in ${buffer.byteLength} bytes`);
    }
    this.#buffer = buffer;
    // Only as many words as the two need: `byteLength >>> 2` was 0 for a 4 GiB buffer, which looked unmapped.
    this.#words = new Int32Array(buffer, 0, Math.max(seqByteOffset, waitersByteOffset) / 4 + 1);
    this.#seqIndex = seqByteOffset / 4;
    this.#waitersIndex = waitersByteOffset / 4;
    this.#seqByteOffset = seqByteOffset;
  }

  /** Call after publishing: wakes every parked waiter, if there is one. */
  ring(): void {
    if (Atomics.load(this.#liveWords(), this.#waitersIndex) > 0) this.ringAlways();
  }

  /** Wakes parked waiters unconditionally (e.g. on close, or to unstick a peer). */
  ringAlways(): void {
    Atomics.add(this.#liveWords(), this.#seqIndex, 1);
    native.futexWake(this.#buffer, this.#seqByteOffset, 0x7fffffff);
  }

  /** Parked waiters, as announced in shared memory (a dead process may leave one behind). */
  get waiters(): number {
    return Atomics.load(this.#liveWords(), this.#waitersIndex);
  }

  /**
   * Blocks the thread until `ready()` returns true. Returns false on timeout.
   * `ready` must be cheap and side-effect free; it is called many times
   * (at least every 50 ms while asleep: the sleep is sliced so that
   * worker.terminate() and process.exit() can stop a waiting thread).
   */
  waitUntil(ready: () => boolean, options: WaitOptions = {}): boolean {
    if (ready()) return true;
    const strategy = checkStrategy(options.strategy);
    const timeout = timeoutOf(options);
    const deadline = timeout < 0 ? Infinity : performance.now() + timeout;
    if (strategy === "adaptive") {
      const most = options.spin ?? Math.round(ADAPTIVE_MAX_NS / this.#nsPerPoll);
      // The CPUs this thread may use (a system call of ~0.4 µs): read now and then, as taskset can change them.
      if ((this.#waits++ & 255) === 0) this.#manyCpus = availableParallelism() > 1;
      const least = this.#manyCpus ? Math.round(ADAPTIVE_MIN_NS / this.#nsPerPoll) : 0;
      if (this.#adaptivePoll(ready, most, least)) return true;
    } else {
      const spins = options.spin ?? 2000;
      for (let i = 0; i < spins; i++) if (ready()) return true;
    }
    if (strategy === "spin" || strategy === "yield") {
      for (let i = 1; ; i++) {
        if (ready()) return true;
        if (strategy === "yield") native.yield();
        if (i % SLICE_CHECK === 0 && performance.now() >= deadline) return ready();
      }
    }
    const words = this.#liveWords();
    Atomics.add(words, this.#waitersIndex, 1);
    try {
      for (;;) {
        const seq = Atomics.load(words, this.#seqIndex);
        if (ready()) return true;
        // No clock read without a deadline: on a slow clock source it costs a few hundred ns of every handoff.
        const left = deadline === Infinity ? Infinity : deadline - performance.now();
        if (left <= 0) return false;
        sys(undefined, () => native.futexWait(this.#buffer, this.#seqByteOffset, seq, Math.min(SYNC_SLICE_MS, Math.ceil(left))));
      }
    } finally {
      if (words.length > 0) Atomics.sub(words, this.#waitersIndex, 1);
    }
  }

  /**
   * Resolves true once `ready()` holds, false on timeout; rejects with
   * ERR_ABORTED if the signal fires. The event loop stays free: the sleep
   * happens on one of the addon's waiter threads (with futex_waitv, up to
   * 127 waits share one), never on libuv's pool. No wait queues for a thread,
   * so every timeout and signal fires however many waits are parked.
   */
  async waitUntilAsync(ready: () => boolean, options: AsyncWaitOptions = {}): Promise<boolean> {
    const { signal } = options;
    if (signal?.aborted) throw aborted(signal);
    if (ready()) return true;
    const timeout = timeoutOf(options);
    const deadline = timeout < 0 ? Infinity : performance.now() + timeout;
    const spins = options.spin ?? 200;
    for (let i = 0; i < spins; i++) if (ready()) return true;
    const words = this.#liveWords();
    Atomics.add(words, this.#waitersIndex, 1);
    try {
      for (;;) {
        // The memory may have been unmapped (its mapping closed) while parked.
        if (words.length === 0) throw closed();
        const seq = Atomics.load(words, this.#seqIndex);
        if (ready()) return true;
        const left = deadline - performance.now();
        if (left <= 0) return false;
        await this.#park(seq, left === Infinity ? -1 : Math.ceil(left), signal);
      }
    } finally {
      if (words.length > 0) Atomics.sub(words, this.#waitersIndex, 1);
    }
  }

  /** The adaptive strategy's polling (see ADAPTIVE_START): true when `ready()` held within the budget. */
  #adaptivePoll(ready: () => boolean, most: number, least: number): boolean {
    const budget = this.#budget.next(most, least);
    // The clock is read only once a wait has lasted CALIBRATE_AT polls (it costs about as much as a few polls).
    let since = 0;
    for (let i = 1; i <= budget; i++) {
      if (i === CALIBRATE_AT) since = performance.now();
      if (ready()) {
        if (since > 0) this.#calibrate(i - CALIBRATE_AT, performance.now() - since);
        this.#budget.hit(i);
        return true;
      }
    }
    if (since > 0) this.#calibrate(budget - CALIBRATE_AT, performance.now() - since);
    this.#budget.miss();
    return false;
  }

  /** Learns what one poll costs from `polls` polls that took `ms` (a wait preempted meanwhile counts little: the mean moves by a quarter, and at most 4×). */
  #calibrate(polls: number, ms: number): void {
    if (polls < CALIBRATE_AT) return;
    const ns = Math.min((ms * 1e6) / polls, 4 * this.#nsPerPoll);
    this.#nsPerPoll = Math.max(1, this.#nsPerPoll + (ns - this.#nsPerPoll) / 4);
  }

  /** The words, or ERR_CLOSED once the memory was unmapped (its ArrayBuffer detached). */
  #liveWords(): Int32Array {
    if (this.#words.length === 0) throw closed();
    return this.#words;
  }

  #park(seq: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(aborted(signal));
        return;
      }
      let settled = false;
      const onAbort = (): void => {
        if (settled) return;
        settled = true;
        native.cancelWait(request);
        reject(aborted(signal));
      };
      const request = native.waitAsync(this.#buffer, this.#seqByteOffset, seq, timeoutMs, () => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

function closed(): MmapError {
  return new MmapError("ERR_CLOSED", "the doorbell's memory was unmapped (its mapping was closed)");
}

function aborted(signal: AbortSignal | undefined): MmapError {
  return new MmapError("ERR_ABORTED", "the wait was aborted", { cause: signal?.reason });
}
