/**
 * memmap: memory-mapped files for Node.js.
 *
 * The public API. Everything not exported here is internal.
 */
export { mapFile, MappedFile, pageSize, MAX_BUFFER_LENGTH } from "./mapped-file.ts";
export type { Access, Advice, MapOptions, Residency, TypedArrayConstructor } from "./mapped-file.ts";
export { createSharedMemory, SharedMemory } from "./shared-memory.ts";
export type { SharedMemoryOptions } from "./shared-memory.ts";
export { MmapError } from "./errors.ts";
export type { MmapErrorCode } from "./errors.ts";
export { Doorbell } from "./wait.ts";
export type { WaitStrategy, WaitOptions, AsyncWaitOptions } from "./wait.ts";
