/* What is done to a range of a live mapping: msync (here and on the thread
 * pool), pre-faulting on the thread pool, madvise, mlock and mincore. The
 * mapping itself (mmap, mremap, munmap, the buffers and reservations) is
 * mapping.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "common.h"
#include "mapping.h"

/* Reads `argc` arguments (handle, off, len, …) and gives the live mapping with
 * the page-aligned [start, start+bytes) covering [off, off+len): bytes is 0
 * for an empty range. NULL with an exception pending. */
static Mapping *get_pages(napi_env env, napi_callback_info info, size_t argc, napi_value *argv, uint8_t **start,
                          size_t *bytes) {
  size_t off, len;
  if (!get_args(env, info, argc, argv)) return NULL;
  Mapping *m = get_live_range(env, argv, &off, &len);
  if (!m) return NULL;
  *start = NULL;
  *bytes = 0;
  if (len > 0 && m->base) page_range(m, off, len, start, bytes);
  return m;
}

/* sync(handle, off, len): msync(MS_SYNC) */
static napi_value js_sync(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint8_t *start;
  size_t bytes;
  if (!get_pages(env, info, 3, argv, &start, &bytes)) return NULL;
  if (bytes > 0 && msync(start, bytes, MS_SYNC) != 0) return throw_errno(env, errno, "msync");
  return make_undefined(env);
}

/* Work on a mapping's memory done on libuv's thread pool: msync (flushAsync)
 * or pre-faulting (populateAsync). Both are short and bounded. The job pins
 * the mapping so close() defers the munmap until the job is done. */
enum { JOB_SYNC = 0, JOB_POPULATE = 1 };

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref handle_ref;
  Mapping *m;
  int op;
  uint8_t *start;
  size_t bytes;
  int err;
} MemoryJob;

/* Pre-faults [p, p+len) writable (MADV_POPULATE_WRITE, Linux 5.14+), so
 * later stores into a shared mapping take no page fault. Older kernels:
 * read-populate, which still saves the page-cache lookups. */
static int populate_write(uint8_t *p, size_t len) {
#ifdef MADV_POPULATE_WRITE
  if (madvise(p, len, MADV_POPULATE_WRITE) == 0) return 0;
  if (errno != EINVAL) return errno;
#endif
  populate_read(p, len);
  return 0;
}

static void job_execute(napi_env env UNUSED, void *data) {
  MemoryJob *job = data;
  if (!job->bytes) return;
  if (job->op == JOB_SYNC) job->err = msync(job->start, job->bytes, MS_SYNC) == 0 ? 0 : errno;
  else if (job->m->access == ACCESS_WRITE) job->err = populate_write(job->start, job->bytes);
  else populate_read(job->start, job->bytes); /* a private map: write-faulting would copy every page */
}

/* status is napi_cancelled only after napi_cancel_async_work, which memmap never calls. */
static void job_complete(napi_env env, napi_status status UNUSED, void *data) {
  MemoryJob *job = data;
  Mapping *m = job->m;
  if (--m->pins == 0 && m->unmap_pending) do_unmap(m);
  if (job->err) {
    napi_value error;
    throw_errno(env, job->err, job->op == JOB_SYNC ? "msync" : "madvise");
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, job->deferred, error);
  } else {
    napi_resolve_deferred(env, job->deferred, make_undefined(env));
  }
  napi_delete_reference(env, job->handle_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value queue_job(napi_env env, napi_callback_info info, int op, const char *label) {
  napi_value argv[3];
  uint8_t *start;
  size_t bytes;
  Mapping *m = get_pages(env, info, 3, argv, &start, &bytes);
  if (!m) return NULL;
  MemoryJob *job = calloc(1, sizeof *job);
  if (!job) return throw_errno(env, ENOMEM, "malloc");
  job->m = m;
  job->op = op;
  job->start = start;
  job->bytes = bytes;
  napi_value promise, name;
  /* Each step is checked: a job that was never queued must neither pin the
   * mapping nor leave a promise that never settles. */
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) goto fail;
  if (napi_create_reference(env, argv[0], 1, &job->handle_ref) != napi_ok) goto fail; /* keeps m alive */
  if (napi_create_string_utf8(env, label, NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, job_execute, job_complete, job, &job->work) != napi_ok)
    goto fail;
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    napi_delete_async_work(env, job->work);
    goto fail;
  }
  m->pins++;
  return promise;
fail:
  if (job->handle_ref) napi_delete_reference(env, job->handle_ref);
  if (job->deferred) {
    napi_value error;
    throw_code(env, "ERR_INTERNAL", "native: cannot queue the job");
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  free(job);
  return throw_code(env, "ERR_INTERNAL", "native: cannot queue the job");
}

/* syncAsync(handle, off, len) -> Promise: msync on the thread pool. */
static napi_value js_sync_async(napi_env env, napi_callback_info info) {
  return queue_job(env, info, JOB_SYNC, "memmap.flush");
}

/* populateAsync(handle, off, len) -> Promise: pre-faults the range on the thread pool. */
static napi_value js_populate_async(napi_env env, napi_callback_info info) {
  return queue_job(env, info, JOB_POPULATE, "memmap.populate");
}

static const int advice_values[] = {MADV_NORMAL, MADV_SEQUENTIAL, MADV_RANDOM, MADV_WILLNEED,
                                    MADV_DONTNEED};

/* advise(handle, off, len, adviceIndex) */
static napi_value js_advise(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint8_t *start;
  size_t bytes;
  int32_t advice;
  if (!get_pages(env, info, 4, argv, &start, &bytes) || !arg_int32(env, argv[3], &advice)) return NULL;
  if (advice < 0 || advice >= (int)(sizeof advice_values / sizeof advice_values[0]))
    return throw_code(env, "ERR_INVALID_ARG", "native: bad advice");
  if (bytes > 0 && madvise(start, bytes, advice_values[advice]) != 0) return throw_errno(env, errno, "madvise");
  return make_undefined(env);
}

/* lock(handle, off, len, on) -> mlock / munlock */
static napi_value js_lock(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint8_t *start;
  size_t bytes;
  bool on;
  Mapping *m = get_pages(env, info, 4, argv, &start, &bytes);
  if (!m || !arg_bool(env, argv[3], &on)) return NULL;
  if (bytes == 0) return make_undefined(env);
  if (!on) {
    if (munlock(start, bytes) != 0) return throw_errno(env, errno, "munlock");
  } else if (m->access == ACCESS_WRITE) {
    if (mlock(start, bytes) != 0) return throw_errno(env, errno, "mlock");
  } else {
    /* mlock() faults a private writable mapping in for writing, copying every
     * page; lock on fault and populate with read faults instead. */
    if (mlock2(start, bytes, MLOCK_ONFAULT) != 0) return throw_errno(env, errno, "mlock2");
    populate_read(start, bytes);
  }
  return make_undefined(env);
}

#define MAX_RESIDENCY_PAGES (((size_t)1 << 32) - 1)

/* residency(handle, off, len) -> Uint8Array, one byte per page (1 = resident) */
static napi_value js_residency(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint8_t *start;
  size_t bytes;
  if (!get_pages(env, info, 3, argv, &start, &bytes)) return NULL;
  size_t pages = (bytes + page_size - 1) / page_size;
  /* One byte per page in one ArrayBuffer: more than 2^32 pages (16 TiB of 4 KiB
   * pages) is more than one typed array holds. The TS layer refuses first. */
  if (pages > MAX_RESIDENCY_PAGES)
    return throw_code(env, "ERR_TOO_LARGE", "native: residency() covers fewer than 2^32 pages at a time");
  napi_value ab, arr;
  void *vec;
  if (napi_create_arraybuffer(env, pages, &vec, &ab) != napi_ok) return NULL;
  if (pages > 0 && mincore(start, bytes, vec) != 0) return throw_errno(env, errno, "mincore");
  uint8_t *v = vec;
  for (size_t i = 0; i < pages; i++) v[i] &= 1;
  if (napi_create_typedarray(env, napi_uint8_array, pages, ab, 0, &arr) != napi_ok) return NULL;
  return arr;
}

napi_value init_ranges(napi_env env, napi_value exports) {
  static const Export fns[] = {
      EXPORT(sync, js_sync), EXPORT(syncAsync, js_sync_async), EXPORT(populateAsync, js_populate_async),
      EXPORT(advise, js_advise), EXPORT(lock, js_lock), EXPORT(residency, js_residency),
  };
  return export_all(env, exports, fns);
}
