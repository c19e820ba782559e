/* Mappings: mmap/munmap/mremap, the external ArrayBuffers that expose a
 * mapping to JavaScript, and the reservations described below. What is done
 * to a range of a live mapping (msync, madvise, mlock, mincore, the jobs on the
 * thread pool) is in ranges.c; what is done to files and descriptors
 * (fallocate, memfd, locks...) is in files.c.
 *
 * Lifetime. close() detaches the ArrayBuffers JavaScript holds, but Node's own
 * asynchronous work (crypto.randomFill and zlib on the thread pool, fs reads,
 * socket writes) keeps raw pointers into them, and ArrayBuffer.prototype.transfer()
 * moves the memory to a buffer close() never saw. So an address range that
 * leaves the mapping (close(), the tail cut by a shrinking resize(), the old
 * range of a resize() that moved) is never left as a hole: it is replaced at
 * once, atomically (MAP_FIXED), by private anonymous memory (a "reservation"),
 * which releases the file's pages now and where late reads see zeros and late
 * writes reach no file. A reservation is unmapped once every buffer handed out
 * before it was made is gone: both the ArrayBuffer object (Node's async work
 * keeps it alive while it uses the memory) and its backing store (a transfer()ed
 * buffer keeps that) have been released by V8. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "guard.h"
#include "mapping.h"

/* Process-wide, not in the Addon: the same for every environment. Each
 * environment (each worker) runs init_mapping while others may be mapping,
 * so it is read once, under pthread_once. */
size_t page_size;
static pthread_once_t page_size_once = PTHREAD_ONCE_INIT;

static void read_page_size(void) { page_size = (size_t)sysconf(_SC_PAGESIZE); }

static size_t round_pages(size_t n) { return (n + page_size - 1) & ~(page_size - 1); }

/* Replaces [start, start+len) by a reservation when buffers may still point
 * into it and returns true; returns false (nothing done) when none can, and
 * the caller unmaps the range after taking it out of the guard. */
static bool reserve(Mapping *m, uint8_t *start, size_t len) {
  if (len == 0 || m->buffers == 0) return false;
  Retired *r = calloc(1, sizeof *r);
  /* SAFETY: MAP_FIXED replaces our own range in one step: no thread ever
   * finds a hole there, nor another mapping. */
  void *p = mmap(start, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                 -1, 0);
  if (!r) return true; /* cannot track it: it stays reserved for the process's life, which is safe */
  (void)p; /* if mmap failed the range keeps the file's pages until released: still never a hole */
  r->start = start;
  r->len = len;
  r->epoch = m->epoch++;
  r->pending = m->buffers;
  r->next = m->retired;
  m->retired = r;
  return true;
}

void do_unmap(Mapping *m) {
  if (m->unmapped) return;
  m->unmapped = true;
  if (m->slot >= 0) m->stale = guard_stale(m->slot);
  bool reserved = m->base && reserve(m, m->base, round_pages(m->map_len));
  guard_remove(m->slot);
  m->slot = -1;
  /* SAFETY: no buffer of this mapping is alive, so nothing points into it. */
  if (m->base && !reserved) munmap(m->base, round_pages(m->map_len));
  m->base = NULL;
}

static void maybe_free(Mapping *m) {
  if (m->handle_alive || m->buffers > 0) return;
  do_unmap(m); /* buffers == 0: a plain munmap, and no reservation is left */
  free(m);
}

static void finalize_handle(napi_env env UNUSED, void *data, void *hint UNUSED) {
  Mapping *m = data;
  m->handle_alive = false;
  maybe_free(m);
}

/* V8 counts an external ArrayBuffer's length as "external memory" and starts
 * garbage collections when that grows, which would make mapping 1 GiB cost
 * milliseconds. Mapped pages are not heap memory, so each buffer's length is
 * taken back out of the count when it is made and put back when it is freed. */
static void account(napi_env env, int64_t bytes) {
  int64_t total;
  napi_adjust_external_memory(env, bytes, &total);
}

/* One ArrayBuffer handed out. Two holds: its backing store (released by
 * Node's deleter, also for a buffer moved out by transfer()) and the
 * ArrayBuffer object (a finalizer). */
typedef struct {
  Mapping *m;
  size_t len;
  unsigned epoch;
  int holds;
} BufferRef;

static void drop_hold(BufferRef *ref) {
  if (--ref->holds > 0) return;
  Mapping *m = ref->m;
  m->buffers--;
  for (Retired **pp = &m->retired; *pp;) {
    Retired *r = *pp;
    if (r->epoch >= ref->epoch && --r->pending == 0) {
      /* SAFETY: every buffer that could point into the reservation is gone. */
      munmap(r->start, r->len);
      *pp = r->next;
      free(r);
    } else {
      pp = &r->next;
    }
  }
  free(ref);
  maybe_free(m);
}

/* data is the buffer's memory; the hint says whose it is. */
static void finalize_store(napi_env env, void *data UNUSED, void *hint) {
  BufferRef *ref = hint;
  account(env, (int64_t)ref->len);
  drop_hold(ref);
}

static void finalize_object(napi_env env UNUSED, void *data, void *hint UNUSED) { drop_hold(data); }

/* Handles carry this tag, so that another External (a wait request) passed
 * where a mapping is expected is refused instead of used as one. */
static const napi_type_tag mapping_tag = {0x6d656d6d61702d6dULL, 0x617070696e67aa01ULL};

static Mapping *get_mapping(napi_env env, napi_value v) {
  Mapping *m = NULL;
  bool tagged = false;
  if (napi_check_object_type_tag(env, v, &mapping_tag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, v, (void **)&m) != napi_ok || !m) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    throw_code(env, "ERR_INVALID_ARG", "native: expected a mapping handle");
    return NULL;
  }
  return m;
}

Mapping *get_live_range(napi_env env, napi_value *argv, size_t *off, size_t *len) {
  Mapping *m = get_mapping(env, argv[0]);
  if (!m) return NULL;
  if (m->unmapped || m->unmap_pending) {
    throw_code(env, "ERR_CLOSED", "the mapping is closed");
    return NULL;
  }
  if (!arg_size(env, argv[1], off) || !arg_size(env, argv[2], len)) return NULL;
  size_t length = m->base ? m->map_len - m->delta : 0;
  if (*off > length || *len > length - *off) {
    throw_code(env, "ERR_OUT_OF_RANGE", "native: range outside the mapping");
    return NULL;
  }
  return m;
}

void page_range(Mapping *m, size_t off, size_t len, uint8_t **start, size_t *bytes) {
  uintptr_t first = (uintptr_t)(m->base + m->delta + off);
  uintptr_t aligned = first & ~(uintptr_t)(page_size - 1);
  *start = (uint8_t *)aligned;
  *bytes = (first - aligned) + len;
}

/* Pre-faults [p, p+len) for reading with MADV_POPULATE_READ (Linux 5.14+);
 * where the kernel lacks it, asks for read-ahead (MADV_WILLNEED) instead.
 * Best effort: it is only a hint. */
void populate_read(uint8_t *p, size_t len) {
#ifdef MADV_POPULATE_READ
  if (madvise(p, len, MADV_POPULATE_READ) == 0) return;
  if (errno != EINVAL) return; /* e.g. EFAULT past EOF: the guard handles later touches */
#endif
  madvise(p, len, MADV_WILLNEED);
}

/* Every mapping is readable and writable, whatever its access: JavaScript has
 * no read-only typed arrays, so a store into a "read" mapping's view must not
 * be a SIGSEGV that kills the process. flags_for() makes "read" private, so
 * such a store lands in a private page (docs/pitfalls.md, stray writes). */
static const int MAPPING_PROT = PROT_READ | PROT_WRITE;
/* "read" and "copy" are private: a stray write lands in a private page and
 * never reaches the file. NORESERVE keeps huge read mappings out of the commit charge. */
static int flags_for(int access) {
  return access == ACCESS_WRITE ? MAP_SHARED : (MAP_PRIVATE | MAP_NORESERVE);
}

/* map(fd, offset, length, access, populate) -> handle */
static napi_value js_map(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  int32_t fd, access;
  size_t offset, length;
  bool populate;
  if (!arg_int32(env, argv[0], &fd) || !arg_size(env, argv[1], &offset) ||
      !arg_size(env, argv[2], &length) || !arg_int32(env, argv[3], &access) ||
      !arg_bool(env, argv[4], &populate))
    return NULL;
  if (access < ACCESS_READ || access > ACCESS_COPY)
    return throw_code(env, "ERR_INVALID_ARG", "native: bad access");

  Mapping *m = calloc(1, sizeof *m);
  if (!m) return throw_errno(env, ENOMEM, "malloc");
  m->access = access;
  m->slot = -1;
  if (length > 0) {
    size_t delta = offset % page_size;
    size_t map_len = length + delta;
    /* MAP_POPULATE on a private writable mapping write-faults every page,
     * copying the file into anonymous memory: private mappings are populated
     * with read faults instead, so their pages stay the page cache's. */
    int flags = flags_for(access) | (populate && access == ACCESS_WRITE ? MAP_POPULATE : 0);
    void *p = mmap(NULL, map_len, MAPPING_PROT, flags, fd, (off_t)(offset - delta));
    if (p == MAP_FAILED) {
      int err = errno;
      free(m);
      return throw_errno(env, err, "mmap");
    }
    m->base = p;
    m->map_len = map_len;
    m->delta = delta;
    m->file_off = (off_t)(offset - delta);
    m->slot = guard_add(p, map_len);
    if (m->slot < 0) {
      munmap(p, map_len);
      free(m);
      return throw_code(env, "ERR_TOO_MANY_MAPPINGS", "too many live mappings (65536)");
    }
    if (populate && access != ACCESS_WRITE) populate_read(p, map_len);
  }
  napi_value handle;
  if (napi_create_external(env, m, finalize_handle, NULL, &handle) != napi_ok) {
    do_unmap(m);
    free(m);
    return NULL;
  }
  m->handle_alive = true;
  if (napi_type_tag_object(env, handle, &mapping_tag) != napi_ok) {
    do_unmap(m); /* the finalizer frees m when the External is collected */
    return NULL;
  }
  return handle;
}

/* buffer(handle, byteOffset, byteLength) -> ArrayBuffer over that range */
static napi_value js_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  size_t off, len;
  Mapping *m = get_live_range(env, argv, &off, &len);
  if (!m) return NULL;
  napi_value ab;
  if (len == 0) {
    /* Zero-length external buffers sharing a pointer can crash V8: use a plain one. */
    if (napi_create_arraybuffer(env, 0, NULL, &ab) != napi_ok) return NULL;
    return ab;
  }
  BufferRef *ref = malloc(sizeof *ref);
  if (!ref) return throw_errno(env, ENOMEM, "malloc");
  ref->m = m;
  ref->len = len;
  ref->epoch = m->epoch;
  ref->holds = 2;
  account(env, -(int64_t)len);
  if (napi_create_external_arraybuffer(env, m->base + m->delta + off, len, finalize_store, ref, &ab) !=
      napi_ok) {
    account(env, (int64_t)len);
    free(ref);
    return NULL;
  }
  m->buffers++;
  if (napi_add_finalizer(env, ab, ref, finalize_object, NULL, NULL) != napi_ok) {
    /* Without the object's finalizer the buffer is counted as gone with its
     * backing store only: detach it now, so that no view can outlive that. */
    ref->holds = 1;
    napi_detach_arraybuffer(env, ab);
    return throw_code(env, "ERR_INTERNAL", "native: cannot track the buffer");
  }
  return ab;
}

/* detach(arrayBuffer) -> false when V8 refused: afterwards every view over it has length 0. */
static napi_value js_detach(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, argv[0], &detached) != napi_ok)
    return throw_code(env, "ERR_INVALID_ARG", "native: expected an ArrayBuffer");
  if (!detached && napi_detach_arraybuffer(env, argv[0]) != napi_ok) return make_bool(env, false);
  return make_bool(env, true);
}

/* unmap(handle): idempotent; deferred while async work holds the memory. */
static napi_value js_unmap(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  Mapping *m = get_mapping(env, argv[0]);
  if (!m) return NULL;
  if (m->pins > 0) m->unmap_pending = true;
  else do_unmap(m);
  return make_undefined(env);
}

/* Moves a mapping that cannot grow in place to new_pages bytes elsewhere,
 * never leaving its old range a hole: the pages are moved to a reserved
 * target with the old range kept mapped (MREMAP_DONTUNMAP, Linux 5.13+), the
 * rest of the target is mapped from the file, and the old range becomes a
 * reservation. Returns the new base, or NULL with errno set and nothing changed. */
static uint8_t *move_grow(Mapping *m, int fd, size_t old_pages, size_t new_pages) {
  uint8_t *target = mmap(NULL, new_pages, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (target == MAP_FAILED) return NULL;
  int temp = guard_add(target, new_pages); /* a fault in the moved pages is ours from the start */
  int err = 0;
  bool hole = false; /* the old range was left unmapped (the fallback for "copy" below) */
  if (mremap(m->base, old_pages, old_pages, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, target) ==
      MAP_FAILED) {
    err = errno;
    if (err == EINVAL && m->access != ACCESS_COPY) {
      /* Kernels before 5.13 move only anonymous memory that way. A "write" or
       * "read" mapping holds nothing the file lacks (a "read" mapping's stray
       * writes are dropped): map the file afresh over the target instead. */
      err = mmap(target, new_pages, MAPPING_PROT, flags_for(m->access) | MAP_FIXED, fd, m->file_off) ==
                    MAP_FAILED ? errno : 0;
    } else if (err == EINVAL) {
      /* "copy" keeps private pages that only mremap can move: the old range is
       * a hole from here to the reservation made just below (two system calls). */
      err = mremap(m->base, old_pages, new_pages, MREMAP_MAYMOVE | MREMAP_FIXED, target) == MAP_FAILED ? errno : 0;
      hole = err == 0;
    }
  } else if (mmap(target + old_pages, new_pages - old_pages, MAPPING_PROT, flags_for(m->access) | MAP_FIXED,
                  fd, m->file_off + (off_t)old_pages) == MAP_FAILED) {
    err = errno;
    /* Put the pages back where they were (replacing what DONTUNMAP left). */
    mremap(target, old_pages, old_pages, MREMAP_MAYMOVE | MREMAP_FIXED, m->base);
  }
  if (err) {
    guard_remove(temp);
    munmap(target, new_pages);
    errno = err;
    return NULL;
  }
  bool reserved = false;
  if (hole && m->buffers > 0) {
    /* NOREPLACE: if another thread mapped something there meanwhile, it is not ours to replace. */
    uint8_t *p = mmap(m->base, old_pages, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
    if (p == m->base) reserve(m, m->base, old_pages);
    else if (p != MAP_FAILED) munmap(p, old_pages); /* a kernel before 4.17 took it as a hint */
    reserved = true;
  } else if (!hole) {
    reserved = reserve(m, m->base, old_pages);
  }
  guard_move(m->slot, target, new_pages); /* the caller sets the exact length */
  guard_remove(temp);
  if (!reserved && !hole) munmap(m->base, old_pages);
  return target;
}

/* remap(handle, fd, newLength): grows in place or by moving, or shrinks.
 * On failure nothing has changed. */
static napi_value js_remap(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  Mapping *m = get_mapping(env, argv[0]);
  int32_t fd;
  size_t length;
  if (!m || !arg_int32(env, argv[1], &fd) || !arg_size(env, argv[2], &length)) return NULL;
  if (m->unmapped || m->unmap_pending) return throw_code(env, "ERR_CLOSED", "the mapping is closed");
  if (m->pins > 0) return throw_code(env, "ERR_BUSY", "an asynchronous flush or populate is still running");
  if (!m->base) return throw_code(env, "ERR_INVALID_ARG", "native: cannot remap an empty mapping");
  if (length == 0) return throw_code(env, "ERR_INVALID_ARG", "native: remap to zero");
  size_t map_len = length + m->delta;
  size_t old_pages = round_pages(m->map_len), new_pages = round_pages(map_len);
  if (new_pages < old_pages) {
    /* The cut tail becomes a reservation (or is unmapped when no buffer can reach it). */
    uint8_t *tail = m->base + new_pages;
    bool reserved = reserve(m, tail, old_pages - new_pages);
    guard_move(m->slot, m->base, map_len);
    if (!reserved) munmap(tail, old_pages - new_pages);
  } else if (new_pages > old_pages) {
    if (mremap(m->base, old_pages, new_pages, 0) == MAP_FAILED) {
      if (errno != ENOMEM) return throw_errno(env, errno, "mremap"); /* e.g. EAGAIN: over RLIMIT_MEMLOCK */
      uint8_t *p = move_grow(m, fd, old_pages, new_pages);
      if (!p) return throw_errno(env, errno, "mremap");
      m->base = p;
    }
    guard_move(m->slot, m->base, map_len);
  } else {
    guard_move(m->slot, m->base, map_len);
  }
  m->map_len = map_len;
  return make_undefined(env);
}

static napi_value js_stale(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  Mapping *m = get_mapping(env, argv[0]);
  if (!m) return NULL;
  return make_bool(env, m->unmapped ? m->stale : guard_stale(m->slot));
}


static napi_value js_guard_reassert(napi_env env, napi_callback_info info UNUSED) {
  guard_reassert();
  return make_undefined(env);
}

static napi_value js_page_size(napi_env env, napi_callback_info info UNUSED) {
  return make_double(env, (double)page_size);
}

napi_value init_mapping(napi_env env, napi_value exports) {
  pthread_once(&page_size_once, read_page_size);
  guard_install();
  static const Export fns[] = {
      EXPORT(map, js_map),       EXPORT(buffer, js_buffer), EXPORT(detach, js_detach),
      EXPORT(unmap, js_unmap),   EXPORT(remap, js_remap),   EXPORT(stale, js_stale),
      EXPORT(guardReassert, js_guard_reassert), EXPORT(pageSize, js_page_size),
  };
  return export_all(env, exports, fns);
}
