/* Cross-process wait/notify on a 32-bit word in shared memory (Linux futex).
 *
 * FUTEX_PRIVATE_FLAG is deliberately absent: shared futexes are keyed by the
 * physical page, so a process waiting on its own mapping of a file is woken
 * by another process writing through a different address.
 *
 * waitAsync runs waits on this addon's own waiter threads, never on libuv's
 * thread pool, and delivers the result through a thread-safe function. With
 * futex_waitv (Linux 5.16+) one thread sleeps on up to GROUP_MAX words at
 * once, plus its control word, which the JS thread bumps and wakes when it
 * adds or cancels a request; so any number of waits park on few threads and
 * no wait ever queues for a thread. Without futex_waitv each thread serves one
 * wait. Threads re-enter the sleep every SLICE_MS so that a word unmapped
 * meanwhile is noticed (EFAULT) and, without futex_waitv, a cancelled wait
 * frees its thread; a wake still arrives at once. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "guard.h"

#define SLICE_MS 1000
#define GROUP_MAX 127 /* futex_waitv takes at most 128 words; one is the control word */
#define THREAD_STACK (256 * 1024)

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449 /* the same number on every architecture */
#endif
/* struct futex_waitv of <linux/futex.h>, spelled out for older headers. */
struct waitv {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};
#define WAITV_U32 0x02
#define WAITV_PRIVATE 128

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
 * Returns WAIT_OK, WAIT_TIMED_OUT, WAIT_NOT_EQUAL or -errno. */
static int wait_word(uint32_t *addr, uint32_t expected, int64_t timeout_ms) {
  int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  for (;;) {
    int64_t left = deadline < 0 ? -1 : deadline - now_ms();
    if (deadline >= 0 && left <= 0) return WAIT_TIMED_OUT;
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
  int r = wait_word(addr, expected, timeout);
  if (r < 0) return throw_errno(env, -r, "futex");
  return make_int32(env, r);
}

/* futexWake(ab, byteOffset, count >= 1) -> number of waiters woken */
static napi_value js_wake(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  uint32_t *addr = word_at(env, argv[0], argv[1]);
  int32_t count;
  if (!addr || !arg_int32(env, argv[2], &count)) return NULL;
  /* FUTEX_WAKE reads 0 as 1: refuse it rather than wake somebody. */
  if (count < 1) return throw_code(env, "ERR_INVALID_ARG", "native: wake count must be at least 1");
  long r = futex(addr, FUTEX_WAKE, (uint32_t)count, NULL);
  if (r < 0) return throw_errno(env, errno, "futex");
  return make_int32(env, (int32_t)r);
}

/* yield(): sched_yield, for the spin-then-yield wait strategy. It lives here,
 * not in files.c: it is one of the three ways src/core/wait.ts waits for a word
 * (spin, yield, futex), and has nothing to do with a file. */
static napi_value js_yield(napi_env env, napi_callback_info info UNUSED) {
  sched_yield();
  return make_undefined(env);
}

/* ---- asynchronous waits ---- */

typedef struct Thread Thread;
typedef struct Waiters Waiters;

typedef struct Request {
  uint32_t *addr;
  uint32_t expected;
  int64_t deadline; /* on the now_ms() clock; -1: none */
  int result;
  int slot;            /* the guard slot of the mapping holding addr, -1 if none */
  unsigned slot_seq;   /* its sequence number when the wait began */
  bool cancelled;      /* written under Waiters.lock, by the JS thread */
  Thread *thread;      /* the thread serving it, under the lock; NULL once done */
  int refs;            /* the JS handle + the pending delivery; JS thread only */
  napi_ref callback;
  struct Request *next; /* in Waiters.orphans */
} Request;

struct Thread {
  Waiters *w;
  pthread_t tid;
  uint32_t control; /* bumped and woken (under the lock) when its requests change */
  int count;
  Request *slots[GROUP_MAX]; /* appended by the JS thread; removed by this thread only */
  Thread *next;
};

struct Waiters {
  pthread_mutex_t lock;
  Thread *threads;
  int group; /* requests per thread: GROUP_MAX with futex_waitv, else 1 */
  bool shutdown;
  Request *orphans; /* done after the thread-safe function closed */
  napi_threadsafe_function tsfn;
  bool tsfn_referenced;
  int pending; /* JS thread only */
  napi_env env;
};

/* Tags a wait request's External, so that cancelWait() refuses any other value. */
static const napi_type_tag REQUEST_TAG = {0x6d656d6d61702e77ULL, 0x6169742e72657131ULL};

/* Process-wide, not in the Addon: what the kernel offers is the same for every
 * environment; probed once, each environment's Waiters copies it. */
static int waitv_group = 1;
static pthread_once_t waitv_once = PTHREAD_ONCE_INIT;

static void detect_waitv(void) {
  /* An empty list is EINVAL where futex_waitv exists; ENOSYS (old kernel) or
   * EPERM (a seccomp filter) where it cannot be used. */
  const char *off = getenv("MEMMAP_NO_FUTEX_WAITV"); /* to test the fallback */
  long r = syscall(SYS_futex_waitv, NULL, 0, 0, NULL, 0);
  waitv_group = (!off || !*off) && r < 0 && errno == EINVAL ? GROUP_MAX : 1;
}

/* Under the lock: tells t's thread that its requests changed. */
static void poke(Thread *t) {
  __atomic_add_fetch(&t->control, 1, __ATOMIC_SEQ_CST);
  futex(&t->control, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* Sleeps until one of the n words is woken or differs from its expected
 * value, t's control word moves from `control`, or `deadline` (now_ms clock,
 * < 0: none) passes. Returns the index woken (0: the control word, i:
 * reqs[i - 1]) or -errno: ETIMEDOUT, EINTR, EAGAIN (some word differs),
 * EFAULT (some word is unmapped)... */
static int sleep_on(Waiters *w, Thread *t, uint32_t control, Request **reqs, int n, int64_t deadline) {
  if (deadline >= 0 && deadline <= now_ms()) return -ETIMEDOUT;
  if (w->group > 1) {
    struct waitv v[GROUP_MAX + 1];
    v[0] = (struct waitv){control, (uintptr_t)&t->control, WAITV_U32 | WAITV_PRIVATE, 0};
    for (int i = 0; i < n; i++) v[i + 1] = (struct waitv){reqs[i]->expected, (uintptr_t)reqs[i]->addr, WAITV_U32, 0};
    struct timespec abs = {deadline / 1000, (deadline % 1000) * 1000000};
    long r = syscall(SYS_futex_waitv, v, n + 1, 0, deadline < 0 ? NULL : &abs, CLOCK_MONOTONIC);
    return r >= 0 ? (int)r : -errno;
  }
  /* One word at a time: cancellation is noticed at the next slice. */
  struct timespec rel, *tsp = NULL;
  if (deadline >= 0) {
    int64_t left = deadline - now_ms();
    rel = (struct timespec){left / 1000, (left % 1000) * 1000000};
    tsp = &rel;
  }
  if (n == 0) {
    long r = futex(&t->control, FUTEX_WAIT_PRIVATE, control, tsp);
    return r == 0 || errno == EAGAIN ? 0 : -errno;
  }
  long r = futex(reqs[0]->addr, FUTEX_WAIT, reqs[0]->expected, tsp);
  return r == 0 ? 1 : -errno;
}

#define STILL_WAITING 3

/* Asks the kernel (the word may be unmapped) whether req's word still holds
 * its expected value: STILL_WAITING, WAIT_NOT_EQUAL or -errno. */
static int probe(Request *req) {
  struct timespec zero = {0, 0};
  if (futex(req->addr, FUTEX_WAIT, req->expected, &zero) == 0) return WAIT_OK;
  if (errno == ETIMEDOUT || errno == EINTR) return STILL_WAITING;
  return errno == EAGAIN ? WAIT_NOT_EQUAL : -errno;
}

static void waiter_done(Waiters *w, Request *req) {
  if (napi_call_threadsafe_function(w->tsfn, req, napi_tsfn_nonblocking) == napi_ok) return;
  /* Closing: the environment ends; cleanup releases it. */
  pthread_mutex_lock(&w->lock);
  req->next = w->orphans;
  w->orphans = req;
  pthread_mutex_unlock(&w->lock);
}

static void *waiter_main(void *arg) {
  Thread *t = arg;
  Waiters *w = t->w;
  Request *reqs[GROUP_MAX], *done[GROUP_MAX];
  int results[GROUP_MAX];
  pthread_mutex_lock(&w->lock);
  while (!w->shutdown) {
    /* The first n slots stay put while unlocked: only this thread removes. */
    int n = t->count;
    for (int i = 0; i < n; i++) reqs[i] = t->slots[i];
    uint32_t control = __atomic_load_n(&t->control, __ATOMIC_SEQ_CST);
    int64_t deadline = n == 0 ? -1 : now_ms() + SLICE_MS;
    for (int i = 0; i < n; i++)
      if (reqs[i]->deadline >= 0 && reqs[i]->deadline < deadline) deadline = reqs[i]->deadline;
    pthread_mutex_unlock(&w->lock);

    int r = sleep_on(w, t, control, reqs, n, deadline);
    for (int i = 0; i < n; i++) results[i] = STILL_WAITING;
    if (r >= 1) {
      /* futex_waitv names one word woken; a wake of the same word (all its
       * waiters, as a doorbell rings) reaches every request on it. */
      for (int i = 0; i < n; i++)
        if (reqs[i]->addr == reqs[r - 1]->addr) results[i] = WAIT_OK;
    } else if (r < 0 && r != -ETIMEDOUT && r != -EINTR) {
      bool any = false;
      for (int i = 0; i < n; i++) any |= (results[i] = probe(reqs[i])) != STILL_WAITING;
      if (!any && r != -EAGAIN) /* an error no single word explains */
        for (int i = 0; i < n; i++) results[i] = r;
    }

    /* A word whose mapping was closed or resized meanwhile: its range is now a
     * reservation (native/mapping.c) whose zeros would keep the wait asleep.
     * Report a wake; the caller re-checks and finds its buffer detached. */
    for (int i = 0; i < n; i++)
      if (results[i] == STILL_WAITING && !guard_unchanged(reqs[i]->slot, reqs[i]->slot_seq)) results[i] = WAIT_OK;

    int64_t now = now_ms();
    pthread_mutex_lock(&w->lock);
    int ndone = 0;
    for (int i = 0; i < n; i++) {
      Request *req = reqs[i];
      if (results[i] == STILL_WAITING) {
        if (!req->cancelled && (req->deadline < 0 || now < req->deadline)) continue;
        results[i] = WAIT_TIMED_OUT;
      }
      req->result = results[i];
      req->thread = NULL;
      done[ndone++] = req;
    }
    if (ndone > 0) {
      int k = 0;
      for (int i = 0; i < t->count; i++)
        if (t->slots[i]->thread == t) t->slots[k++] = t->slots[i];
      t->count = k;
      pthread_mutex_unlock(&w->lock);
      for (int i = 0; i < ndone; i++) waiter_done(w, done[i]);
      pthread_mutex_lock(&w->lock);
    }
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

/* Under the lock: a new thread with room for w->group requests, or NULL. */
static Thread *start_thread(Waiters *w) {
  Thread *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->w = w;
  pthread_attr_t attr;
  int err = pthread_attr_init(&attr);
  if (err == 0) {
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    err = pthread_create(&t->tid, &attr, waiter_main, t);
    pthread_attr_destroy(&attr);
  }
  if (err != 0) {
    free(t);
    return NULL;
  }
  t->next = w->threads;
  w->threads = t;
  return t;
}

static void request_release(Request *req) {
  if (--req->refs == 0) free(req);
}

static void finalize_request(napi_env env UNUSED, void *data, void *hint UNUSED) { request_release(data); }

/* On the JS thread; without env the thread-safe function is being torn down. */
/* js_cb is NULL: the thread-safe function was made without one; each request carries its own. */
static void deliver(napi_env env, napi_value js_cb UNUSED, void *context, void *data) {
  Request *req = data;
  Waiters *w = context;
  if (!env) {
    request_release(req); /* its callback reference goes with the environment */
    return;
  }
  if (!req->cancelled) {
    napi_value cb, global, arg;
    if (napi_get_reference_value(env, req->callback, &cb) == napi_ok && cb &&
        napi_get_global(env, &global) == napi_ok && (arg = make_int32(env, req->result)))
      napi_call_function(env, global, cb, 1, &arg, NULL); /* a throw is Node's uncaught exception */
  }
  napi_delete_reference(env, req->callback);
  req->callback = NULL;
  if (--w->pending == 0 && w->tsfn_referenced &&
      napi_unref_threadsafe_function(env, w->tsfn) == napi_ok)
    w->tsfn_referenced = false;
  request_release(req);
}

/* A request that will never be delivered: drops the delivery's share. */
static void abandon(Waiters *w, Request *req) {
  if (req->callback) napi_delete_reference(w->env, req->callback);
  req->callback = NULL;
  request_release(req);
}

/* The environment ends (addon.c's cleanup hook): stops and joins the waiter
 * threads; requests not delivered are dropped. */
void waiters_stop(Waiters *w) {
  if (!w) return;
  pthread_mutex_lock(&w->lock);
  w->shutdown = true;
  for (Thread *t = w->threads; t; t = t->next) {
    poke(t);
    /* Without futex_waitv a thread sleeps on its request's word, not on its
     * control word: wake that word's sleepers (others re-check and sleep
     * again) so that a terminating worker need not wait for the slice. */
    if (w->group == 1 && t->count == 1) futex(t->slots[0]->addr, FUTEX_WAKE, INT32_MAX, NULL);
  }
  pthread_mutex_unlock(&w->lock);
  /* Aborted, so that a thread finishing a request now gets napi_closing
   * instead of queueing for a loop that no longer runs. */
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
  for (Thread *t = w->threads; t; t = t->next) pthread_join(t->tid, NULL);
  while (w->threads) {
    Thread *t = w->threads;
    w->threads = t->next;
    for (int i = 0; i < t->count; i++) abandon(w, t->slots[i]);
    free(t);
  }
  while (w->orphans) {
    Request *req = w->orphans;
    w->orphans = req->next;
    abandon(w, req);
  }
}

/* Frees w after waiters_stop (from the instance data's finalizer, addon.c). */
void waiters_free(Waiters *w) {
  if (!w) return;
  pthread_mutex_destroy(&w->lock);
  free(w);
}

static Waiters *get_waiters(napi_env env) {
  Addon *addon = get_addon(env);
  if (addon && !addon->waiters) throw_code(env, "ERR_INTERNAL", "native: waiters not initialised");
  return addon ? addon->waiters : NULL;
}

/* waitAsync(ab, byteOffset, expected, timeoutMs, callback) -> request External;
 * callback(result) runs on the JS thread unless cancelled. A wake is reported
 * for the word woken and every request on the same address; a waker that
 * wakes without changing the word may go unseen by a request on another
 * mapping of the same page (callers re-check on a timeout). */
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
  napi_valuetype type;
  if (napi_typeof(env, argv[4], &type) != napi_ok || type != napi_function)
    return throw_code(env, "ERR_INVALID_ARG", "native: expected a callback");
  Waiters *w = get_waiters(env);
  if (!w) return NULL;

  Request *req = calloc(1, sizeof *req);
  if (!req) return throw_errno(env, ENOMEM, "malloc");
  req->addr = addr;
  req->slot = guard_find(addr, &req->slot_seq);
  req->expected = expected;
  req->deadline = timeout < 0 ? -1 : now_ms() + timeout;
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
  req->refs = 1; /* the handle; the delivery's share is added once it is queued */
  if (napi_type_tag_object(env, handle, &REQUEST_TAG) != napi_ok) {
    napi_delete_reference(env, req->callback);
    req->callback = NULL;
    return throw_code(env, "ERR_INTERNAL", "native: cannot tag a wait request");
  }

  pthread_mutex_lock(&w->lock);
  Thread *t = w->threads;
  while (t && t->count >= w->group) t = t->next;
  if (!t) t = start_thread(w);
  if (!t) {
    pthread_mutex_unlock(&w->lock);
    napi_delete_reference(env, req->callback);
    req->callback = NULL;
    return throw_errno(env, EAGAIN, "pthread_create");
  }
  req->refs = 2;
  req->thread = t;
  t->slots[t->count++] = req;
  poke(t);
  pthread_mutex_unlock(&w->lock);

  if (w->pending++ == 0 && !w->tsfn_referenced &&
      napi_ref_threadsafe_function(env, w->tsfn) == napi_ok)
    w->tsfn_referenced = true;
  return handle;
}

/* cancelWait(request): its callback will not run; its place is freed at once. */
static napi_value js_cancel_wait(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  napi_valuetype type;
  bool tagged = false;
  Request *req = NULL;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_external ||
      napi_check_object_type_tag(env, argv[0], &REQUEST_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, argv[0], (void **)&req) != napi_ok || !req)
    return throw_code(env, "ERR_INVALID_ARG", "native: expected a wait request");
  Waiters *w = get_waiters(env);
  if (!w) return NULL;
  pthread_mutex_lock(&w->lock);
  if (!req->cancelled) {
    req->cancelled = true;
    if (req->thread) poke(req->thread);
  }
  pthread_mutex_unlock(&w->lock);
  return make_undefined(env);
}

napi_value init_futex(napi_env env, napi_value exports, Addon *addon) {
  static const Export fns[] = {
      EXPORT(futexWait, js_wait),        EXPORT(futexWake, js_wake), EXPORT(waitAsync, js_wait_async),
      EXPORT(cancelWait, js_cancel_wait), EXPORT(yield, js_yield),
  };
  if (!export_all(env, exports, fns)) return NULL;

  pthread_once(&waitv_once, detect_waitv);
  Waiters *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, ENOMEM, "malloc");
  pthread_mutex_init(&w->lock, NULL);
  w->group = waitv_group;
  w->env = env;
  napi_value name;
  if (napi_create_string_utf8(env, "memmap.wait", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, w, deliver, &w->tsfn) != napi_ok) {
    waiters_free(w);
    return NULL;
  }
  addon->waiters = w; /* from here on addon.c's cleanup hook and finalizer own w */
  if (napi_unref_threadsafe_function(env, w->tsfn) != napi_ok)
    return throw_code(env, "ERR_INTERNAL", "native: cannot set up waits");
  return exports;
}
