/* Cross-process wait/notify on a 32-bit word in shared memory (Linux futex).
 *
 * FUTEX_PRIVATE_FLAG is deliberately absent: shared futexes are keyed by the
 * physical page, so a process waiting on its own mapping of a file is woken
 * by another process writing through a different address.
 *
 * waitAsync runs waits on this addon's own waiter threads, never on libuv's
 * thread pool, and delivers the result through a thread-safe function. Each
 * thread waits in slices of at most SLICE_MS so that a cancelled request, an
 * unmapped word or a terminating worker frees it quickly; a wake still
 * arrives at once. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "guard.h"

#define SLICE_MS 100
#define MAX_WAITER_THREADS 256

enum { WAIT_OK = 0, WAIT_TIMED_OUT = 1, WAIT_NOT_EQUAL = 2 };

static long futex(uint32_t *addr, int op, uint32_t val, const struct timespec *ts) {
  return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits while *addr == expected, up to timeout_ms (< 0: forever).
 * Returns WAIT_OK, WAIT_TIMED_OUT, WAIT_NOT_EQUAL or -errno.
 * With stop != NULL, gives up (WAIT_TIMED_OUT) once *stop or *shutdown is set. */
static int wait_word(uint32_t *addr, uint32_t expected, int64_t timeout_ms, atomic_bool *stop,
                     atomic_bool *shutdown, int slot, unsigned slot_seq) {
  int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  for (;;) {
    if (stop && (atomic_load(stop) || atomic_load(shutdown))) return WAIT_TIMED_OUT;
    /* The word's mapping was closed or resized: its range is now a reservation
     * (native/mapping.c) whose zeros would keep us waiting. Report a wake; the
     * caller re-checks and finds its buffer detached. */
    if (!guard_unchanged(slot, slot_seq)) return WAIT_OK;
    int64_t left = deadline < 0 ? -1 : deadline - now_ms();
    if (deadline >= 0 && left <= 0) return WAIT_TIMED_OUT;
    if (stop && (left < 0 || left > SLICE_MS)) left = SLICE_MS;
    struct timespec ts, *tsp = NULL;
    if (left >= 0) {
      ts.tv_sec = left / 1000;
      ts.tv_nsec = (left % 1000) * 1000000;
      tsp = &ts;
    }
    long r = futex(addr, FUTEX_WAIT, expected, tsp);
    if (r == 0) return WAIT_OK; /* woken (possibly spuriously: callers re-check) */
    if (errno == EAGAIN) return WAIT_NOT_EQUAL;
    if (errno == ETIMEDOUT || errno == EINTR) continue;
    return -errno;
  }
}

/* The word at byteOffset of an ArrayBuffer, checked for bounds and alignment. */
static uint32_t *word_at(napi_env env, napi_value ab, napi_value off_v) {
  void *data;
  size_t len, off;
  if (napi_get_arraybuffer_info(env, ab, &data, &len) != napi_ok) {
    throw_code(env, "ERR_INVALID_ARG", "native: expected an ArrayBuffer");
    return NULL;
  }
  if (!arg_size(env, off_v, &off)) return NULL;
  if (!data || len < 4 || off > len - 4) {
    throw_code(env, "ERR_OUT_OF_RANGE", "native: futex word outside the buffer");
    return NULL;
  }
  uint8_t *p = (uint8_t *)data + off;
  if ((uintptr_t)p % 4 != 0) {
    throw_code(env, "ERR_MISALIGNED", "native: futex word not 4-byte aligned");
    return NULL;
  }
  return (uint32_t *)p;
}

static bool arg_timeout(napi_env env, napi_value v, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d) {
    throw_code(env, "ERR_INVALID_ARG", "native: expected a timeout");
    return false;
  }
  *out = d < 0 || d > 9e15 ? -1 : (int64_t)d;
  return true;
}

/* futexWait(ab, byteOffset, expected, timeoutMs) -> 0 woken, 1 timed out, 2 not equal */
static napi_value js_wait(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  uint32_t *addr = word_at(env, argv[0], argv[1]);
  uint32_t expected;
  int64_t timeout;
  if (!addr || napi_get_value_uint32(env, argv[2], &expected) != napi_ok ||
      !arg_timeout(env, argv[3], &timeout))
    return addr ? throw_code(env, "ERR_INVALID_ARG", "native: bad wait arguments") : NULL;
  int r = wait_word(addr, expected, timeout, NULL, NULL, -1, 0);
  if (r < 0) return throw_errno(env, -r, "futex");
  return make_int32(env, r);
}

/* futexWake(ab, byteOffset, count) -> number of waiters woken */
static napi_value js_wake(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  uint32_t *addr = word_at(env, argv[0], argv[1]);
  int32_t count;
  if (!addr || !arg_int32(env, argv[2], &count)) return NULL;
  long r = futex(addr, FUTEX_WAKE, count < 1 ? 1 : (uint32_t)count, NULL);
  if (r < 0) return throw_errno(env, errno, "futex");
  return make_int32(env, (int32_t)r);
}

/* yield(): sched_yield, for the spin-then-yield wait strategy */
static napi_value js_yield(napi_env env, napi_callback_info info) {
  sched_yield();
  return make_undefined(env);
}

/* ---- asynchronous waits ---- */

typedef struct Request {
  uint32_t *addr;
  uint32_t expected;
  int64_t timeout_ms;
  int result;
  int slot; /* the guard slot of the mapping holding addr, -1 if none */
  unsigned slot_seq;
  atomic_bool cancelled;
  int refs; /* the JS handle + the pending delivery; JS thread only */
  napi_ref callback;
  struct Request *next;
} Request;

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t ready;
  Request *head, *tail;
  int threads, idle, pending;
  int queued; /* requests waiting for a thread */
  pthread_t tids[MAX_WAITER_THREADS];
  atomic_bool shutdown;
  napi_threadsafe_function tsfn;
  bool tsfn_referenced;
  napi_env env;
} Waiters;

static void request_release(Request *req) {
  if (--req->refs == 0) free(req);
}

static void finalize_request(napi_env env, void *data, void *hint) { request_release(data); }

static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  Request *req = data;
  Waiters *w = context;
  if (env && !atomic_load(&req->cancelled)) {
    napi_value cb, global;
    if (napi_get_reference_value(env, req->callback, &cb) == napi_ok && cb) {
      napi_value arg = make_int32(env, req->result);
      napi_get_global(env, &global);
      napi_call_function(env, global, cb, 1, &arg, NULL);
    }
  }
  if (env) {
    napi_delete_reference(env, req->callback);
    if (--w->pending == 0 && w->tsfn_referenced) {
      napi_unref_threadsafe_function(env, w->tsfn);
      w->tsfn_referenced = false;
    }
    request_release(req);
  }
  /* Without env the environment is being torn down: leak rather than race the handle. */
}

static void *waiter_main(void *arg) {
  Waiters *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (!w->head && !atomic_load(&w->shutdown)) pthread_cond_wait(&w->ready, &w->lock);
    if (atomic_load(&w->shutdown)) break;
    Request *req = w->head;
    w->head = req->next;
    if (!w->head) w->tail = NULL;
    w->idle--;
    w->queued--;
    pthread_mutex_unlock(&w->lock);

    req->result = wait_word(req->addr, req->expected, req->timeout_ms, &req->cancelled, &w->shutdown, req->slot, req->slot_seq);
    if (atomic_load(&w->shutdown)) atomic_store(&req->cancelled, true);
    /* On failure (closing) the request is abandoned with its environment. */
    napi_call_threadsafe_function(w->tsfn, req, napi_tsfn_blocking);

    pthread_mutex_lock(&w->lock);
    w->idle++;
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

static void waiters_cleanup(void *arg) {
  Waiters *w = arg;
  pthread_mutex_lock(&w->lock);
  atomic_store(&w->shutdown, true);
  for (Request *r = w->head; r; r = r->next) atomic_store(&r->cancelled, true);
  pthread_cond_broadcast(&w->ready);
  pthread_mutex_unlock(&w->lock);
  /* Threads notice shutdown within SLICE_MS; the tsfn is aborted so a blocking
   * call into it returns instead of waiting for a loop that no longer runs. */
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
  for (int i = 0; i < w->threads; i++) pthread_join(w->tids[i], NULL);
}

static Waiters *get_waiters(napi_env env) {
  Waiters *w = NULL;
  napi_get_instance_data(env, (void **)&w);
  return w;
}

/* waitAsync(ab, byteOffset, expected, timeoutMs, callback) -> request External;
 * callback(result) runs on the JS thread unless cancelled. */
static napi_value js_wait_async(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  uint32_t *addr = word_at(env, argv[0], argv[1]);
  if (!addr) return NULL;
  uint32_t expected;
  int64_t timeout;
  if (napi_get_value_uint32(env, argv[2], &expected) != napi_ok)
    return throw_code(env, "ERR_INVALID_ARG", "native: expected a uint32");
  if (!arg_timeout(env, argv[3], &timeout)) return NULL;
  Waiters *w = get_waiters(env);
  if (!w) return throw_code(env, "ERR_INTERNAL", "native: waiters not initialised");

  Request *req = calloc(1, sizeof *req);
  if (!req) return throw_errno(env, ENOMEM, "malloc");
  req->addr = addr;
  req->expected = expected;
  req->timeout_ms = timeout;
  req->slot = guard_find(addr, &req->slot_seq);
  req->refs = 2;
  if (napi_create_reference(env, argv[4], 1, &req->callback) != napi_ok) {
    free(req);
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, req, finalize_request, NULL, &handle) != napi_ok) {
    napi_delete_reference(env, req->callback);
    free(req);
    return NULL;
  }

  pthread_mutex_lock(&w->lock);
  /* One idle thread per queued request: a request queued behind another
   * must not wait for that one's whole sleep. */
  if (w->idle <= w->queued && w->threads < MAX_WAITER_THREADS) {
    if (pthread_create(&w->tids[w->threads], NULL, waiter_main, w) == 0) {
      w->threads++;
      w->idle++;
    }
  }
  if (w->threads == 0) {
    pthread_mutex_unlock(&w->lock);
    napi_delete_reference(env, req->callback);
    req->refs = 1; /* only the handle is left */
    return throw_errno(env, EAGAIN, "pthread_create");
  }
  w->queued++;
  if (w->tail) w->tail->next = req;
  else w->head = req;
  w->tail = req;
  pthread_cond_signal(&w->ready);
  pthread_mutex_unlock(&w->lock);

  if (w->pending++ == 0 && !w->tsfn_referenced) {
    napi_ref_threadsafe_function(env, w->tsfn);
    w->tsfn_referenced = true;
  }
  return handle;
}

/* cancelWait(request): its callback will not run; its thread is freed within SLICE_MS. */
static napi_value js_cancel_wait(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  Request *req = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&req) != napi_ok || !req)
    return throw_code(env, "ERR_INVALID_ARG", "native: expected a wait request");
  atomic_store(&req->cancelled, true);
  return make_undefined(env);
}

static void free_waiters(napi_env env, void *data, void *hint) { /* freed after cleanup */ }

napi_value init_futex(napi_env env, napi_value exports) {
  EXPORT_FN(env, exports, "futexWait", js_wait);
  EXPORT_FN(env, exports, "futexWake", js_wake);
  EXPORT_FN(env, exports, "waitAsync", js_wait_async);
  EXPORT_FN(env, exports, "cancelWait", js_cancel_wait);
  EXPORT_FN(env, exports, "yield", js_yield);

  Waiters *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, ENOMEM, "malloc");
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->ready, NULL);
  w->env = env;
  napi_value name;
  napi_create_string_utf8(env, "memmap.wait", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, w, deliver,
                                      &w->tsfn) != napi_ok)
    return NULL;
  napi_unref_threadsafe_function(env, w->tsfn);
  napi_set_instance_data(env, w, free_waiters, NULL);
  napi_add_env_cleanup_hook(env, waiters_cleanup, w);
  return exports;
}
