/**
 * What the pull bridge appends: each stream message as one log record with
 * a 16-byte header in front of its payload, so the stream sequence of the
 * last message applied is stored durably in the same atomic append.
 *
 * ```
 * offset  size
 *      0     4  magic "MMJS"
 *      4     2  header length (16), little-endian
 *      6     2  flags (0)
 *      8     8  stream sequence, little-endian (exact up to 2^53)
 *     16     …  the message payload
 * ```
 */
import { MmapError } from "../core/errors.ts";

export const BRIDGE_MAGIC = 0x534a4d4d; // "MMJS" read as a little-endian u32
export const BRIDGE_MAGIC_OFFSET = 0;
export const BRIDGE_HEADER_LENGTH_OFFSET = 4;
export const BRIDGE_FLAGS_OFFSET = 6;
export const BRIDGE_STREAM_SEQ_OFFSET = 8;
export const BRIDGE_HEADER_LENGTH = 16;

/** One record appended by the pull bridge: the stream sequence it came from and the message's payload (a view). */
export interface BridgedRecord {
  streamSeq: number;
  payload: Uint8Array;
}

/** Frames a stream message as a record (copies the payload once). */
export function encodeBridged(streamSeq: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(BRIDGE_HEADER_LENGTH + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(BRIDGE_MAGIC_OFFSET, BRIDGE_MAGIC, true);
  dv.setUint16(BRIDGE_HEADER_LENGTH_OFFSET, BRIDGE_HEADER_LENGTH, true);
  dv.setUint16(BRIDGE_FLAGS_OFFSET, 0, true);
  dv.setBigUint64(BRIDGE_STREAM_SEQ_OFFSET, BigInt(streamSeq), true);
  out.set(payload, BRIDGE_HEADER_LENGTH);
  return out;
}

/** The header of a record, or undefined if it is not one the pull bridge appended. */
export function tryDecodeBridged(data: Uint8Array): BridgedRecord | undefined {
  if (data.byteLength < BRIDGE_HEADER_LENGTH) return undefined;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (dv.getUint32(BRIDGE_MAGIC_OFFSET, true) !== BRIDGE_MAGIC) return undefined;
  if (dv.getUint16(BRIDGE_HEADER_LENGTH_OFFSET, true) !== BRIDGE_HEADER_LENGTH || dv.getUint16(BRIDGE_FLAGS_OFFSET, true) !== 0) return undefined;
  const seq = dv.getBigUint64(BRIDGE_STREAM_SEQ_OFFSET, true);
  if (seq < 1n || seq > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { streamSeq: Number(seq), payload: data.subarray(BRIDGE_HEADER_LENGTH) };
}

/**
 * Splits a record of a log written by `bridgeFromJetStream` into the stream
 * sequence and the payload (a zero-copy view of `data`). ERR_CORRUPT if the
 * record does not carry the bridge's header.
 */
export function decodeBridgedRecord(data: Uint8Array): BridgedRecord {
  const r = tryDecodeBridged(data);
  if (r === undefined) throw new MmapError("ERR_CORRUPT", "not a record appended by bridgeFromJetStream (no valid MMJS header)");
  return r;
}
