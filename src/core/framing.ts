/**
 * Record framing, shared by the channel's ring and the log's segments: one
 * format, defined once, here.
 *
 * ```
 *  0              4              6              8
 *  +--------------+--------------+--------------+---------------------------+
 *  | length (i32) | type (u16)   | flags (u16)  | payload … zero pad to 8   |
 *  +--------------+--------------+--------------+---------------------------+
 * ```
 *
 * `length` is the frame's length in bytes (header + payload, before padding):
 * - `0`: nothing has been written here yet: the end of the data;
 * - `< 0`: claimed by a writer that is still writing (`-length`);
 * - `> 0`: committed. It is stored last, with an atomic store, so a reader
 *   that loads a positive length (atomically) sees the whole payload.
 *
 * Frames start at multiples of {@link FRAME_ALIGNMENT} and never straddle the
 * end of a region: a {@link FrameType.PADDING} frame fills the remainder.
 * All integers are little-endian (the byte order of every machine memmap
 * runs on; Int32Array is host-endian).
 */
export const FRAME_LENGTH_OFFSET = 0;
export const FRAME_TYPE_OFFSET = 4;
export const FRAME_FLAGS_OFFSET = 6;
export const FRAME_HEADER_LENGTH = 8;
export const FRAME_ALIGNMENT = 8;

export const FrameType = {
  /** A message or record. */
  DATA: 1,
  /** Filler to the end of the region; readers skip to the start of the next. */
  PADDING: 2,
  /** A frame whose writer died before committing, sealed by whoever noticed; skipped. */
  ABORTED: 3,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** The space a frame with `payloadLength` bytes of payload occupies. */
export function alignedFrameLength(payloadLength: number): number {
  const n = FRAME_HEADER_LENGTH + payloadLength;
  return Math.ceil(n / FRAME_ALIGNMENT) * FRAME_ALIGNMENT;
}

/** Rounds a byte count up to the frame alignment. */
export function alignFrame(bytes: number): number {
  return Math.ceil(bytes / FRAME_ALIGNMENT) * FRAME_ALIGNMENT;
}

/** The frame length at `byteOffset`, loaded atomically (acquire). */
export function frameLengthAcquire(words: Int32Array, byteOffset: number): number {
  return Atomics.load(words, byteOffset >>> 2);
}

/** Marks a frame as claimed: writers skip it, readers wait for it. */
export function claimFrame(words: Int32Array, byteOffset: number, frameLength: number): void {
  Atomics.store(words, byteOffset >>> 2, -frameLength);
}

/** Publishes a frame: the last store of a write, after payload, type and flags. */
export function commitFrameRelease(words: Int32Array, byteOffset: number, frameLength: number): void {
  Atomics.store(words, byteOffset >>> 2, frameLength);
}

/** Writes a frame's type and flags (before committing it). */
export function writeFrameHeader(view: DataView, byteOffset: number, type: FrameType, flags = 0): void {
  view.setUint16(byteOffset + FRAME_TYPE_OFFSET, type, true);
  view.setUint16(byteOffset + FRAME_FLAGS_OFFSET, flags, true);
}

export function frameType(view: DataView, byteOffset: number): number {
  return view.getUint16(byteOffset + FRAME_TYPE_OFFSET, true);
}

export function frameFlags(view: DataView, byteOffset: number): number {
  return view.getUint16(byteOffset + FRAME_FLAGS_OFFSET, true);
}
