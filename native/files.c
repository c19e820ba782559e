/* Files and descriptors: space (fallocate), anonymous files (memfd), dup,
 * page-cache advice (fadvise), whole-file locks (flock), one-byte range locks
 * (F_OFD_*), and the descriptors an environment owns (adoptFd/closeFd). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

/* fallocate(fd, offset, length): reserve blocks so later writes cannot hit ENOSPC. */
static napi_value js_fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  int32_t fd;
  size_t off, len;
  if (!arg_int32(env, argv[0], &fd) || !arg_size(env, argv[1], &off) || !arg_size(env, argv[2], &len))
    return NULL;
  if (len == 0) return make_undefined(env);
  int err = posix_fallocate(fd, (off_t)off, (off_t)len);
  if (err != 0) return throw_errno(env, err, "fallocate");
  return make_undefined(env);
}

/* memfd(name) -> fd of a new anonymous file (close-on-exec) */
static napi_value js_memfd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  char name[200];
  size_t n;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok)
    return throw_code(env, "ERR_INVALID_ARG", "native: expected a name");
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "memfd_create");
  return make_int32(env, fd);
}

/* dup(fd) -> a close-on-exec duplicate, so a mapping keeps its file when the caller closes theirs */
static napi_value js_dup(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !arg_int32(env, argv[0], &fd)) return NULL;
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) return throw_errno(env, errno, "fcntl");
  return make_int32(env, r);
}

static const int fadvice_values[] = {POSIX_FADV_NORMAL, POSIX_FADV_SEQUENTIAL, POSIX_FADV_RANDOM,
                                     POSIX_FADV_WILLNEED, POSIX_FADV_DONTNEED};

/* fadvise(fd, offset, length, adviceIndex): page-cache advice on a file (evict = dontneed) */
static napi_value js_fadvise(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, advice;
  size_t off, len;
  if (!get_args(env, info, 4, argv) || !arg_int32(env, argv[0], &fd) || !arg_size(env, argv[1], &off) ||
      !arg_size(env, argv[2], &len) || !arg_int32(env, argv[3], &advice))
    return NULL;
  if (advice < 0 || advice >= (int)(sizeof fadvice_values / sizeof fadvice_values[0]))
    return throw_code(env, "ERR_INVALID_ARG", "native: bad advice");
  int err = posix_fadvise(fd, (off_t)off, (off_t)len, fadvice_values[advice]);
  if (err != 0) return throw_errno(env, err, "posix_fadvise");
  return make_undefined(env);
}

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
 * (addon.c) closes what it still owns. Only memmap closes them (closeFd), never fs. */
static OwnedFds *owned_of(napi_env env, napi_callback_info info, napi_value *argv, int32_t *fd) {
  if (!get_args(env, info, 1, argv) || !arg_int32(env, argv[0], fd)) return NULL;
  if (*fd < 0) {
    throw_code(env, "ERR_INVALID_ARG", "native: bad descriptor");
    return NULL;
  }
  Addon *addon = get_addon(env);
  return addon ? &addon->owned : NULL;
}

/* adoptFd(fd): this environment owns fd; it is closed when the environment ends. */
static napi_value js_adopt_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  OwnedFds *o = owned_of(env, info, argv, &fd);
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
  OwnedFds *o = owned_of(env, info, argv, &fd);
  if (!o) return NULL;
  for (int i = 0; i < o->count; i++)
    if (o->fds[i] == fd) {
      o->fds[i] = o->fds[--o->count];
      break;
    }
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return make_undefined(env);
}

void owned_fds_close(OwnedFds *o) {
  for (int i = 0; i < o->count; i++) close(o->fds[i]);
  free(o->fds);
  *o = (OwnedFds){0};
}

napi_value init_files(napi_env env, napi_value exports) {
  static const Export fns[] = {
      EXPORT(fallocate, js_fallocate), EXPORT(memfd, js_memfd),           EXPORT(dup, js_dup),
      EXPORT(fadvise, js_fadvise),     EXPORT(flock, js_flock),           EXPORT(rangeLock, js_range_lock),
      EXPORT(rangeLocked, js_range_locked), EXPORT(adoptFd, js_adopt_fd), EXPORT(closeFd, js_close_fd),
  };
  return export_all(env, exports, fns);
}
