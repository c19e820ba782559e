/* Small system helpers for the log and the channel: advisory file locks and
 * a hardware CRC32C. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common.h"

/* flock(fd, op): op 0 unlock, 1 shared, 2 exclusive; never blocks.
 * Returns true when the lock was taken, false when someone else holds it.
 * The kernel releases the lock when the holder dies: a liveness test with no PIDs. */
static napi_value js_flock(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, op;
  if (!get_args(env, info, 2, argv) || !arg_int32(env, argv[0], &fd) || !arg_int32(env, argv[1], &op))
    return NULL;
  static const int ops[] = {LOCK_UN, LOCK_SH, LOCK_EX};
  if (op < 0 || op > 2) return throw_code(env, "ERR_INVALID_ARG", "native: bad lock operation");
  for (;;) {
    if (flock(fd, ops[op] | (op ? LOCK_NB : 0)) == 0) return make_bool(env, true);
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return make_bool(env, false);
    return throw_errno(env, errno, "flock");
  }
}

/* One byte at `offset` as an open-file-description lock (F_OFD_*): owned by
 * the open file, not the process, so it works between processes in different
 * PID namespaces and between two opens in one process; the kernel drops it
 * when the last descriptor of its open file closes, e.g. when its process dies. */
static bool lock_args(napi_env env, napi_callback_info info, size_t argc, napi_value *argv, int32_t *fd, struct flock *fl) {
  double offset;
  if (!get_args(env, info, argc, argv) || !arg_int32(env, argv[0], fd)) return false;
  if (napi_get_value_double(env, argv[1], &offset) != napi_ok || !(offset >= 0) || offset > 9007199254740991.0) {
    throw_code(env, "ERR_INVALID_ARG", "native: bad lock offset");
    return false;
  }
  memset(fl, 0, sizeof *fl);
  fl->l_whence = SEEK_SET;
  fl->l_start = (off_t)offset;
  fl->l_len = 1;
  return true;
}

/* rangeLock(fd, offset, take): take = true tries to lock the byte exclusively
 * (never blocks): true when taken, false when another open file holds it;
 * take = false unlocks it. */
static napi_value js_range_lock(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  struct flock fl;
  bool take;
  if (!lock_args(env, info, 3, argv, &fd, &fl) || !arg_bool(env, argv[2], &take)) return NULL;
  fl.l_type = take ? F_WRLCK : F_UNLCK;
  for (;;) {
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return make_bool(env, true);
    if (errno == EINTR) continue;
    if (take && (errno == EAGAIN || errno == EACCES)) return make_bool(env, false);
    return throw_errno(env, errno, "fcntl");
  }
}

/* rangeLocked(fd, offset) -> true when another open file holds a lock on the byte. */
static napi_value js_range_locked(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  struct flock fl;
  if (!lock_args(env, info, 2, argv, &fd, &fl)) return NULL;
  fl.l_type = F_WRLCK;
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return throw_errno(env, errno, "fcntl");
  return make_bool(env, fl.l_type != F_UNLCK);
}

/* Descriptors owned by one JavaScript environment (the main thread or a
 * worker): the native dups that mapFile(fd) keeps. Node closes what a worker
 * opened through fs when the worker ends, but not these, and with them the
 * locks of their open files ("this producer is alive") would outlive a
 * terminated worker until the process exits. The environment's cleanup hook
 * closes what it still owns. Only memmap closes them (closeFd), never fs. */
typedef struct {
  int *fds;
  int count, cap;
} OwnedFds;

static OwnedFds *owned_of(napi_env env, napi_callback_info info, size_t argc, napi_value *argv, int32_t *fd) {
  void *data = NULL;
  size_t n = argc;
  if (napi_get_cb_info(env, info, &n, argv, NULL, &data) != napi_ok || n < argc) {
    throw_code(env, "ERR_INVALID_ARG", "native: missing arguments");
    return NULL;
  }
  if (!arg_int32(env, argv[0], fd)) return NULL;
  if (*fd < 0) {
    throw_code(env, "ERR_INVALID_ARG", "native: bad descriptor");
    return NULL;
  }
  return data;
}

/* adoptFd(fd): this environment owns fd; it is closed when the environment ends. */
static napi_value js_adopt_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  OwnedFds *o = owned_of(env, info, 1, argv, &fd);
  if (!o) return NULL;
  if (o->count == o->cap) {
    int cap = o->cap ? o->cap * 2 : 16;
    int *fds = realloc(o->fds, (size_t)cap * sizeof *fds);
    if (!fds) return throw_errno(env, ENOMEM, "realloc");
    o->fds = fds;
    o->cap = cap;
  }
  o->fds[o->count++] = fd;
  return make_undefined(env);
}

/* closeFd(fd): forgets an adopted fd and closes it (the only way memmap closes them). */
static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  OwnedFds *o = owned_of(env, info, 1, argv, &fd);
  if (!o) return NULL;
  for (int i = 0; i < o->count; i++)
    if (o->fds[i] == fd) {
      o->fds[i] = o->fds[--o->count];
      break;
    }
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return make_undefined(env);
}

static void close_owned(void *arg) {
  OwnedFds *o = arg;
  for (int i = 0; i < o->count; i++) close(o->fds[i]);
  free(o->fds);
  free(o);
}

/* CRC32C (Castagnoli), software table; SSE4.2 when the CPU has it. Every
 * environment (each worker) runs init_extras, while others may be computing
 * CRCs: the table and the CPU check are made once, under pthread_once. */
static uint32_t table[256];
static bool have_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
#endif

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n) {
  while (n--) crc = (crc >> 8) ^ table[(crc ^ *p++) & 0xff];
  return crc;
}

/* crc32c(buffer, byteOffset, byteLength, seed = 0) -> uint32; chainable through seed */
static napi_value js_crc32c(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  void *data;
  size_t len, off, n;
  uint32_t seed;
  bool is_ab = false;
  napi_is_arraybuffer(env, argv[0], &is_ab);
  if (!is_ab || napi_get_arraybuffer_info(env, argv[0], &data, &len) != napi_ok)
    return throw_code(env, "ERR_INVALID_ARG", "native: expected an ArrayBuffer");
  if (!arg_size(env, argv[1], &off) || !arg_size(env, argv[2], &n)) return NULL;
  if (napi_get_value_uint32(env, argv[3], &seed) != napi_ok)
    return throw_code(env, "ERR_INVALID_ARG", "native: expected a uint32 seed");
  if (off > len || n > len - off) return throw_code(env, "ERR_OUT_OF_RANGE", "native: range outside the buffer");
  const uint8_t *p = (const uint8_t *)data + off;
  uint32_t c = ~seed;
#if defined(__x86_64__)
  c = have_hw ? crc_hw(c, p, n) : crc_sw(c, p, n);
#else
  c = crc_sw(c, p, n);
#endif
  napi_value r;
  napi_create_uint32(env, ~c, &r);
  return r;
}

napi_value init_extras(napi_env env, napi_value exports) {
  pthread_once(&crc_once, crc_init);
  EXPORT_FN(env, exports, "flock", js_flock);
  EXPORT_FN(env, exports, "rangeLock", js_range_lock);
  OwnedFds *owned = calloc(1, sizeof *owned);
  if (!owned) return throw_errno(env, ENOMEM, "calloc");
  napi_add_env_cleanup_hook(env, close_owned, owned);
  static const struct { const char *name; napi_callback fn; } fd_fns[] = {{"adoptFd", js_adopt_fd}, {"closeFd", js_close_fd}};
  for (size_t i = 0; i < sizeof fd_fns / sizeof fd_fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fd_fns[i].name, NAPI_AUTO_LENGTH, fd_fns[i].fn, owned, &f) != napi_ok ||
        napi_set_named_property(env, exports, fd_fns[i].name, f) != napi_ok)
      return NULL;
  }
  EXPORT_FN(env, exports, "rangeLocked", js_range_locked);
  EXPORT_FN(env, exports, "crc32c", js_crc32c);
  return exports;
}
