/**
 * The channel file: a header page, then the ring. Defined once, here.
 *
 * ```
 *  byte 0                                                                 128
 *  +--------+-------+--------+----------+-------+-------+-------+--------+
 *  | magic  |version| header | capacity | flags | slots | slot  | created|  line 0: fixed at creation
 *  | 8 B    | u32   | len u32| u32      | u32   | u32   | len   | at f64 |
 *  +--------+-------+--------+----------+-------+-------+-------+--------+
 *  128  tail position i64 (producers claim space here)                    line 1
 *  256  head position i64 (consumer: read up to here)                      line 2
 *  264  release position i64 (consumer: zeroing up to here, multi only)
 *  384  data doorbell: seq u32, waiters u32 (the consumer waits here)      line 3
 *  512  space doorbell: seq u32, waiters u32 (producers wait here)         line 4
 *  640  ended u32 | consumer pid i32 | consumer pid-ns u32 | consumer      line 5
 *       start time f64 (at 648)
 *  1024 producer slots, SLOT_COUNT × 64 B:                                 lines 8…31
 *       +0 pid i32 (0 free, < 0 being set up) | +4 pid-ns u32 |
 *       +8 start time f64 | +16 claim start i64 | +24 claim length i32 |
 *       +28 space waits i32 (this producer's share of the space doorbell's waiters)
 *  4096 ring: `capacity` bytes of frames (src/core/framing.ts; the flags
 *       field holds a check, see frameCheck in ./file.ts; FLAG_CHECKSUM below)
 *
 *  2^40 + s: no data; a lock on this byte holds producer slot s (SLOT_LOCK_OFFSET)
 * ```
 *
 * Hot words sit on their own 128-byte lines (a line pair on CPUs that
 * prefetch adjacent lines), so a producer publishing the tail does not
 * invalidate the line the consumer writes its head to.
 *
 * Positions are byte counts since creation, modulo {@link POSITION_MODULUS}
 * (2^52, so they stay exact in a JavaScript number and a stale value cannot
 * come round again in any realistic time); the ring index of a position is
 * `position % capacity`. Everything is little-endian.
 *
 * Every position field always holds its whole value, but a single writer
 * (the one producer's tail, the consumer's head and release) stores only the
 * low 32-bit half while the high half does not change, and the whole 64 bits
 * atomically when it does. Since head and tail are never more than
 * `capacity` apart, a reader that knows one of them can rebuild the other
 * from its low half alone; the hot paths do that.
 */

export const CHANNEL_MAGIC = "memmapCh";
/**
 * 3: every frame's flags field holds a check of its length, type and position
 * (see frameCheck in ./file.ts), and FLAG_CHECKSUM exists. 2: producer slots
 * are held by byte-range locks (version 1 went by pids alone). Older
 * versions are refused with ERR_UNSUPPORTED: a channel is recreated, not
 * migrated.
 */
export const CHANNEL_VERSION = 3;
export const CACHE_LINE_LENGTH = 128;

export const MAGIC_OFFSET = 0;
export const MAGIC_LENGTH = 8;
export const VERSION_OFFSET = 8;
export const HEADER_LENGTH_OFFSET = 12;
export const CAPACITY_OFFSET = 16;
export const FLAGS_OFFSET = 20;
export const SLOT_COUNT_OFFSET = 24;
export const SLOT_LENGTH_OFFSET = 28;
export const CREATED_AT_OFFSET = 32;

export const TAIL_POSITION_OFFSET = 1 * CACHE_LINE_LENGTH;
export const HEAD_POSITION_OFFSET = 2 * CACHE_LINE_LENGTH;
export const RELEASE_POSITION_OFFSET = HEAD_POSITION_OFFSET + 8;
export const DATA_SEQ_OFFSET = 3 * CACHE_LINE_LENGTH;
export const DATA_WAITERS_OFFSET = DATA_SEQ_OFFSET + 4;
export const SPACE_SEQ_OFFSET = 4 * CACHE_LINE_LENGTH;
export const SPACE_WAITERS_OFFSET = SPACE_SEQ_OFFSET + 4;
export const ENDED_OFFSET = 5 * CACHE_LINE_LENGTH;
export const CONSUMER_PID_OFFSET = ENDED_OFFSET + 4;
export const CONSUMER_PID_NS_OFFSET = ENDED_OFFSET + 8;
export const CONSUMER_START_OFFSET = ENDED_OFFSET + 16;

export const SLOTS_OFFSET = 1024;
export const SLOT_LENGTH = 64;
export const SLOT_COUNT = 48;
export const SLOT_PID_OFFSET = 0;
export const SLOT_PID_NS_OFFSET = 4;
export const SLOT_START_OFFSET = 8;
export const SLOT_CLAIM_START_OFFSET = 16;
export const SLOT_CLAIM_LENGTH_OFFSET = 24;
/**
 * How many of the space doorbell's waiters are this slot's producer: raised
 * before its doorbell wait counts itself and lowered after it uncounts itself,
 * so it never says less than the producer adds there. What the live slots
 * say is then a bound on the shared count; the excess is killed waiters'.
 */
export const SLOT_SPACE_WAITS_OFFSET = 28;
/**
 * A producer holds its slot `s` with an open-file-description lock on the
 * byte at SLOT_LOCK_OFFSET + s (far past the file's end: a lock needs no
 * bytes there). The kernel drops the lock when the producer's process dies,
 * in whatever PID namespace it ran: the lock, not the pid, proves a producer
 * gone. The pid fields are for people (stats, error messages).
 */
export const SLOT_LOCK_OFFSET = 2 ** 40;

export const HEADER_LENGTH = 4096;

/** FLAGS bit: many producers claim space with a compare-and-swap on the tail. */
export const FLAG_MULTI_PRODUCER = 1;
/**
 * FLAGS bit: every DATA frame carries a CRC32C of its payload in the 4 bytes
 * after its header (at FRAME_CHECKSUM_OFFSET), checked by the consumer
 * before it delivers the message:
 *
 * ```
 *  0              4            6            8              12
 *  +--------------+------------+------------+--------------+---------------------+
 *  | length (i32) | type (u16) | check (u16)| CRC32C (u32) | payload … pad to 8  |
 *  +--------------+------------+------------+--------------+---------------------+
 * ```
 */
export const FLAG_CHECKSUM = 2;
export const FRAME_CHECKSUM_OFFSET = 8;
/** Where a DATA frame's payload starts: after the header, and after the CRC32C with FLAG_CHECKSUM. */
export const PAYLOAD_OFFSET = 8;
export const CHECKSUMMED_PAYLOAD_OFFSET = 12;

export const MIN_CAPACITY = 4096;
export const MAX_CAPACITY = 2 ** 30;
/** Positions wrap here; a multiple of every capacity. */
export const POSITION_MODULUS = 2 ** 52;

/** Byte offset of producer slot `slot`. */
export function slotOffset(slot: number): number {
  return SLOTS_OFFSET + slot * SLOT_LENGTH;
}

/** `position + bytes`, modulo POSITION_MODULUS. */
export function advance(position: number, bytes: number): number {
  const next = position + bytes;
  return next >= POSITION_MODULUS ? next - POSITION_MODULUS : next;
}

/** `position - bytes`, modulo POSITION_MODULUS. */
export function retreat(position: number, bytes: number): number {
  const previous = position - bytes;
  return previous < 0 ? previous + POSITION_MODULUS : previous;
}

/** Bytes from `from` forward to `to`, modulo POSITION_MODULUS. */
export function distance(from: number, to: number): number {
  const d = to - from;
  return d < 0 ? d + POSITION_MODULUS : d;
}

/** True when `value` is a position a sane peer could have written. */
export function isPosition(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < POSITION_MODULUS && value % 8 === 0;
}

export const TWO_32 = 2 ** 32;

/** `position % capacity` for a power-of-two capacity (the % operator is slow on numbers above 2^31). */
export function ringIndex(position: number, capacity: number): number {
  return position - Math.floor(position / capacity) * capacity;
}

/** The low 32 bits of a position, as an Int32Array element holds them. */
export function lowWord(position: number): number {
  return (position - Math.floor(position / TWO_32) * TWO_32) | 0;
}

/** Bytes from a position with low half `fromLow` forward to one with low half `toLow` (they are < 2^32 apart). */
export function lowDistance(fromLow: number, toLow: number): number {
  return (toLow - fromLow) >>> 0;
}

// The layout's own consistency: a mistake here is caught at import, not in a peer.
if (SLOTS_OFFSET + SLOT_COUNT * SLOT_LENGTH > HEADER_LENGTH) throw new Error("channel layout: slots overflow the header");
if (CONSUMER_START_OFFSET + 8 > SLOTS_OFFSET) throw new Error("channel layout: consumer fields overflow");
