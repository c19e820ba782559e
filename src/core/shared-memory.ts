/**
 * Shared memory without a file: an anonymous memfd. Its descriptor can be
 * given to a child process (as a stdio slot) and mapped there with
 * `mapFile(fd, { access: "write" })`; both processes then share the pages.
 *
 * The memfd is owned by this thread's environment (native adoptFd): a
 * SharedMemory dropped without close() is closed when it is garbage-collected,
 * and one left open in a worker is closed when the worker ends.
 */
import { MmapError, invalidArg, sys } from "./errors.ts";
import { mapFile, type MapOptions, type MappedFile } from "./mapped-file.ts";
import { growFile } from "./open-file.ts";
import { checkInteger, validateOptions } from "./validate.ts";
import { native } from "./native.ts";

// Closes the memfds of SharedMemory objects collected without close(). Mappings
// made with map() hold their own descriptor and keep the memory.
const memfdReaper = new FinalizationRegistry<number>((fd) => {
  try {
    native.closeFd(fd);
  } catch {
    /* already closed */
  }
});

/** Options of {@link createSharedMemory}. */
export interface SharedMemoryOptions {
  /** A name for /proc/<pid>/fd listings and debugging; not a path. @default "memmap" */
  name?: string;
}

/** Anonymous shared memory (a memfd), made by {@link createSharedMemory}. */
export class SharedMemory {
  #fd: number;
  readonly size: number;

  /** @internal use createSharedMemory() */
  constructor(fd: number, size: number) {
    this.#fd = fd;
    this.size = size;
    memfdReaper.register(this, fd, this);
  }

  /** The descriptor, to pass to a child process (e.g. `stdio: ["inherit", "inherit", "inherit", shm.fd]`). */
  get fd(): number {
    if (this.#fd < 0) throw new MmapError("ERR_CLOSED", "the shared memory is closed");
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Maps the memory (access "write" unless told otherwise). */
  map(options: MapOptions = {}): MappedFile {
    return mapFile(this.fd, { access: "write", ...options });
  }

  /**
   * Closes this process's descriptor; mappings and other processes keep the
   * memory. Close it here, never with fs.closeSync(shm.fd): the descriptor is
   * also closed when this object is garbage-collected, and its number may
   * belong to another file by then.
   */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    memfdReaper.unregister(this);
    native.closeFd(fd);
  }

  /** close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Creates `size` bytes of zeroed shared memory, allocated now (ENOMEM now,
 * never SIGBUS later). More than the memory available now is refused with
 * ENOMEM before anything is allocated.
 */
export function createSharedMemory(size: number, options: SharedMemoryOptions = {}): SharedMemory {
  checkInteger("size", size);
  validateOptions(options, ["name"], "createSharedMemory");
  const name = options.name ?? "memmap";
  if (typeof name !== "string" || name.length > 200 || name.includes("/"))
    throw invalidArg("name must be a string of at most 200 characters without '/'");
  // growFile refuses more than the memory available: a memfd has no size
  // limit of its own, and overcommitting it would wake the OOM killer.
  const fd = sys(undefined, () => native.memfd(name));
  try {
    native.adoptFd(fd);
    growFile(fd, 0, size, false);
  } catch (error) {
    native.closeFd(fd);
    throw error;
  }
  return new SharedMemory(fd, size);
}
