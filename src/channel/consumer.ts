/**
 * The receiving side of a channel handle: the consumer lock, reading and
 * checking frames, giving their space back, and sealing frames that dead
 * producers left claimed (see ./channel.ts for the protocol).
 *
 * Frames are read from `readPos`; those in [head, readPos) are out with the
 * caller and are given back (head moves) at the next receive. With many
 * producers the consumer finds frames by their length word, and zeroes what
 * it gives back, so that 0 keeps meaning "not written yet"; it first records
 * how far it is zeroing (the release position), so that a consumer killed
 * halfway is finished by the next one.
 */
import { MmapError } from "../core/errors.ts";
import { FRAME_HEADER_LENGTH, FRAME_TYPE_OFFSET, FrameType, alignFrame, commitFrameRelease } from "../core/framing.ts";
import { native, LockOp } from "../core/native.ts";
import type { Doorbell } from "../core/wait.ts";
import {
  CONSUMER_PID_NS_OFFSET,
  CONSUMER_PID_OFFSET,
  CONSUMER_START_OFFSET,
  FRAME_CHECKSUM_OFFSET,
  HEADER_LENGTH,
  SLOT_CLAIM_LENGTH_OFFSET,
  SLOT_CLAIM_START_OFFSET,
  SLOT_COUNT,
  advance,
  distance,
  isPosition,
  lowDistance,
  lowWord,
  ringIndex,
  slotOffset,
} from "./layout.ts";
import {
  DATA_WAITERS_I32,
  ENDED_I32,
  HEAD_I64,
  RELEASE_I64,
  TAIL_LOW_I32,
  corruptError,
  forgetDeadWaiters,
  frameCheck,
  positions,
  setFrameType,
  slotAlive,
  storePosition,
  type Ring,
} from "./file.ts";
import { ownPid, ownPidNamespace, ownStartTime } from "./liveness.ts";

/** A frame may stay claimed this long before the consumer asks whether its producer still exists. */
const CLAIM_CHECK_MS = 10;
/** How often, at most, a consumer that finds producers counted as waiting checks that one is alive at all. */
const WAITERS_CHECK_MS = 50;
/** Attempts to take the consumer lock; a producer's liveness probe holds it shared for a moment. */
const LOCK_ATTEMPTS = 20;

const pause = new Int32Array(new SharedArrayBuffer(4));

export class RingReader {
  readonly #ring: Ring;
  readonly #fd: number;
  readonly #capacity: number;
  readonly #multi: boolean;
  readonly #words: Int32Array;
  readonly #longs: BigInt64Array;
  readonly #spaceBell: Doorbell;
  /** Where a DATA frame's payload starts: 8, or 12 when frames carry a CRC32C of it. */
  readonly #payloadOffset: number;
  /** What this consumer has given back to the producers. */
  #head = 0;
  /** Where the next frame is read. */
  #readPos = 0;
  #readIndex = 0;
  /** The producer position as last read. */
  #tailCache = 0;
  #length = 0;
  #stallPos = -1;
  #stallCheckedAt = 0;
  /** Where the last frame this consumer sealed ends: a frame stuck right there is checked at once. */
  #sealedEnd = -1;
  #sealed = 0;
  #waitersCheckedAt = -Infinity;

  /**
   * Becomes the channel's consumer: takes the lock on `fd` (an open file
   * description of this handle's own; ERR_BUSY while another live consumer
   * holds it) and finishes what a dead predecessor left half done.
   */
  constructor(ring: Ring, fd: number, spaceBell: Doorbell) {
    this.#ring = ring;
    this.#fd = fd;
    this.#capacity = ring.capacity;
    this.#multi = ring.multi;
    this.#words = ring.v.words;
    this.#longs = ring.v.longs;
    this.#spaceBell = spaceBell;
    this.#payloadOffset = ring.payloadOffset;
    let locked = false;
    for (let attempt = 0; attempt < LOCK_ATTEMPTS && !locked; attempt++) {
      locked = native.flock(fd, LockOp.exclusive);
      if (!locked) Atomics.wait(pause, 0, 0, 1);
    }
    if (!locked)
      throw new MmapError("ERR_BUSY", "another live process is consuming this channel (one consumer at a time)", { path: ring.path });
    try {
      this.#takeOver();
    } catch (error) {
      native.flock(fd, LockOp.unlock);
      throw error;
    }
  }

  #takeOver(): void {
    let { head, tail } = positions(this.#longs, this.#capacity, this.#ring.path);
    if (this.#multi) {
      // A consumer that died while zeroing what it had read left RELEASE ahead of HEAD: finish its work.
      const release = Number(Atomics.load(this.#longs, RELEASE_I64));
      if (release !== head) {
        if (!isPosition(release) || distance(head, release) > distance(head, tail))
          throw corruptError(this.#ring, `release position ${release} is outside [head ${head}, tail ${tail}]`);
        this.#zero(head, distance(head, release));
        Atomics.store(this.#longs, HEAD_I64, BigInt(release));
        head = release;
      }
    }
    const words = this.#words;
    Atomics.store(words, DATA_WAITERS_I32, 0); // the lock holder is the only one who waits for data
    Atomics.store(words, CONSUMER_PID_OFFSET >> 2, ownPid);
    Atomics.store(words, CONSUMER_PID_NS_OFFSET >> 2, ownPidNamespace | 0);
    this.#ring.v.header.setFloat64(CONSUMER_START_OFFSET, ownStartTime, true);
    this.#head = this.#readPos = head;
    this.#readIndex = ringIndex(head, this.#capacity);
    this.#tailCache = tail;
  }

  /** Payload length of the frame next() returned last. */
  get length(): number {
    return this.#length;
  }

  /** Frames sealed as ABORTED because their producer died mid-send. */
  get sealed(): number {
    return this.#sealed;
  }

  /** True when frames were read and not given back yet. */
  get holding(): boolean {
    return this.#readPos !== this.#head;
  }

  /** Gives the frames in [head, readPos) back to the producers. */
  release(): void {
    const to = this.#readPos;
    if (this.#multi) {
      storePosition(this.#words, this.#longs, RELEASE_I64, this.#head, to);
      this.#zero(this.#head, distance(this.#head, to));
    }
    storePosition(this.#words, this.#longs, HEAD_I64, this.#head, to);
    this.#head = to;
    // One load of the waiter count when nobody waits (ring() would load it again).
    if (this.#spaceBell.waiters !== 0) {
      this.#checkWaiters();
      this.#spaceBell.ring();
    }
  }

  /** Clears a space-waiter count that only killed producers can have left (now and then: it costs a lock probe per slot). */
  #checkWaiters(): void {
    const now = performance.now();
    if (now - this.#waitersCheckedAt < WAITERS_CHECK_MS) return;
    this.#waitersCheckedAt = now;
    forgetDeadWaiters(this.#ring);
  }

  /** Gives back what it holds and drops the consumer lock. */
  leave(): void {
    if (this.holding) this.release();
    native.flock(this.#fd, LockOp.unlock);
  }

  /** Moves past the next DATA frame and returns its payload's offset in the mapping (its length in `length`), or -1 for none yet. */
  next(): number {
    const capacity = this.#capacity;
    const words = this.#words;
    for (let guard = capacity / 8 + 1; guard > 0; guard--) {
      const index = this.#readIndex;
      const off = HEADER_LENGTH + index;
      let len: number;
      if (this.#multi) {
        // A whole ring read and not given back yet: the next index still holds the first of those frames.
        if (distance(this.#head, this.#readPos) === capacity) return -1;
        len = Atomics.load(words, off >> 2);
        if (len <= 0) {
          if (this.#inFlight(len)) continue;
          return -1;
        }
      } else {
        if (this.#readPos === this.#tailCache && !this.#refreshTail()) return -1;
        len = words[off >> 2]!;
      }
      if (len < FRAME_HEADER_LENGTH || len > capacity - index)
        throw corruptError(this.#ring, `frame length ${len} at ring offset ${index} is outside the ring`);
      // The length is trusted only once the check written with it matches (and the type with it).
      const typeWord = words[(off + FRAME_TYPE_OFFSET) >> 2]!;
      const type = typeWord & 0xffff;
      if (typeWord >>> 16 !== frameCheck(this.#readPos, len, type))
        throw corruptError(this.#ring, `the frame at position ${this.#readPos} fails its check: its length (${len}) or type (${type}) is damaged`);
      const frame = (len + 7) & -8; // still inside: capacity - index is a multiple of 8
      const ahead = distance(this.#readPos, this.#tailCache); // over capacity when the cached tail fell behind
      if ((frame > ahead || ahead > capacity) && (this.#refreshTail(), frame > distance(this.#readPos, this.#tailCache)))
        throw corruptError(this.#ring, `frame length ${len} at position ${this.#readPos} runs past the producer position ${this.#tailCache}`);
      if (type === FrameType.DATA) {
        const payload = this.#payloadOffset;
        if (payload !== FRAME_HEADER_LENGTH) this.#verifySum(off, len);
        this.#readPos = advance(this.#readPos, frame);
        this.#readIndex = index + frame === capacity ? 0 : index + frame;
        this.#length = len - payload;
        return off + payload;
      }
      if (type !== FrameType.PADDING && type !== FrameType.ABORTED)
        throw corruptError(this.#ring, `unknown frame type ${type} at position ${this.#readPos}`);
      this.#readPos = advance(this.#readPos, frame);
      this.#readIndex = index + frame === capacity ? 0 : index + frame;
    }
    return -1;
  }

  /** With FLAG_CHECKSUM: the CRC32C stored in the DATA frame at `off` (`len` bytes) must match its payload. */
  #verifySum(off: number, len: number): void {
    const payload = this.#payloadOffset;
    if (len < payload) throw corruptError(this.#ring, `frame length ${len} at position ${this.#readPos} is too short for its checksum`);
    const stored = this.#words[(off + FRAME_CHECKSUM_OFFSET) >> 2]! >>> 0;
    if (native.crc32c(this.#ring.v.bytes.buffer as ArrayBuffer, off + payload, len - payload, 0) !== stored)
      throw corruptError(this.#ring, `the message at position ${this.#readPos} fails its checksum: its bytes are damaged`);
  }

  /** The test the consumer waits on: the next frame is there, or `stop()`. */
  dataReady(stop: () => boolean): () => boolean {
    const words = this.#words;
    if (this.#multi) {
      const at = (HEADER_LENGTH + this.#readIndex) >> 2;
      return () => stop() || words[ENDED_I32] !== 0 || Atomics.load(words, at) > 0;
    }
    const low = lowWord(this.#readPos);
    return () => stop() || words[ENDED_I32] !== 0 || Atomics.load(words, TAIL_LOW_I32) !== low;
  }

  /** Zeroes `bytes` of the ring from `position` (wrapping). */
  #zero(position: number, bytes: number): void {
    const bytesView = this.#ring.v.bytes;
    const index = ringIndex(position, this.#capacity);
    const first = Math.min(bytes, this.#capacity - index);
    bytesView.fill(0, HEADER_LENGTH + index, HEADER_LENGTH + index + first);
    if (bytes > first) bytesView.fill(0, HEADER_LENGTH, HEADER_LENGTH + bytes - first);
  }

  /** Re-reads the tail; true when there is something past the read position. */
  #refreshTail(): boolean {
    // The tail is at most capacity ahead of the read position: its low half is enough.
    const ahead = lowDistance(lowWord(this.#readPos), Atomics.load(this.#words, TAIL_LOW_I32));
    if (ahead > this.#capacity)
      throw corruptError(this.#ring, `the producer position is not within ${this.#capacity} bytes after the read position ${this.#readPos}`);
    this.#tailCache = advance(this.#readPos, ahead);
    return ahead !== 0;
  }

  /**
   * The frame at the read position is claimed (len < 0) or not written yet
   * (len 0). Returns true when it was sealed and reading can go on.
   */
  #inFlight(len: number): boolean {
    if (len === 0 && !this.#refreshTail()) return false; // simply empty
    const now = performance.now();
    if (this.#readPos !== this.#sealedEnd) {
      if (this.#stallPos !== this.#readPos) {
        this.#stallPos = this.#readPos;
        this.#stallCheckedAt = now;
        return false;
      }
      if (now - this.#stallCheckedAt < CLAIM_CHECK_MS) return false;
    }
    this.#stallCheckedAt = now;
    return this.#sealIfAbandoned();
  }

  /**
   * Seals the frame at the read position as ABORTED when no live producer's
   * claim covers it. A producer records its claim before taking it, so a
   * claim nobody alive has recorded belongs to a dead process.
   */
  #sealIfAbandoned(): boolean {
    const capacity = this.#capacity;
    const words = this.#words;
    const pos = this.#readPos;
    const index = this.#readIndex;
    const off = HEADER_LENGTH + index;
    this.#refreshTail();
    const tail = this.#tailCache;
    let boundary = distance(pos, tail); // where the next claim starts, at the latest
    let deadEnd = Infinity; // where a dead producer's recorded claim over `pos` ends
    for (let s = 0; s < SLOT_COUNT; s++) {
      const base = slotOffset(s);
      const claimLength = Atomics.load(words, (base + SLOT_CLAIM_LENGTH_OFFSET) >> 2);
      const start = Number(Atomics.load(this.#longs, (base + SLOT_CLAIM_START_OFFSET) >> 3));
      if (!isPosition(start)) continue;
      if (claimLength > 0 && distance(start, pos) < claimLength) {
        if (slotAlive(this.#ring, s)) return false;
        deadEnd = Math.min(deadEnd, claimLength - distance(start, pos));
      }
      const ahead = distance(pos, start); // every recorded start was once the tail: a frame boundary
      if (ahead > 0 && ahead < boundary) boundary = ahead;
    }
    const len = Atomics.load(words, off >> 2);
    if (len > 0) return true; // committed meanwhile
    let sealed: number;
    if (len < 0) {
      sealed = alignFrame(-len);
      if (-len < FRAME_HEADER_LENGTH || index + sealed > capacity || sealed > distance(pos, tail))
        throw corruptError(this.#ring, `claimed frame length ${-len} at position ${pos} is outside the ring`);
    } else {
      // Nothing of the dead claim was written (headers go first): it spans zeros up to the next frame
      // boundary, and that boundary must be one this consumer knows (the end of the dead claim, a
      // recorded claim start, the tail, the ring's end). Zeros that stop short of it are a committed
      // frame whose length word was lost: what follows is its payload, never a frame to deliver.
      const limit = Math.min(deadEnd, boundary, capacity - index);
      sealed = FRAME_HEADER_LENGTH;
      while (sealed < limit && Atomics.load(words, (off + sealed) >> 2) === 0) sealed += FRAME_HEADER_LENGTH;
      if (sealed < limit)
        throw corruptError(this.#ring, `frame length 0 at position ${pos}, followed by data at ${advance(pos, sealed)} that no claim accounts for`);
    }
    setFrameType(words, off, FrameType.ABORTED, pos, sealed);
    commitFrameRelease(words, off, sealed);
    this.#sealed++;
    this.#sealedEnd = advance(pos, sealed);
    return true;
  }
}
