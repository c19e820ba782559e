/**
 * The channel file as data: typed views of a mapping, header validation,
 * consistent reads of the positions, producer slots and their liveness,
 * statistics, and the open-file-description tricks the locks need. The
 * layout itself is in ./layout.ts.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { MmapError, invalidArg, sys } from "../core/errors.ts";
import { FRAME_HEADER_LENGTH, FRAME_TYPE_OFFSET, FrameType, alignFrame } from "../core/framing.ts";
import { type MappedFile } from "../core/mapped-file.ts";
import { checkInteger } from "../core/validate.ts";
import { native, LockOp } from "../core/native.ts";
import {
  CAPACITY_OFFSET,
  CHANNEL_MAGIC,
  CHANNEL_VERSION,
  CONSUMER_PID_OFFSET,
  CREATED_AT_OFFSET,
  DATA_WAITERS_OFFSET,
  ENDED_OFFSET,
  FLAGS_OFFSET,
  FLAG_CHECKSUM,
  FLAG_MULTI_PRODUCER,
  CHECKSUMMED_PAYLOAD_OFFSET,
  PAYLOAD_OFFSET,
  HEADER_LENGTH,
  HEADER_LENGTH_OFFSET,
  HEAD_POSITION_OFFSET,
  MAGIC_LENGTH,
  MAGIC_OFFSET,
  MAX_CAPACITY,
  MIN_CAPACITY,
  RELEASE_POSITION_OFFSET,
  SLOT_COUNT,
  SLOT_COUNT_OFFSET,
  SLOT_LENGTH,
  SLOT_LENGTH_OFFSET,
  SLOT_LOCK_OFFSET,
  SLOT_PID_NS_OFFSET,
  SLOT_PID_OFFSET,
  SLOT_SPACE_WAITS_OFFSET,
  SLOT_START_OFFSET,
  SPACE_WAITERS_OFFSET,
  TAIL_POSITION_OFFSET,
  VERSION_OFFSET,
  advance,
  distance,
  isPosition,
  ringIndex,
  slotOffset,
  TWO_32,
} from "./layout.ts";

export const TAIL_I64 = TAIL_POSITION_OFFSET / 8;
export const HEAD_I64 = HEAD_POSITION_OFFSET / 8;
export const RELEASE_I64 = RELEASE_POSITION_OFFSET / 8;
export const TAIL_LOW_I32 = TAIL_POSITION_OFFSET / 4; // little-endian: the low word comes first
export const HEAD_LOW_I32 = HEAD_POSITION_OFFSET / 4;
export const ENDED_I32 = ENDED_OFFSET / 4;
export const DATA_WAITERS_I32 = DATA_WAITERS_OFFSET / 4;
export const SPACE_WAITERS_I32 = SPACE_WAITERS_OFFSET / 4;

export const magicBytes: Uint8Array = new TextEncoder().encode(CHANNEL_MAGIC);

/**
 * Stores a position that only this handle writes: the low half alone while
 * the high half stays as it was (a 32-bit store is cheaper than a BigInt
 * one), all 64 bits in one atomic store when it changes.
 */
export function storePosition(words: Int32Array, longs: BigInt64Array, index64: number, previous: number, next: number): void {
  const high = Math.floor(next / TWO_32);
  if (high === Math.floor(previous / TWO_32)) Atomics.store(words, index64 * 2, (next - high * TWO_32) | 0);
  else Atomics.store(longs, index64, BigInt(next));
}

/** "single": one producer at a time (cheapest); "multi": any number of producer processes. */
export type ChannelProducers = "single" | "multi";

/** A snapshot of a channel's header; see {@link Channel.stats} and {@link inspectChannel}. */
export interface ChannelStats {
  version: number;
  capacity: number;
  producers: ChannelProducers;
  /** Every message carries a CRC32C of its bytes (createChannel's `checksum` option). */
  checksum: boolean;
  /** Largest message, in bytes. */
  maxMessageLength: number;
  /** Bytes claimed by producers since creation (modulo 2^52). */
  producerPosition: number;
  /** Bytes given back by the consumer since creation (modulo 2^52). */
  consumerPosition: number;
  /** Bytes between the two positions (messages, padding, claims in progress). */
  used: number;
  /** capacity − used. */
  free: number;
  /** Committed messages in the ring (counting one the consumer holds and has not given back yet). */
  messages: number;
  /** The consumer is asleep waiting for data. */
  consumerWaiting: boolean;
  /** Producers asleep waiting for space. */
  producersWaiting: number;
  /** A live consumer holds the channel. */
  consumerAttached: boolean;
  /** Process id of the last consumer to attach, if any. */
  consumerPid: number | undefined;
  /** Process ids of the registered producers that are alive. */
  producerPids: number[];
  /** end() was called: no more messages will come. */
  ended: boolean;
  /** When the channel was created (ms since the epoch). */
  createdAt: number;
}

/** The typed views of a mapped channel file. */
export interface Views {
  bytes: Uint8Array;
  words: Int32Array;
  longs: BigInt64Array;
  header: DataView;
}

export function viewsOf(file: MappedFile, capacity: number): Views {
  const buffer = file.buffer;
  return {
    bytes: new Uint8Array(buffer, 0, HEADER_LENGTH + capacity),
    words: new Int32Array(buffer, 0, (HEADER_LENGTH + capacity) / 4),
    longs: new BigInt64Array(buffer, 0, HEADER_LENGTH / 8),
    header: new DataView(buffer, 0, HEADER_LENGTH),
  };
}

export interface HeaderInfo {
  capacity: number;
  multi: boolean;
  checksum: boolean;
  /** Where a DATA frame's payload starts (after the CRC32C with `checksum`). */
  payloadOffset: number;
}

/** Checks a channel header; every field a peer could have written is suspect. */
export function validateHeader(file: MappedFile, path: string | undefined): HeaderInfo {
  const corrupt = (what: string): MmapError =>
    new MmapError("ERR_CORRUPT", `not a valid memmap channel${path ? ` '${path}'` : ""}: ${what}`, { path });
  if (file.byteLength < HEADER_LENGTH) throw corrupt(`the file has ${file.byteLength} bytes, less than the ${HEADER_LENGTH}-byte header`);
  const header = new DataView(file.buffer, 0, HEADER_LENGTH);
  for (let i = 0; i < MAGIC_LENGTH; i++)
    if (header.getUint8(MAGIC_OFFSET + i) !== magicBytes[i]) throw corrupt("bad magic number");
  const version = header.getUint32(VERSION_OFFSET, true);
  if (version >= 1 && version < CHANNEL_VERSION)
    throw new MmapError(
      "ERR_UNSUPPORTED",
      `channel${path ? ` '${path}'` : ""} has format version ${version}, from an older memmap; this one reads version ${CHANNEL_VERSION} (frames carry a check): recreate the channel (createChannel with overwrite: true)`,
      { path },
    );
  if (version !== CHANNEL_VERSION) throw corrupt(`version ${version}; this memmap reads version ${CHANNEL_VERSION}`);
  const headerLength = header.getUint32(HEADER_LENGTH_OFFSET, true);
  if (headerLength !== HEADER_LENGTH) throw corrupt(`header length ${headerLength}, expected ${HEADER_LENGTH}`);
  const capacity = header.getUint32(CAPACITY_OFFSET, true);
  if (capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0)
    throw corrupt(`capacity ${capacity} is not a power of two from ${MIN_CAPACITY} to ${MAX_CAPACITY}`);
  if (file.byteLength < HEADER_LENGTH + capacity)
    throw corrupt(`the file has ${file.byteLength} bytes; a ring of ${capacity} needs ${HEADER_LENGTH + capacity}`);
  const flags = header.getUint32(FLAGS_OFFSET, true);
  if ((flags & ~(FLAG_MULTI_PRODUCER | FLAG_CHECKSUM)) !== 0) throw corrupt(`unknown flags 0x${flags.toString(16)}`);
  if (header.getUint32(SLOT_COUNT_OFFSET, true) !== SLOT_COUNT || header.getUint32(SLOT_LENGTH_OFFSET, true) !== SLOT_LENGTH)
    throw corrupt("unexpected producer slot table");
  const checksum = (flags & FLAG_CHECKSUM) !== 0;
  return { capacity, multi: (flags & FLAG_MULTI_PRODUCER) !== 0, checksum, payloadOffset: checksum ? CHECKSUMMED_PAYLOAD_OFFSET : PAYLOAD_OFFSET };
}

/** Reads head and tail so that they belong together (the head did not move while the tail was read). */
export function positions(longs: BigInt64Array, capacity: number, path: string | undefined): { head: number; tail: number } {
  let head = 0;
  let tail = 0;
  for (let attempt = 0; attempt < 100; attempt++) {
    head = Number(Atomics.load(longs, HEAD_I64));
    tail = Number(Atomics.load(longs, TAIL_I64));
    if (Number(Atomics.load(longs, HEAD_I64)) === head) break;
  }
  if (!isPosition(head) || !isPosition(tail) || distance(head, tail) > capacity)
    throw new MmapError(
      "ERR_CORRUPT",
      `channel positions are inconsistent (head ${head}, tail ${tail}, capacity ${capacity})${path ? ` '${path}'` : ""}`,
      { path },
    );
  return { head, tail };
}

export interface Slot {
  pid: number;
  namespace: number;
  startTime: number;
}

export function readSlot(v: Views, slot: number): Slot {
  const base = slotOffset(slot);
  return {
    pid: Atomics.load(v.words, (base + SLOT_PID_OFFSET) >> 2),
    namespace: Atomics.load(v.words, (base + SLOT_PID_NS_OFFSET) >> 2) >>> 0,
    startTime: v.header.getFloat64(base + SLOT_START_OFFSET, true),
  };
}

/** What telling live producer slots from dead ones needs: a handle's open file and views. */
export type SlotView = Pick<Ring, "fd" | "v" | "ownSlot">;

/**
 * Whether producer slot `s` is held by a live handle: its lock is held. A
 * slot is locked before its pid is written and cleared before it is
 * unlocked, so a pid with no lock is a dead producer's. A handle's own lock
 * does not show through its own open file: its own slot is alive by definition.
 */
export function slotAlive(ring: SlotView, s: number): boolean {
  if (Atomics.load(ring.v.words, (slotOffset(s) + SLOT_PID_OFFSET) >> 2) === 0) return false;
  return s === ring.ownSlot || native.rangeLocked(ring.fd, SLOT_LOCK_OFFSET + s);
}

/**
 * A producer killed while waiting for room leaves the space-waiter count
 * raised, and the consumer then makes a futex call on every release. Each
 * live producer says in its slot how much of the count is its own (raised
 * before it counts itself, lowered after it uncounts itself), so the count
 * is lowered to what the live slots say. The count is read before the slots
 * and lowered by compare-and-swap: a producer that starts waiting meanwhile
 * either is seen in its slot (at worst the count ends one too high: one
 * futex call too many per release until the next check) or changes the count
 * and the swap fails. It never ends below what live waiters added, so no
 * waiter misses its wake-up. Returns true when it lowered it.
 */
export function forgetDeadWaiters(ring: SlotView): boolean {
  const words = ring.v.words;
  const waiting = Atomics.load(words, SPACE_WAITERS_I32);
  if (waiting === 0) return false;
  const live = liveSpaceWaits(ring);
  if (waiting <= live) return false;
  return Atomics.compareExchange(words, SPACE_WAITERS_I32, waiting, live) === waiting;
}

/** What the live producer slots say they add to the space-waiter count (SLOT_SPACE_WAITS_OFFSET). */
function liveSpaceWaits(ring: SlotView): number {
  let live = 0;
  for (let s = 0; s < SLOT_COUNT; s++) if (slotAlive(ring, s)) live += Math.max(0, Atomics.load(ring.v.words, (slotOffset(s) + SLOT_SPACE_WAITS_OFFSET) >> 2));
  return live;
}

/** A snapshot of the header, the committed messages counted by walking the frames (bounded). */
export function collectStats(ring: SlotView, info: HeaderInfo, consumerAttached: boolean, path: string | undefined): ChannelStats {
  const v = ring.v;
  const { capacity, multi, payloadOffset } = info;
  const { head, tail } = positions(v.longs, capacity, path);
  let messages = 0;
  let pos = head;
  for (let guard = capacity / 8; guard > 0 && pos !== tail; guard--) {
    const index = ringIndex(pos, capacity);
    const off = HEADER_LENGTH + index;
    const len = Atomics.load(v.words, off >> 2);
    if (len <= 0) break; // a claim still being written (many producers)
    const frame = alignFrame(len);
    const typeWord = v.words[(off + FRAME_TYPE_OFFSET) >> 2]!;
    if (len < FRAME_HEADER_LENGTH || index + frame > capacity || frame > distance(pos, tail) || typeWord >>> 16 !== frameCheck(pos, len, typeWord & 0xffff)) {
      if (!multi) throw new MmapError("ERR_CORRUPT", `bad frame (length ${len}, failing its check) at position ${pos}`, { path });
      break; // the consumer zeroes behind itself: a moving ring, not necessarily corruption
    }
    if ((typeWord & 0xffff) === FrameType.DATA) messages++;
    pos = advance(pos, frame);
  }
  const producerPids: number[] = [];
  for (let s = 0; s < SLOT_COUNT; s++) if (slotAlive(ring, s)) producerPids.push(Math.abs(readSlot(v, s).pid));
  const consumerPid = Atomics.load(v.words, CONSUMER_PID_OFFSET >> 2);
  const used = distance(head, tail);
  return {
    version: v.header.getUint32(VERSION_OFFSET, true),
    capacity,
    producers: multi ? "multi" : "single",
    checksum: info.checksum,
    maxMessageLength: capacity - payloadOffset,
    producerPosition: tail,
    consumerPosition: head,
    used,
    free: capacity - used,
    messages,
    consumerWaiting: Atomics.load(v.words, DATA_WAITERS_I32) > 0,
    // Killed waiters stay in the shared count: no more than the live producers say they add.
    producersWaiting: Math.max(0, Math.min(Atomics.load(v.words, SPACE_WAITERS_I32), liveSpaceWaits(ring))),
    consumerAttached,
    consumerPid: consumerPid > 0 ? consumerPid : undefined,
    producerPids,
    ended: Atomics.load(v.words, ENDED_I32) !== 0,
    createdAt: v.header.getFloat64(CREATED_AT_OFFSET, true),
  };
}

/** True when some process holds the consumer lock (probed with a shared lock on our own open file). */
export function probeConsumer(fd: number): boolean {
  if (!native.flock(fd, LockOp.shared)) return true;
  native.flock(fd, LockOp.unlock);
  return false;
}

/** Opens a new open-file description for a path or an inherited descriptor (flock locks belong to those). */
export function openOwn(pathOrFd: string | number, writable: boolean): { fd: number; path: string | undefined } {
  // O_NONBLOCK: opening a FIFO read-only would wait for a writer; the type is checked on the descriptor.
  const flags = (writable ? fs.constants.O_RDWR : fs.constants.O_RDONLY) | fs.constants.O_NONBLOCK;
  if (typeof pathOrFd === "string") {
    if (pathOrFd.length === 0) throw invalidArg("path must not be empty");
    return { fd: checkRegular(sys(pathOrFd, () => fs.openSync(pathOrFd, flags)), pathOrFd), path: pathOrFd };
  }
  checkInteger("fd", pathOrFd, 0x7fffffff);
  // /proc/self/fd/N opens the same file anew: a descriptor shared with a parent shares its locks.
  const fd = sys(undefined, () => {
    try {
      return fs.openSync(`/proc/self/fd/${pathOrFd}`, flags);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT")
        throw new MmapError("EBADF", `fd ${pathOrFd} is not an open file descriptor`, { syscall: "open", errno: os.constants.errno.EBADF });
      throw error;
    }
  });
  return { fd: checkRegular(fd, pathOrFd), path: undefined };
}

/** Closes `fd` and throws unless it is a regular file; errors name what the caller gave. */
function checkRegular(fd: number, given: string | number): number {
  const path = typeof given === "string" ? given : undefined;
  try {
    const st = sys(path, () => fs.fstatSync(fd));
    if (!st.isFile())
      throw new MmapError(st.isDirectory() ? "EISDIR" : "ENODEV", `a channel must be a regular file '${path ?? `fd ${given}`}'`, {
        syscall: "open",
        path,
        errno: st.isDirectory() ? 21 : 19,
      });
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
  return fd;
}

/** Writes a new header (and zeroes memory that held something else). */
export function initialize(file: MappedFile, capacity: number, multi: boolean, checksum: boolean, reused: boolean): void {
  const bytes = new Uint8Array(file.buffer, 0, HEADER_LENGTH + capacity);
  if (reused) bytes.fill(0); // memory that held something else: the ring must start zeroed
  const header = new DataView(file.buffer, 0, HEADER_LENGTH);
  header.setUint32(VERSION_OFFSET, CHANNEL_VERSION, true);
  header.setUint32(HEADER_LENGTH_OFFSET, HEADER_LENGTH, true);
  header.setUint32(CAPACITY_OFFSET, capacity, true);
  header.setUint32(FLAGS_OFFSET, (multi ? FLAG_MULTI_PRODUCER : 0) | (checksum ? FLAG_CHECKSUM : 0), true);
  header.setUint32(SLOT_COUNT_OFFSET, SLOT_COUNT, true);
  header.setUint32(SLOT_LENGTH_OFFSET, SLOT_LENGTH, true);
  header.setFloat64(CREATED_AT_OFFSET, Date.now(), true);
  bytes.set(magicBytes, MAGIC_OFFSET); // last: a header with a magic number is complete
}

/** A mapped channel, as one handle's writer and reader share it. */
export interface Ring {
  /** This handle's own open file: its locks (consumer, producer slot) belong to it. */
  readonly fd: number;
  /** The producer slot this handle holds, or -1. */
  ownSlot: number;
  readonly v: Views;
  readonly capacity: number;
  readonly multi: boolean;
  readonly checksum: boolean;
  readonly payloadOffset: number;
  readonly path: string | undefined;
}

export function corruptError(ring: Ring, message: string): MmapError {
  return new MmapError("ERR_CORRUPT", `channel${ring.path ? ` '${ring.path}'` : ""}: ${message}`, { path: ring.path });
}

/**
 * The check in every frame's flags field (the high half of the word at
 * FRAME_TYPE_OFFSET): 16 bits of a multiplicative hash of the frame's
 * length, its type and the low 32 bits of its position. The consumer
 * compares it before it trusts the length, so a damaged length word, a frame
 * header that is really payload bytes, or a stale frame from an earlier lap
 * of the ring is ERR_CORRUPT (a random match is 1 in 65,536), never a
 * message. It is written in the same 32-bit store as the type: no extra
 * memory traffic. Two multiplications by odd constants (each a bijection on
 * 32 bits, so a changed length always changes `h`), then both halves of `h`
 * folded together: short, because a producer computes it per message.
 */
export function frameCheck(position: number, length: number, type: number): number {
  const h = Math.imul((position | 0) ^ Math.imul(length + (type << 30), 0x9e3779b1), 0x85ebca6b); // `| 0`: the low 32 bits
  return (h ^ (h >>> 16)) & 0xffff;
}

/** Writes a frame's type and its check (for `length` bytes at `position`): the two u16 fields in one little-endian 32-bit store. */
export function setFrameType(words: Int32Array, frameOffset: number, type: FrameType, position: number, length: number): void {
  words[(frameOffset + FRAME_TYPE_OFFSET) >> 2] = type | (frameCheck(position, length, type) << 16);
}

/** Closes a channel's lock descriptor if the Channel is garbage-collected unclosed (the kernel then drops its lock). */
export const lockReaper = new FinalizationRegistry<number>((fd) => {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
});
