/**
 * A durable cursor entry of `log.meta` (layout in ./layout.ts): the checked
 * seq and time words, and the decoding of a copied entry (the file is
 * untrusted). Pure functions of bytes; the Meta class maps and stores.
 */
import {
  CURSOR_CHECKED, CURSOR_FREE, CURSOR_IN_USE, CURSOR_LENGTH, CURSOR_NAME_LENGTH_OFFSET, CURSOR_NAME_MAX_LENGTH,
  CURSOR_NAME_OFFSET, CURSOR_SEQ_BITS, CURSOR_SEQ_CHECK_BITS, CURSOR_SEQ_OFFSET, CURSOR_TIME_BITS, CURSOR_TIME_CHECK_BITS,
  CURSOR_UPDATED_AT_OFFSET, CURSOR_WORD_CHECKED_HI,
} from "./layout.ts";

export interface CursorEntry {
  name: string;
  seq: number;
  updatedAt: number;
}

/** What a copied entry holds: a free slot, a cursor, or why it cannot have been written by a reader. */
export type DecodedCursor = { free: true } | { entry: CursorEntry } | { damage: string; name?: string };

const SEQ_KIND = 1;
const TIME_KIND = 2;
const MAX_TIME = 2 ** CURSOR_TIME_BITS - 1;
const decoder = new TextDecoder("utf-8", { fatal: true });

// CRC32C in JavaScript: a commit checks a few bytes, and a native call costs more than the sum.
const CRC_TABLE = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c;
});

/** Continues CRC32C `crc` (0 to start) over bytes [start, end) of `bytes`. */
function crc32c(bytes: Uint8Array, crc = 0, start = 0, end = bytes.length): number {
  let c = ~crc;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Continues CRC32C `crc` over the `count` low bytes of `value`, little-endian. */
function crcBytesOf(value: number, count: number, crc: number): number {
  let c = ~crc;
  for (let shift = 0; shift < count * 8; shift += 8) c = CRC_TABLE[(c ^ (value >>> shift)) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC32C of the name length and the whole name field of the entry at byte `base` of `u8` (both fixed while the entry is in use). */
export function nameCrc(u8: Uint8Array, base: number): number {
  const length = crc32c(u8, 0, base + CURSOR_NAME_LENGTH_OFFSET, base + CURSOR_NAME_LENGTH_OFFSET + 4);
  return crc32c(u8, length, base + CURSOR_NAME_OFFSET, base + CURSOR_LENGTH);
}

/** A 64-bit word as its two u32 halves. */
export interface Word {
  hi: number;
  lo: number;
}

/**
 * The checked word for `value` (a non-negative integer below 2^valueBits,
 * valueBits > 32): bit 63 set, then the low `checkBits` bits of CRC32C over
 * the name (`nameCrc`), a kind byte and the value's 8 bytes, then the value.
 */
function encode(kind: number, value: number, nameCrc: number, valueBits: number, checkBits: number): Word {
  const lo = value >>> 0;
  const hi = Math.floor(value / 0x1_0000_0000);
  const crc = crcBytesOf(hi, 4, crcBytesOf(lo, 4, crcBytesOf(kind, 1, nameCrc)));
  const check = crc & ((1 << checkBits) - 1);
  return { hi: (CURSOR_WORD_CHECKED_HI | (check << (valueBits - 32)) | hi) >>> 0, lo };
}

/** The value in a checked word, or undefined if its check does not match. */
function decode(kind: number, word: Word, nameCrc: number, valueBits: number, checkBits: number): number | undefined {
  const value = (word.hi & ((1 << (valueBits - 32)) - 1)) * 0x1_0000_0000 + word.lo;
  const again = encode(kind, value, nameCrc, valueBits, checkBits);
  return again.hi === word.hi && again.lo === word.lo ? value : undefined;
}

export function seqWord(seq: number, nameCrc: number): Word {
  return encode(SEQ_KIND, seq, nameCrc, CURSOR_SEQ_BITS, CURSOR_SEQ_CHECK_BITS);
}

export function timeWord(ms: number, nameCrc: number): Word {
  const clamped = Math.min(Math.max(0, Math.floor(ms)), MAX_TIME);
  return encode(TIME_KIND, clamped, nameCrc, CURSOR_TIME_BITS, CURSOR_TIME_CHECK_BITS);
}

/** A word as the signed 64-bit value a BigInt64Array stores in one atomic store. */
export function wordValue(word: Word): bigint {
  return (BigInt(word.hi | 0) << 32n) | BigInt(word.lo);
}

/**
 * Decodes a copy of one entry. A checked entry must have both words checked
 * and matching; an unchecked one (an older memmap's) may hold either kind of
 * word while a commit converts it, and its unchecked words are taken as they are.
 */
export function decodeCursor(bytes: Uint8Array): DecodedCursor {
  const view = new DataView(bytes.buffer, bytes.byteOffset, CURSOR_LENGTH);
  const state = view.getUint32(0, true);
  if (state === CURSOR_FREE) return { free: true };
  if (state !== CURSOR_IN_USE && state !== CURSOR_CHECKED) return { damage: `state ${state}` };
  const nameLength = view.getUint32(CURSOR_NAME_LENGTH_OFFSET, true);
  if (nameLength === 0 || nameLength > CURSOR_NAME_MAX_LENGTH) return { damage: `name length ${nameLength}` };
  let name: string | undefined;
  try {
    name = decoder.decode(bytes.subarray(CURSOR_NAME_OFFSET, CURSOR_NAME_OFFSET + nameLength));
  } catch {
    name = undefined;
  }
  const crc = nameCrc(bytes, 0);
  const word = (at: number): Word => ({ hi: view.getUint32(at + 4, true), lo: view.getUint32(at, true) });
  const seqBits = word(CURSOR_SEQ_OFFSET);
  const timeBits = word(CURSOR_UPDATED_AT_OFFSET);
  const checked = state === CURSOR_CHECKED;
  // An unchecked word (bit 63 clear) only in an unchecked entry: the seq as a u64, the time as an f64.
  let seq: number | undefined = seqBits.hi * 0x1_0000_0000 + seqBits.lo;
  if (checked || seqBits.hi >= CURSOR_WORD_CHECKED_HI) seq = decode(SEQ_KIND, seqBits, crc, CURSOR_SEQ_BITS, CURSOR_SEQ_CHECK_BITS);
  let updatedAt: number | undefined = view.getFloat64(CURSOR_UPDATED_AT_OFFSET, true);
  if (checked || timeBits.hi >= CURSOR_WORD_CHECKED_HI) updatedAt = decode(TIME_KIND, timeBits, crc, CURSOR_TIME_BITS, CURSOR_TIME_CHECK_BITS);
  if (name === undefined) return { damage: "its name is not UTF-8" };
  if (seq === undefined || updatedAt === undefined)
    return { damage: "its check does not match (the name, position or time was damaged)", name };
  if (seq > Number.MAX_SAFE_INTEGER) return { damage: `seq ${seqBits.hi * 0x1_0000_0000 + seqBits.lo} is out of range`, name };
  return { entry: { name, seq, updatedAt } };
}
