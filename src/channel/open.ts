/**
 * Creating, opening and inspecting a channel: the checks of the options, the
 * file made whole before anyone can open it, the header validated before a
 * {@link Channel} handle is made (see ./channel.ts).
 */
import * as fs from "node:fs";
import { invalidArg, sys } from "../core/errors.ts";
import { mapFile, type MappedFile } from "../core/mapped-file.ts";
import { growFile } from "../core/open-file.ts";
import { writeAtomically } from "../core/temp-file.ts";
import type { SharedMemory } from "../core/shared-memory.ts";
import { checkStrategy } from "../core/wait.ts";
import { checkInteger, checkMode, validateBoolean, validateOneOf, validateOptions } from "../core/validate.ts";
import { Channel, channelToken } from "./channel.ts";
import { collectStats, initialize, openOwn, positions, probeConsumer, validateHeader, viewsOf, type ChannelStats } from "./file.ts";
import { HEADER_LENGTH, MAX_CAPACITY, MIN_CAPACITY } from "./layout.ts";
import { DEFAULT_CAPACITY, EXISTS_HINT, checkSpin, nextPowerOfTwo, overwriteOf, targetOf, type CreateChannelOptions, type OpenChannelOptions } from "./options.ts";

/**
 * Creates a channel: at a path (a new file, typically under /dev/shm), or in
 * a {@link SharedMemory} or an open file descriptor (which is grown to fit
 * and overwritten). The returned handle can send, receive, or both.
 *
 * ```ts
 * const ch = createChannel("/dev/shm/jobs", { capacity: 1 << 20 });
 * ch.send("hello");
 * ```
 *
 * @throws {@link MmapError} `ERR_INVALID_ARG` for a bad option; `EEXIST`
 * when the path exists (pass `overwrite: true` to replace it); `ENOSPC` when
 * the file system (e.g. a container's 64 MiB /dev/shm) cannot hold the ring,
 * reported now rather than as a crash later; `EISDIR`/`ENODEV` for a target
 * that is not a regular file; `ERR_INSECURE`/`ELOOP` as {@link mapFile} for
 * a path another user could redirect; and the errno of any other failed
 * system call, with `path`.
 */
export function createChannel(pathOrShm: string | number | SharedMemory, options: CreateChannelOptions = {}): Channel {
  const target = targetOf(pathOrShm, "createChannel()");
  validateOptions(options, ["capacity", "producers", "checksum", "mode", "overwrite", "replace", "strategy", "spin"], "createChannel");
  const requested = options.capacity === undefined ? DEFAULT_CAPACITY : checkInteger("capacity", options.capacity);
  if (requested < MIN_CAPACITY || requested > MAX_CAPACITY)
    throw invalidArg(`capacity must be from ${MIN_CAPACITY} (4 KiB) to ${MAX_CAPACITY} (1 GiB) bytes, got ${requested}`);
  const capacity = nextPowerOfTwo(requested);
  const producers = options.producers === undefined ? "single" : validateOneOf(options.producers, "producers", ["single", "multi"] as const);
  const checksum = options.checksum === undefined ? false : validateBoolean(options.checksum, "checksum");
  const mode = checkMode(options.mode);
  const overwrite = overwriteOf(options);
  const strategy = checkStrategy(options.strategy, "adaptive");
  const spin = checkSpin(options.spin);
  const total = HEADER_LENGTH + capacity;

  if (typeof target === "string") {
    if (target.length === 0) throw invalidArg("path must not be empty");
    // Built under a temporary name and linked into place whole: no process ever opens a half-made channel.
    const fd = writeAtomically(
      target,
      mode,
      (fd) => {
        growFile(fd, 0, total, false, target);
        const file = mapFile(fd, { access: "write", length: total });
        try {
          initialize(file, capacity, producers === "multi", checksum, false);
        } finally {
          file.close();
        }
      },
      { replace: overwrite, hint: EXISTS_HINT },
    );
    fs.closeSync(fd);
    return openChannel(target, { strategy, ...(spin === undefined ? {} : { spin }) });
  }

  const { fd } = openOwn(target, true);
  try {
    const size = sys(undefined, () => fs.fstatSync(fd).size);
    growFile(fd, size, total, false);
    const file = mapFile(fd, { access: "write", length: total });
    try {
      initialize(file, capacity, producers === "multi", checksum, size > 0);
    } finally {
      file.close();
    }
  } finally {
    fs.closeSync(fd);
  }
  return openChannel(target, { strategy, ...(spin === undefined ? {} : { spin }) });
}

/**
 * Opens an existing channel by path, by an inherited file descriptor (e.g.
 * fd 3 of a child given a SharedMemory in its stdio), or by SharedMemory.
 */
export function openChannel(pathOrFd: string | number | SharedMemory, options: OpenChannelOptions = {}): Channel {
  const target = targetOf(pathOrFd, "openChannel()");
  validateOptions(options, ["strategy", "spin"], "openChannel");
  const strategy = checkStrategy(options.strategy, "adaptive");
  const spin = checkSpin(options.spin);
  const { fd, path } = openOwn(target, true);
  let file: MappedFile | undefined;
  try {
    file = mapChannel(fd, "write");
    const info = validateHeader(file, path);
    positions(viewsOf(file, info.capacity).longs, info.capacity, path);
    return new Channel(channelToken, file, fd, path, info, strategy, spin);
  } catch (error) {
    file?.close();
    fs.closeSync(fd);
    throw error;
  }
}

/**
 * Reads a channel's header without joining it (read-only; no lock taken, no
 * slot used) and returns its {@link ChannelStats}. Throws ERR_CORRUPT for a
 * file that is not a valid channel.
 */
export function inspectChannel(pathOrFd: string | number): ChannelStats {
  const target = targetOf(pathOrFd, "inspectChannel()");
  const { fd, path } = openOwn(target, false);
  let file: MappedFile | undefined;
  try {
    file = mapChannel(fd, "read");
    const info = validateHeader(file, path);
    return collectStats({ fd, v: viewsOf(file, info.capacity), ownSlot: -1 }, info, probeConsumer(fd), path);
  } finally {
    file?.close();
    fs.closeSync(fd);
  }
}

/** Maps a channel file: all of it, or for a file grown past the largest ring, just the largest header and ring (the rest is never read). */
function mapChannel(fd: number, access: "read" | "write"): MappedFile {
  const size = sys(undefined, () => fs.fstatSync(fd).size);
  const largest = HEADER_LENGTH + MAX_CAPACITY;
  return mapFile(fd, size > largest ? { access, length: largest } : { access });
}
