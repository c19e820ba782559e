/**
 * Arrow IPC files (Feather v2), mapped zero-copy: `openArrowFile` returns an
 * apache-arrow `Table` whose column buffers are views of the mapped file.
 *
 * apache-arrow's own loaders take the whole file as one `Uint8Array` (so a
 * user reads it into the heap first, and one buffer stops at 4 GiB).
 * memmap instead gives apache-arrow's file reader a source that answers
 * each read with a view of the mapping: the footer, each message's metadata
 * and each record batch's body are windows of the one mapping, and the
 * column buffers apache-arrow makes over them are views too. A file of any
 * size works as long as each record batch's body fits one ArrayBuffer (4 GiB).
 *
 * ```
 *  "ARROW1\0\0" | schema message | dictionary batches | record batches | footer (flatbuffer) | i32 footer length | "ARROW1"
 * ```
 *
 * apache-arrow is an optional peer dependency, loaded on the first call.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { MmapError, invalidArg } from "../core/errors.ts";
import { mapFile, MAX_BUFFER_LENGTH, type MappedFile } from "../core/mapped-file.ts";

// ---- the file's frame ------------------------------------------------------------------------------

const MAGIC = "ARROW1";
/** The magic at the start is padded to 8 bytes. */
const LEADING_MAGIC_LENGTH = 8;
/** The end: i32 footer length, then the 6-byte magic. */
const TRAILER_LENGTH = 4 + MAGIC.length;
const CODECS = ["LZ4_FRAME", "ZSTD"];

// ---- loading apache-arrow ------------------------------------------------------------------------

/* eslint-disable @typescript-eslint/no-explicit-any */
type ArrowModule = typeof import("apache-arrow");
interface Loaded {
  arrow: ArrowModule;
  /** apache-arrow's RandomAccessFile (io/file), which its file reader accepts as a source. */
  RandomAccessFile: new (buffer: Uint8Array, byteLength?: number) => any;
  /** apache-arrow's (unexported) RecordBatchFileReaderImpl. */
  FileReaderImpl: new (source: any) => any;
}
let loaded: Loaded | undefined;

/**
 * Loads apache-arrow synchronously, as the same module instance an
 * `import "apache-arrow"` gives the program (require() of its ES module
 * build: Node 20.19+), so that `instanceof Table` holds for what we return.
 */
function loadArrow(): Loaded {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  let arrow: ArrowModule;
  let file: { RandomAccessFile: Loaded["RandomAccessFile"] };
  try {
    arrow = require(fileURLToPath(import.meta.resolve("apache-arrow"))) as ArrowModule;
    file = require(fileURLToPath(import.meta.resolve("apache-arrow/io/file"))) as typeof file;
  } catch (error) {
    throw new MmapError(
      "ERR_MISSING_DEPENDENCY",
      "openArrowFile() needs the optional peer dependency apache-arrow: run `npm install apache-arrow` (version 21)",
      { cause: error },
    );
  }
  // The file reader's implementation class is not exported: take it from a reader made over the bare magic.
  const probe = new Uint8Array(LEADING_MAGIC_LENGTH);
  probe.set(new TextEncoder().encode(MAGIC));
  const FileReaderImpl = (arrow.RecordBatchReader.from(probe) as any)._impl?.constructor;
  if (typeof FileReaderImpl !== "function" || !(arrow.RecordBatchReader.from(probe) instanceof arrow.RecordBatchFileReader))
    throw new MmapError("ERR_UNSUPPORTED", "this version of apache-arrow has no file reader memmap can drive (tested with version 21)");
  loaded = { arrow, RandomAccessFile: file.RandomAccessFile, FileReaderImpl };
  return loaded;
}

/** A RandomAccessFile whose reads are views of a mapping instead of sub-arrays of one buffer. */
function mappedSource(base: Loaded["RandomAccessFile"], map: MappedFile): any {
  const whole = map.byteLength <= MAX_BUFFER_LENGTH ? map.bytes : undefined;
  const view = (position: number, end: number): Uint8Array =>
    whole ? whole.subarray(position, end) : map.window(position, end - position);
  class MappedSource extends base {
    constructor() {
      super(new Uint8Array(0), map.byteLength);
    }
    read(nBytes?: number): Uint8Array | null {
      const { size, position } = this;
      if (position >= size) return null;
      const end = Math.min(size, position + Math.min(size - position, typeof nBytes === "number" ? nBytes : Infinity));
      this.position = end;
      return view(position, end);
    }
    readAt(position: number, nBytes: number): Uint8Array {
      if (!(position >= 0) || !(nBytes >= 0)) throw new RangeError(`a read of ${nBytes} bytes at ${position}`);
      return view(Math.min(position, this.size), Math.min(this.size, position + nBytes));
    }
    close(): void {}
  }
  return new MappedSource();
}
/* eslint-enable @typescript-eslint/no-explicit-any */

// ---- opening -------------------------------------------------------------------------------------

/**
 * Maps an Arrow IPC file (Feather v2, `.arrow`) and returns an apache-arrow
 * `Table` over it: fixed-width values, validity bitmaps, offsets and string
 * bytes are views of the mapped file, not copies. Dictionary-encoded columns
 * work. Compressed files (LZ4, ZSTD) are `ERR_UNSUPPORTED`: their buffers
 * would have to be decompressed into the heap.
 *
 * The mapping lives as long as the table (or any vector of it) is reachable.
 *
 * ```ts
 * const t = openArrowFile("trades.arrow");
 * t.getChild("price")!.get(123);
 * ```
 *
 * @throws {@link MmapError} `ERR_MISSING_DEPENDENCY` when apache-arrow is
 * not installed; `ERR_CORRUPT` for a file that is not a valid Arrow IPC file
 * (bad magic, footer or buffer bounds); `ERR_UNSUPPORTED` for compressed
 * buffers; and the errno of a failed system call (`ENOENT`, `EACCES`, …),
 * with `path`.
 */
export function openArrowFile(path: string): import("apache-arrow").Table {
  if (typeof path !== "string" || path.length === 0) throw invalidArg("openArrowFile() expects a path");
  const lib = loadArrow();
  const map = mapFile(path);
  const fail = (message: string, cause?: unknown) =>
    new MmapError("ERR_CORRUPT", `${path}: not a valid Arrow IPC file: ${message}`, { path, cause });
  try {
    const size = map.byteLength;
    if (size < LEADING_MAGIC_LENGTH + TRAILER_LENGTH) throw fail(`${size} bytes is shorter than the magic numbers and the footer length`);
    const text = (bytes: Uint8Array) => String.fromCharCode(...bytes);
    if (text(map.window(0, MAGIC.length)) !== MAGIC || text(map.window(size - MAGIC.length, MAGIC.length)) !== MAGIC)
      throw fail(`the magic "${MAGIC}" is missing at its start or end (an Arrow stream, not a file? Feather v1?)`);
    const footerLength = new DataView(map.window(size - TRAILER_LENGTH, 4).slice().buffer).getInt32(0, true);
    if (footerLength <= 0 || footerLength > size - LEADING_MAGIC_LENGTH - TRAILER_LENGTH) throw fail(`footer length ${footerLength} does not fit in the file`);

    const reader = new lib.arrow.RecordBatchFileReader(new lib.FileReaderImpl(mappedSource(lib.RandomAccessFile, map)));
    const batches: import("apache-arrow").RecordBatch[] = [];
    try {
      reader.open();
      for (let i = 0; i < reader.numRecordBatches; i++) {
        const batch = reader.readRecordBatch(i);
        if (batch === null) throw fail(`record batch ${i} of ${reader.numRecordBatches} could not be read`);
        batches.push(batch);
      }
    } catch (error) {
      if (error instanceof MmapError && error.code === "ERR_CORRUPT") throw error;
      const message = (error as Error)?.message ?? String(error);
      if (/compressed but codec not found/.test(message))
        throw new MmapError(
          "ERR_UNSUPPORTED",
          `${path}: the file's buffers are compressed (${compressionOf(lib, map) ?? CODECS.join(" or ")}); memmap maps uncompressed Arrow files, whose buffers can be viewed in place`,
          { path },
        );
      throw fail(message, error);
    }
    return new lib.arrow.Table(reader.schema, batches);
  } catch (error) {
    map.close();
    throw error;
  }
}

/** The codec of the first compressed record batch, read from its message header. */
function compressionOf(lib: Loaded, map: MappedFile): string | undefined {
  try {
    /* eslint-disable @typescript-eslint/no-explicit-any */
    const reader = new lib.arrow.RecordBatchFileReader(new lib.FileReaderImpl(mappedSource(lib.RandomAccessFile, map))) as any;
    reader.open();
    const impl = reader._impl;
    const block = impl.footer.getRecordBatch(0);
    impl._handle.seek(block.offset);
    const message = impl._reader.readMessage(lib.arrow.MessageHeader.RecordBatch);
    const type = message?.header()?.compression?.type;
    /* eslint-enable @typescript-eslint/no-explicit-any */
    return typeof type === "number" ? (CODECS[type] ?? `codec ${type}`) : undefined;
  } catch {
    return undefined;
  }
}
