/**
 * memmap: memory-mapped files for Node.js.
 *
 * The public API. Everything not exported here is internal.
 */
export { mapFile, MappedFile, pageSize, MAX_BUFFER_LENGTH } from "./core/mapped-file.ts";
export type { Access, Advice, MapOptions, Residency, TypedArrayConstructor } from "./core/mapped-file.ts";
export { createSharedMemory, SharedMemory } from "./core/shared-memory.ts";
export type { SharedMemoryOptions } from "./core/shared-memory.ts";
export { MmapError } from "./core/errors.ts";
export type { ErrnoCode, MmapErrorCode, MmapErrorOptions, MmapOwnErrorCode } from "./core/errors.ts";
export { Doorbell } from "./core/wait.ts";
export type { WaitStrategy, WaitOptions, AsyncWaitOptions } from "./core/wait.ts";
export { struct, utf8, array, Layout } from "./views/struct.ts";
export type { StructOptions, LayoutField, ResolvedField } from "./views/struct.ts";
export { StructArray } from "./views/struct-array.ts";
export type { StructArrayOptions, StructSource, ColumnOptions } from "./views/struct-array.ts";
export { createRecordFile, openRecordFile, RecordFile } from "./views/record-file.ts";
export type { CreateRecordFileOptions, OpenRecordFileOptions } from "./views/record-file.ts";
export type { FieldType, Schema, Row, RowOf, RowAccessor, RowFields, RowInput, FieldArray, Value, FieldAccess, ScalarTypeName, NumberTypeName, BigIntTypeName, Utf8Type, ArrayType, Column, ColumnOf } from "./views/types.ts";
export { createChannel, openChannel, inspectChannel } from "./channel/open.ts";
export { Channel } from "./channel/channel.ts";
export type { ChannelProducers, ChannelStats } from "./channel/file.ts";
export type { ChannelData } from "./channel/producer.ts";
export type { CreateChannelOptions, OpenChannelOptions, SendOptions, SendAsyncOptions, TryReceiveOptions, ReceiveOptions, ReceiveAsyncOptions } from "./channel/options.ts";
export { openLog, Log } from "./log/log.ts";
export type { Durability, LogOptions, LogRecovery, RetentionOptions } from "./log/log.ts";
export { LogReader } from "./log/reader.ts";
export type { LogRecord, LogReaderOptions, WaitNextOptions } from "./log/reader.ts";
export { inspectLog } from "./log/inspect.ts";
export type { InspectLogOptions, LogInspection, LogSegmentInfo } from "./log/inspect.ts";
export type { MetaRebuild } from "./log/meta-rebuild.ts";
export type { LogDamage, LogCorruptError } from "./log/damage.ts";
export { openNpy, createNpy, NpyArray, layoutDescr } from "./views/npy.ts";
export type { NpyData, NpyTypedArray, NpyTypedArrayConstructor, NpyElement, NpyDescr, NpyField, OpenNpyOptions, CreateNpyOptions } from "./views/npy.ts";
export { openArrowFile } from "./views/arrow.ts";
export { evictFile } from "./core/page-cache.ts";
export type { EvictOptions } from "./core/page-cache.ts";
export { bridgeToJetStream } from "./bridge/push.ts";
export type { PushBridge, PushBridgeOptions, PushBridgeStats } from "./bridge/push.ts";
export { bridgeFromJetStream } from "./bridge/pull.ts";
export type { PullBridge, PullBridgeOptions, PullBridgeStats } from "./bridge/pull.ts";
export { decodeBridgedRecord } from "./bridge/record.ts";
export type { BridgedRecord } from "./bridge/record.ts";
