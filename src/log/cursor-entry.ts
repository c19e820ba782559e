/**
 * A durable cursor entry of `log.meta` (layout in ./layout.ts): the checked
 * seq and time words, and the decoding of a copied entry (the file is
 * untrusted). Pure functions of bytes; the Meta class maps and stores.
 */
import { native } from "../core/native.ts";
import {
  CURSOR_CHECKED, CURSOR_FREE, CURSOR_IN_USE, CURSOR_LENGTH, CURSOR_NAME_LENGTH_OFFSET, CURSOR_NAME_MAX_LENGTH,
  CURSOR_NAME_OFFSET, CURSOR_SEQ_BITS, CURSOR_SEQ_CHECK_BITS, CURSOR_SEQ_OFFSET, CURSOR_TIME_BITS, CURSOR_TIME_CHECK_BITS,
  CURSOR_UPDATED_AT_OFFSET, CURSOR_WORD_CHECKED,
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
const scratch = new ArrayBuffer(9);
const scratchView = new DataView(scratch);
const decoder = new TextDecoder("utf-8", { fatal: true });

/** CRC32C of the name length and the whole name field of the entry at `base` (both fixed once the entry is in use). */
export function nameCrc(buffer: ArrayBufferLike, base: number): number {
  const crc = native.crc32c(buffer as ArrayBuffer, base + CURSOR_NAME_LENGTH_OFFSET, 4, 0);
  return native.crc32c(buffer as ArrayBuffer, base + CURSOR_NAME_OFFSET, CURSOR_NAME_MAX_LENGTH, crc);
}

function check(kind: number, value: bigint, nameCrc: number, bits: number): bigint {
  scratchView.setUint8(0, kind);
  scratchView.setBigUint64(1, value, true);
  return BigInt(native.crc32c(scratch, 0, 9, nameCrc)) & ((1n << BigInt(bits)) - 1n);
}

/** A checked word: bit 63, the check over the name and the value, the value (a non-negative integer below 2^valueBits). */
function encode(kind: number, value: bigint, nameCrc: number, valueBits: number, checkBits: number): bigint {
  return CURSOR_WORD_CHECKED | (check(kind, value, nameCrc, checkBits) << BigInt(valueBits)) | value;
}

/** The value in a checked word, or undefined if its check does not match. */
function decode(kind: number, word: bigint, nameCrc: number, valueBits: number, checkBits: number): bigint | undefined {
  const value = word & ((1n << BigInt(valueBits)) - 1n);
  return encode(kind, value, nameCrc, valueBits, checkBits) === word ? value : undefined;
}

export function seqWord(seq: number, nameCrc: number): bigint {
  return encode(SEQ_KIND, BigInt(seq), nameCrc, CURSOR_SEQ_BITS, CURSOR_SEQ_CHECK_BITS);
}

export function timeWord(ms: number, nameCrc: number): bigint {
  const clamped = Math.min(Math.max(0, Math.floor(ms)), 2 ** CURSOR_TIME_BITS - 1);
  return encode(TIME_KIND, BigInt(clamped), nameCrc, CURSOR_TIME_BITS, CURSOR_TIME_CHECK_BITS);
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
  const crc = nameCrc(bytes.buffer, bytes.byteOffset);
  const seqBits = view.getBigUint64(CURSOR_SEQ_OFFSET, true);
  const timeBits = view.getBigUint64(CURSOR_UPDATED_AT_OFFSET, true);
  const checked = state === CURSOR_CHECKED;
  let seq: bigint | undefined = seqBits;
  if (checked || (seqBits & CURSOR_WORD_CHECKED) !== 0n) seq = decode(SEQ_KIND, seqBits, crc, CURSOR_SEQ_BITS, CURSOR_SEQ_CHECK_BITS);
  let updatedAt: number | undefined = view.getFloat64(CURSOR_UPDATED_AT_OFFSET, true);
  if (checked || (timeBits & CURSOR_WORD_CHECKED) !== 0n) {
    const ms = decode(TIME_KIND, timeBits, crc, CURSOR_TIME_BITS, CURSOR_TIME_CHECK_BITS);
    updatedAt = ms === undefined ? undefined : Number(ms);
  }
  if (name === undefined) return { damage: "its name is not UTF-8" };
  if (seq === undefined || updatedAt === undefined)
    return { damage: "its check does not match (the name, position or time was damaged)", name };
  if (seq > BigInt(Number.MAX_SAFE_INTEGER)) return { damage: `seq ${seq} is out of range`, name };
  return { entry: { name, seq: Number(seq), updatedAt } };
}
