/**
 * The sending side of a channel handle: its producer slot, its claims on
 * the ring, and writing frames (see ./channel.ts for the protocol).
 *
 * - One producer: it alone writes the tail, so it keeps the tail locally,
 *   writes frames past the published tail and then publishes (once per
 *   message, or once per batch). Nothing past the tail is ever read, so a
 *   producer killed mid-send leaves nothing to clean up.
 * - Many producers: a producer records the claim it is about to take in its
 *   slot, takes it with a compare-and-swap of the 64-bit tail, then writes
 *   each frame's length negated, its payload, and its length (the commit).
 *   Nothing past a frame's header is written before the header: a length of
 *   0 means the frame's bytes are untouched.
 */
import { MmapError } from "../core/errors.ts";
import { FRAME_HEADER_LENGTH, FrameType, claimFrame, commitFrameRelease } from "../core/framing.ts";
import { native } from "../core/native.ts";
import type { Doorbell } from "../core/wait.ts";
import {
  FRAME_CHECKSUM_OFFSET,
  HEADER_LENGTH,
  SLOT_CLAIM_LENGTH_OFFSET,
  SLOT_SPACE_WAITS_OFFSET,
  SLOT_CLAIM_START_OFFSET,
  SLOT_COUNT,
  SLOT_LOCK_OFFSET,
  SLOT_PID_NS_OFFSET,
  SLOT_PID_OFFSET,
  SLOT_START_OFFSET,
  advance,
  distance,
  isPosition,
  lowDistance,
  lowWord,
  retreat,
  ringIndex,
  slotOffset,
} from "./layout.ts";
import {
  ENDED_I32,
  HEAD_LOW_I32,
  SPACE_WAITERS_I32,
  TAIL_I64,
  corruptError,
  forgetDeadWaiters,
  positions,
  readSlot,
  setFrameType,
  storePosition,
  type Ring,
} from "./file.ts";
import { ownPid, ownPidNamespace, ownStartTime } from "./liveness.ts";

/** What a message can be: bytes in any view, or a string (sent as UTF-8, encoded straight into the ring). */
export type ChannelData = string | ArrayBufferView | ArrayBuffer;

/**
 * Bytes a DATA frame with an `n`-byte payload takes in the ring (n is at most
 * capacity - 8 < 2^30), its payload starting at `payloadOffset` (12 when
 * frames carry a CRC32C).
 */
export function frameLength(n: number, payloadOffset: number = FRAME_HEADER_LENGTH): number {
  return (n + payloadOffset + 7) & -8;
}

const encoder = new TextEncoder();

export class RingWriter {
  readonly #ring: Ring;
  readonly #capacity: number;
  readonly #multi: boolean;
  readonly #bytes: Uint8Array;
  readonly #words: Int32Array;
  readonly #longs: BigInt64Array;
  readonly #dataBell: Doorbell;
  /** Where a DATA frame's payload starts: 8, or 12 when frames carry a CRC32C of it. */
  readonly #payloadOffset: number;
  readonly #checksum: boolean;
  #slot = -1;
  #slotClaimLengthIndex = 0;
  #slotClaimStartIndex = 0;
  #slotSpaceWaitsIndex = 0;
  /** One producer: the tail after the frames written so far (it alone writes the tail). */
  #tail = 0;
  #tailIndex = 0;
  #publishedTail = 0;
  /** The consumer position as last read: room up to it + capacity is free. */
  #headCache = 0;
  /** Many producers: the position of the frame #reserveMulti() returned last. */
  #reserved = 0;
  /** Offset of a frame handed out by claim() and not yet committed, or -1; and its position. */
  #claimOffset = -1;
  #claimPosition = 0;
  #claimLength = 0;

  /** Takes a producer slot (ERR_BUSY when none is free or held by a dead process). */
  constructor(ring: Ring, dataBell: Doorbell) {
    this.#ring = ring;
    this.#capacity = ring.capacity;
    this.#multi = ring.multi;
    this.#bytes = ring.v.bytes;
    this.#words = ring.v.words;
    this.#longs = ring.v.longs;
    this.#dataBell = dataBell;
    this.#payloadOffset = ring.payloadOffset;
    this.#checksum = ring.checksum;
    this.#register();
  }

  /** This handle's slot in the producer table. */
  get slot(): number {
    return this.#slot;
  }

  /** True while a claim() is out. */
  get claiming(): boolean {
    return this.#claimOffset >= 0;
  }

  /** Sends one message of `n` bytes if there is room now. */
  send(data: ChannelData, n: number): boolean {
    return this.#multi ? this.#sendMulti(data, n) : this.#sendSingle(data, n);
  }

  /** Sends the longest prefix of messages[from…] that fits now; returns how many. */
  sendBatch(messages: readonly ChannelData[], lengths: readonly number[], from: number): number {
    return this.#multi ? this.#sendBatchMulti(messages, lengths, from) : this.#sendBatchSingle(messages, lengths, from);
  }

  /** Reserves room for an `n`-byte message; returns a view of its payload, or null when full. */
  claim(n: number): Uint8Array | null {
    const len = this.#payloadOffset + n;
    const frame = frameLength(n, this.#payloadOffset);
    const off = this.#multi ? this.#reserveMulti(frame) : this.#reserveSingle(frame);
    if (off < 0) return null;
    const position = this.#multi ? this.#reserved : this.#tail;
    if (this.#multi) {
      setFrameType(this.#words, off, FrameType.DATA, position, len);
      claimFrame(this.#words, off, len);
    }
    this.#claimOffset = off;
    this.#claimPosition = position;
    this.#claimLength = n;
    return this.#bytes.subarray(off + this.#payloadOffset, off + len);
  }

  /** The claim's length (what commit() publishes by default). */
  get claimLength(): number {
    return this.#claimLength;
  }

  /** Publishes the claimed frame with `n` bytes of payload (n ≤ the claimed length). */
  commit(n: number): void {
    const off = this.#claimOffset;
    const position = this.#claimPosition;
    const len = this.#payloadOffset + n;
    const used = frameLength(n, this.#payloadOffset);
    this.#sum(off, n);
    // The check covers the length committed now, which may be shorter than the one claimed.
    setFrameType(this.#words, off, FrameType.DATA, position, len);
    if (this.#multi) {
      const claimed = frameLength(this.#claimLength, this.#payloadOffset);
      if (used < claimed) {
        // The unused end becomes padding, committed first: the consumer never meets unwritten bytes.
        setFrameType(this.#words, off + used, FrameType.PADDING, advance(position, used), claimed - used);
        commitFrameRelease(this.#words, off + used, claimed - used);
      }
      commitFrameRelease(this.#words, off, len);
    } else {
      this.#words[off >> 2] = len;
      this.#advanceTail(used);
      this.#publishTail();
    }
    this.#claimOffset = -1;
    this.#dataBell.ring();
  }

  /** Gives up the claim: with many producers it becomes an ABORTED frame, which the consumer skips. */
  abortClaim(): void {
    const off = this.#claimOffset;
    if (off < 0) return;
    this.#claimOffset = -1;
    if (this.#multi) {
      const frame = frameLength(this.#claimLength, this.#payloadOffset);
      setFrameType(this.#words, off, FrameType.ABORTED, this.#claimPosition, frame);
      commitFrameRelease(this.#words, off, frame);
      this.#dataBell.ring();
    }
  }

  /** Adds `delta` to this producer's share of the space-waiter count (around each doorbell wait; see SLOT_SPACE_WAITS_OFFSET). */
  countSpaceWait(delta: number): void {
    if (this.#words.length > 0) Atomics.add(this.#words, this.#slotSpaceWaitsIndex, delta); // unmapped under a wait: nothing to count
  }

  /** Runs a doorbell wait for space counted in this producer's share (see SLOT_SPACE_WAITS_OFFSET). */
  waitingForSpace<T>(wait: () => T): T {
    this.countSpaceWait(1);
    try {
      return wait();
    } finally {
      this.countSpaceWait(-1);
    }
  }

  /** The same for an asynchronous wait: counted until the promise settles. */
  async waitingForSpaceAsync(wait: () => Promise<void>): Promise<void> {
    this.countSpaceWait(1);
    try {
      await wait();
    } finally {
      this.countSpaceWait(-1);
    }
  }

  /** Gives the slot back (after any claim was committed or aborted): cleared first, then unlocked. */
  leave(): void {
    Atomics.store(this.#words, this.#slotClaimLengthIndex, 0);
    Atomics.store(this.#words, (slotOffset(this.#slot) + SLOT_PID_OFFSET) >> 2, 0);
    native.rangeLock(this.#ring.fd, SLOT_LOCK_OFFSET + this.#slot, false);
    this.#ring.ownSlot = -1;
  }

  /** The test a sender waits on: room for a `frame`-byte frame (or for the padding before it), or `stop()`. */
  spaceReady(frame: number, stop: () => boolean): () => boolean {
    const capacity = this.#capacity;
    const longs = this.#longs;
    const words = this.#words;
    return () => {
      if (stop() || words[ENDED_I32] !== 0) return true;
      const tail = this.#multi ? Number(Atomics.load(longs, TAIL_I64)) : this.#tail;
      const index = ringIndex(tail, capacity);
      const need = index + frame > capacity ? capacity - index : frame;
      return lowDistance(Atomics.load(words, HEAD_LOW_I32), lowWord(tail)) + need <= capacity;
    };
  }

  /**
   * Takes a slot: a free one first, else one whose producer is gone. Its lock
   * is taken first: a slot whose lock someone holds is a live producer's,
   * and one whose lock we hold is ours to fill in.
   */
  #register(): void {
    const count = this.#multi ? SLOT_COUNT : 1;
    const words = this.#words;
    const v = this.#ring.v;
    const fd = this.#ring.fd;
    let taken = -1;
    for (let pass = 0; pass < 2 && taken < 0; pass++) {
      for (let s = 0; s < count && taken < 0; s++) {
        const pid = readSlot(v, s).pid;
        if (pass === 0 && pid !== 0) continue; // free slots first
        if (!native.rangeLock(fd, SLOT_LOCK_OFFSET + s, true)) continue;
        // A negative pid marks a slot being set up; it turns positive once the identity is complete.
        if (Atomics.compareExchange(words, (slotOffset(s) + SLOT_PID_OFFSET) >> 2, pid, -ownPid) === pid) taken = s;
        else native.rangeLock(fd, SLOT_LOCK_OFFSET + s, false);
      }
    }
    if (taken < 0)
      throw new MmapError(
        "ERR_BUSY",
        this.#multi
          ? `all ${SLOT_COUNT} producer slots are held by live processes`
          : `another live producer (pid ${Math.abs(readSlot(v, 0).pid)}) is attached to this single-producer channel`,
        { path: this.#ring.path },
      );
    const base = slotOffset(taken);
    Atomics.store(words, (base + SLOT_PID_NS_OFFSET) >> 2, ownPidNamespace | 0);
    v.header.setFloat64(base + SLOT_START_OFFSET, ownStartTime, true);
    this.#slotClaimLengthIndex = (base + SLOT_CLAIM_LENGTH_OFFSET) >> 2;
    this.#slotClaimStartIndex = (base + SLOT_CLAIM_START_OFFSET) >> 3;
    Atomics.store(words, this.#slotClaimLengthIndex, 0);
    this.#slotSpaceWaitsIndex = (base + SLOT_SPACE_WAITS_OFFSET) >> 2;
    Atomics.store(words, this.#slotSpaceWaitsIndex, 0); // a killed holder's, before the slot shows alive
    Atomics.store(words, (base + SLOT_PID_OFFSET) >> 2, ownPid);
    this.#slot = taken;
    this.#ring.ownSlot = taken;
    let head: number;
    let tail: number;
    try {
      ({ head, tail } = positions(this.#longs, this.#capacity, this.#ring.path));
    } catch (error) {
      this.leave();
      throw error;
    }
    this.#headCache = head;
    if (!this.#multi) {
      // The previous single producer is gone: continue from the published tail; nobody else waits for space.
      this.#tail = this.#publishedTail = tail;
      this.#tailIndex = ringIndex(tail, this.#capacity);
      Atomics.store(words, SPACE_WAITERS_I32, 0);
    } else forgetDeadWaiters(this.#ring);
  }

  /** With FLAG_CHECKSUM: stores the CRC32C of the `n`-byte payload of the frame at `off`. */
  #sum(off: number, n: number): void {
    if (this.#checksum)
      this.#words[(off + FRAME_CHECKSUM_OFFSET) >> 2] = native.crc32c(this.#bytes.buffer as ArrayBuffer, off + this.#payloadOffset, n, 0);
  }

  #writePayload(off: number, data: ChannelData, n: number): void {
    if (n === 0) return;
    if (data instanceof Uint8Array) this.#bytes.set(data, off);
    else if (typeof data === "string") encoder.encodeInto(data, this.#bytes.subarray(off, off + n));
    else if (ArrayBuffer.isView(data)) this.#bytes.set(new Uint8Array(data.buffer, data.byteOffset, n), off);
    else this.#bytes.set(new Uint8Array(data, 0, n), off);
  }

  // one producer ---------------------------------------------------------------

  #sendSingle(data: ChannelData, n: number): boolean {
    const len = this.#payloadOffset + n;
    const frame = (len + 7) & -8;
    const off = this.#reserveSingle(frame);
    if (off < 0) return false;
    setFrameType(this.#words, off, FrameType.DATA, this.#tail, len);
    this.#writePayload(off + this.#payloadOffset, data, n);
    this.#sum(off, n);
    this.#words[off >> 2] = len; // the tail store below publishes the frame
    this.#advanceTail(frame);
    this.#publishTail();
    this.#dataBell.ring();
    return true;
  }

  #sendBatchSingle(messages: readonly ChannelData[], lengths: readonly number[], from: number): number {
    let i = from;
    for (; i < messages.length; i++) {
      const n = lengths[i]!;
      const len = this.#payloadOffset + n;
      const frame = (len + 7) & -8;
      const off = this.#reserveSingle(frame);
      if (off < 0) break;
      setFrameType(this.#words, off, FrameType.DATA, this.#tail, len);
      this.#writePayload(off + this.#payloadOffset, messages[i]!, n);
      this.#sum(off, n);
      this.#words[off >> 2] = len;
      this.#advanceTail(frame);
    }
    if (i > from) {
      this.#publishTail();
      this.#dataBell.ring();
    }
    return i - from;
  }

  /** Room for a `frame`-byte frame at the tail, after padding to the ring's end if it would not fit there. */
  #reserveSingle(frame: number): number {
    let index = this.#tailIndex;
    if (index + frame > this.#capacity) {
      const pad = this.#capacity - index;
      if (!this.#roomSingle(pad)) return -1;
      const off = HEADER_LENGTH + index;
      setFrameType(this.#words, off, FrameType.PADDING, this.#tail, pad);
      this.#words[off >> 2] = pad;
      this.#advanceTail(pad);
      this.#publishTail(); // with the frames a batch wrote before it: all complete
      index = 0;
    }
    if (!this.#roomSingle(frame)) return -1;
    return HEADER_LENGTH + index;
  }

  #roomSingle(bytes: number): boolean {
    if (distance(this.#headCache, this.#tail) + bytes <= this.#capacity) return true;
    // The head is at most capacity behind the published tail: its low half is enough.
    const used = lowDistance(Atomics.load(this.#words, HEAD_LOW_I32), lowWord(this.#publishedTail));
    if (used > this.#capacity)
      throw corruptError(this.#ring, `the consumer position is not within ${this.#capacity} bytes behind the tail ${this.#publishedTail}`);
    this.#headCache = retreat(this.#publishedTail, used);
    return distance(this.#headCache, this.#tail) + bytes <= this.#capacity;
  }

  #advanceTail(bytes: number): void {
    this.#tail = advance(this.#tail, bytes);
    const index = this.#tailIndex + bytes;
    this.#tailIndex = index === this.#capacity ? 0 : index;
  }

  #publishTail(): void {
    storePosition(this.#words, this.#longs, TAIL_I64, this.#publishedTail, this.#tail);
    this.#publishedTail = this.#tail;
  }

  // many producers --------------------------------------------------------------

  #sendMulti(data: ChannelData, n: number): boolean {
    const len = this.#payloadOffset + n;
    const off = this.#reserveMulti((len + 7) & -8);
    if (off < 0) return false;
    setFrameType(this.#words, off, FrameType.DATA, this.#reserved, len);
    claimFrame(this.#words, off, len); // nothing past the header is written before this
    this.#writePayload(off + this.#payloadOffset, data, n);
    this.#sum(off, n);
    commitFrameRelease(this.#words, off, len);
    this.#dataBell.ring();
    return true;
  }

  /**
   * The consumer position, rebuilt from its low half and a tail read just
   * before; NaN when they do not fit together (the tail went stale while
   * the consumer moved on: the caller reads it again, and reports
   * corruption if the tail had not moved).
   */
  #headBehind(tail: number): number {
    const used = lowDistance(Atomics.load(this.#words, HEAD_LOW_I32), lowWord(tail));
    return used <= this.#capacity ? retreat(tail, used) : NaN;
  }

  #loadTail(): bigint {
    const tail = Atomics.load(this.#longs, TAIL_I64);
    if (!isPosition(Number(tail))) throw corruptError(this.#ring, `bad producer position ${tail}`);
    return tail;
  }

  #staleHead(tail: number, staleTail: number): number {
    if (tail === staleTail)
      throw corruptError(this.#ring, `the consumer position is not within ${this.#capacity} bytes behind the producer position ${tail}`);
    return tail;
  }

  /**
   * Claims `need` bytes at the tail with a compare-and-swap. The slot records
   * the claim first, so the consumer can tell a claim whose producer died.
   */
  #casTail(tailBig: bigint, tail: number, need: number): boolean {
    Atomics.store(this.#words, this.#slotClaimLengthIndex, need);
    Atomics.store(this.#longs, this.#slotClaimStartIndex, tailBig);
    if (Atomics.compareExchange(this.#longs, TAIL_I64, tailBig, BigInt(advance(tail, need))) === tailBig) return true;
    Atomics.store(this.#words, this.#slotClaimLengthIndex, 0); // not ours: a stale record must not cover another's claim
    return false;
  }

  #reserveMulti(frame: number): number {
    const capacity = this.#capacity;
    let staleTail = -1;
    for (;;) {
      const tailBig = this.#loadTail();
      const tail = Number(tailBig);
      const index = ringIndex(tail, capacity);
      const pad = index + frame > capacity ? capacity - index : 0;
      const need = pad || frame;
      if (distance(this.#headCache, tail) + need > capacity) {
        const head = this.#headBehind(tail);
        if (Number.isNaN(head)) {
          staleTail = this.#staleHead(tail, staleTail);
          continue;
        }
        this.#headCache = head;
        if (distance(head, tail) + need > capacity) return -1;
      }
      if (!this.#casTail(tailBig, tail, need)) continue;
      const off = HEADER_LENGTH + index;
      if (pad === 0) {
        this.#reserved = tail;
        return off;
      }
      setFrameType(this.#words, off, FrameType.PADDING, tail, pad);
      commitFrameRelease(this.#words, off, pad);
    }
  }

  #sendBatchMulti(messages: readonly ChannelData[], lengths: readonly number[], from: number): number {
    const capacity = this.#capacity;
    const words = this.#words;
    let staleTail = -1;
    for (;;) {
      const tailBig = this.#loadTail();
      const tail = Number(tailBig);
      const head = this.#headBehind(tail);
      if (Number.isNaN(head)) {
        staleTail = this.#staleHead(tail, staleTail);
        continue;
      }
      this.#headCache = head;
      const free = capacity - distance(head, tail);
      // Lay out the longest prefix that fits, with padding where a frame would cross the ring's end.
      const start = ringIndex(tail, capacity);
      let index = start;
      let total = 0;
      let count = 0;
      for (let i = from; i < messages.length; i++) {
        const frame = frameLength(lengths[i]!, this.#payloadOffset);
        const add = index + frame > capacity ? capacity - index + frame : frame;
        if (total + add > free) break;
        total += add;
        index = index + frame > capacity ? frame : index + frame;
        if (index === capacity) index = 0;
        count++;
      }
      if (count === 0) {
        // Not even the first fits; if it only lacks the padding to the end, claim that to make progress.
        const pad = capacity - start;
        if (start + frameLength(lengths[from]!, this.#payloadOffset) <= capacity || pad > free) return 0;
        if (this.#casTail(tailBig, tail, pad)) {
          setFrameType(words, HEADER_LENGTH + start, FrameType.PADDING, tail, pad);
          commitFrameRelease(words, HEADER_LENGTH + start, pad);
        }
        continue;
      }
      if (!this.#casTail(tailBig, tail, total)) continue;
      index = start;
      let position = tail;
      for (let i = from; i < from + count; i++) {
        const n = lengths[i]!;
        const len = this.#payloadOffset + n;
        const frame = (len + 7) & -8;
        if (index + frame > capacity) {
          setFrameType(words, HEADER_LENGTH + index, FrameType.PADDING, position, capacity - index);
          commitFrameRelease(words, HEADER_LENGTH + index, capacity - index);
          position = advance(position, capacity - index);
          index = 0;
        }
        const off = HEADER_LENGTH + index;
        setFrameType(words, off, FrameType.DATA, position, len);
        claimFrame(words, off, len);
        this.#writePayload(off + this.#payloadOffset, messages[i]!, n);
        this.#sum(off, n);
        commitFrameRelease(words, off, len);
        position = advance(position, frame);
        index += frame;
        if (index === capacity) index = 0;
      }
      this.#dataBell.ring();
      return count;
    }
  }
}
