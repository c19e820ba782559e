#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void set_str(napi_env env, napi_value obj, const char *key, const char *val) {
  napi_value s;
  if (napi_create_string_utf8(env, val, NAPI_AUTO_LENGTH, &s) == napi_ok)
    napi_set_named_property(env, obj, key, s);
}

/* errno -> its name ("ENOENT"), as Node's fs errors carry it. A table of our
 * own: strerrorname_np() is glibc 2.32+ only, and musl (Alpine) lacks it.
 * Where two names share a number (EWOULDBLOCK = EAGAIN, ENOTSUP = EOPNOTSUPP,
 * EDEADLOCK = EDEADLK), the first is the one Node and libuv report. */
static const char *errno_name(int err) {
  static const char *const names[] = {
#ifdef EPERM
    [EPERM] = "EPERM",
#endif
#ifdef ENOENT
    [ENOENT] = "ENOENT",
#endif
#ifdef ESRCH
    [ESRCH] = "ESRCH",
#endif
#ifdef EINTR
    [EINTR] = "EINTR",
#endif
#ifdef EIO
    [EIO] = "EIO",
#endif
#ifdef ENXIO
    [ENXIO] = "ENXIO",
#endif
#ifdef E2BIG
    [E2BIG] = "E2BIG",
#endif
#ifdef ENOEXEC
    [ENOEXEC] = "ENOEXEC",
#endif
#ifdef EBADF
    [EBADF] = "EBADF",
#endif
#ifdef ECHILD
    [ECHILD] = "ECHILD",
#endif
#ifdef EAGAIN
    [EAGAIN] = "EAGAIN",
#endif
#ifdef ENOMEM
    [ENOMEM] = "ENOMEM",
#endif
#ifdef EACCES
    [EACCES] = "EACCES",
#endif
#ifdef EFAULT
    [EFAULT] = "EFAULT",
#endif
#ifdef ENOTBLK
    [ENOTBLK] = "ENOTBLK",
#endif
#ifdef EBUSY
    [EBUSY] = "EBUSY",
#endif
#ifdef EEXIST
    [EEXIST] = "EEXIST",
#endif
#ifdef EXDEV
    [EXDEV] = "EXDEV",
#endif
#ifdef ENODEV
    [ENODEV] = "ENODEV",
#endif
#ifdef ENOTDIR
    [ENOTDIR] = "ENOTDIR",
#endif
#ifdef EISDIR
    [EISDIR] = "EISDIR",
#endif
#ifdef EINVAL
    [EINVAL] = "EINVAL",
#endif
#ifdef ENFILE
    [ENFILE] = "ENFILE",
#endif
#ifdef EMFILE
    [EMFILE] = "EMFILE",
#endif
#ifdef ENOTTY
    [ENOTTY] = "ENOTTY",
#endif
#ifdef ETXTBSY
    [ETXTBSY] = "ETXTBSY",
#endif
#ifdef EFBIG
    [EFBIG] = "EFBIG",
#endif
#ifdef ENOSPC
    [ENOSPC] = "ENOSPC",
#endif
#ifdef ESPIPE
    [ESPIPE] = "ESPIPE",
#endif
#ifdef EROFS
    [EROFS] = "EROFS",
#endif
#ifdef EMLINK
    [EMLINK] = "EMLINK",
#endif
#ifdef EPIPE
    [EPIPE] = "EPIPE",
#endif
#ifdef EDOM
    [EDOM] = "EDOM",
#endif
#ifdef ERANGE
    [ERANGE] = "ERANGE",
#endif
#ifdef EDEADLK
    [EDEADLK] = "EDEADLK",
#endif
#ifdef ENAMETOOLONG
    [ENAMETOOLONG] = "ENAMETOOLONG",
#endif
#ifdef ENOLCK
    [ENOLCK] = "ENOLCK",
#endif
#ifdef ENOSYS
    [ENOSYS] = "ENOSYS",
#endif
#ifdef ENOTEMPTY
    [ENOTEMPTY] = "ENOTEMPTY",
#endif
#ifdef ELOOP
    [ELOOP] = "ELOOP",
#endif
#ifdef ENOMSG
    [ENOMSG] = "ENOMSG",
#endif
#ifdef EIDRM
    [EIDRM] = "EIDRM",
#endif
#ifdef ENOSTR
    [ENOSTR] = "ENOSTR",
#endif
#ifdef ENODATA
    [ENODATA] = "ENODATA",
#endif
#ifdef ETIME
    [ETIME] = "ETIME",
#endif
#ifdef ENOSR
    [ENOSR] = "ENOSR",
#endif
#ifdef EREMOTE
    [EREMOTE] = "EREMOTE",
#endif
#ifdef ENOLINK
    [ENOLINK] = "ENOLINK",
#endif
#ifdef EPROTO
    [EPROTO] = "EPROTO",
#endif
#ifdef EMULTIHOP
    [EMULTIHOP] = "EMULTIHOP",
#endif
#ifdef EBADMSG
    [EBADMSG] = "EBADMSG",
#endif
#ifdef EOVERFLOW
    [EOVERFLOW] = "EOVERFLOW",
#endif
#ifdef EILSEQ
    [EILSEQ] = "EILSEQ",
#endif
#ifdef EUSERS
    [EUSERS] = "EUSERS",
#endif
#ifdef ENOTSOCK
    [ENOTSOCK] = "ENOTSOCK",
#endif
#ifdef EDESTADDRREQ
    [EDESTADDRREQ] = "EDESTADDRREQ",
#endif
#ifdef EMSGSIZE
    [EMSGSIZE] = "EMSGSIZE",
#endif
#ifdef EPROTOTYPE
    [EPROTOTYPE] = "EPROTOTYPE",
#endif
#ifdef ENOPROTOOPT
    [ENOPROTOOPT] = "ENOPROTOOPT",
#endif
#ifdef EPROTONOSUPPORT
    [EPROTONOSUPPORT] = "EPROTONOSUPPORT",
#endif
#ifdef ESOCKTNOSUPPORT
    [ESOCKTNOSUPPORT] = "ESOCKTNOSUPPORT",
#endif
#ifdef EOPNOTSUPP
    [EOPNOTSUPP] = "EOPNOTSUPP",
#endif
#ifdef EPFNOSUPPORT
    [EPFNOSUPPORT] = "EPFNOSUPPORT",
#endif
#ifdef EAFNOSUPPORT
    [EAFNOSUPPORT] = "EAFNOSUPPORT",
#endif
#ifdef EADDRINUSE
    [EADDRINUSE] = "EADDRINUSE",
#endif
#ifdef EADDRNOTAVAIL
    [EADDRNOTAVAIL] = "EADDRNOTAVAIL",
#endif
#ifdef ENETDOWN
    [ENETDOWN] = "ENETDOWN",
#endif
#ifdef ENETUNREACH
    [ENETUNREACH] = "ENETUNREACH",
#endif
#ifdef ENETRESET
    [ENETRESET] = "ENETRESET",
#endif
#ifdef ECONNABORTED
    [ECONNABORTED] = "ECONNABORTED",
#endif
#ifdef ECONNRESET
    [ECONNRESET] = "ECONNRESET",
#endif
#ifdef ENOBUFS
    [ENOBUFS] = "ENOBUFS",
#endif
#ifdef EISCONN
    [EISCONN] = "EISCONN",
#endif
#ifdef ENOTCONN
    [ENOTCONN] = "ENOTCONN",
#endif
#ifdef ESHUTDOWN
    [ESHUTDOWN] = "ESHUTDOWN",
#endif
#ifdef ETOOMANYREFS
    [ETOOMANYREFS] = "ETOOMANYREFS",
#endif
#ifdef ETIMEDOUT
    [ETIMEDOUT] = "ETIMEDOUT",
#endif
#ifdef ECONNREFUSED
    [ECONNREFUSED] = "ECONNREFUSED",
#endif
#ifdef EHOSTDOWN
    [EHOSTDOWN] = "EHOSTDOWN",
#endif
#ifdef EHOSTUNREACH
    [EHOSTUNREACH] = "EHOSTUNREACH",
#endif
#ifdef EALREADY
    [EALREADY] = "EALREADY",
#endif
#ifdef EINPROGRESS
    [EINPROGRESS] = "EINPROGRESS",
#endif
#ifdef ESTALE
    [ESTALE] = "ESTALE",
#endif
#ifdef EDQUOT
    [EDQUOT] = "EDQUOT",
#endif
#ifdef ECANCELED
    [ECANCELED] = "ECANCELED",
#endif
#ifdef EOWNERDEAD
    [EOWNERDEAD] = "EOWNERDEAD",
#endif
#ifdef ENOTRECOVERABLE
    [ENOTRECOVERABLE] = "ENOTRECOVERABLE",
#endif
#ifdef ERFKILL
    [ERFKILL] = "ERFKILL",
#endif
#ifdef EHWPOISON
    [EHWPOISON] = "EHWPOISON",
#endif
  };
  if (err > 0 && (size_t)err < sizeof names / sizeof names[0] && names[err]) return names[err];
  return NULL;
}

napi_value throw_errno(napi_env env, int err, const char *syscall) {
  const char *name = errno_name(err);
  char message[256];
  snprintf(message, sizeof message, "%s: %s", syscall, strerror(err));
  napi_value msg, error, num;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  set_str(env, error, "code", name ? name : "EUNKNOWN");
  set_str(env, error, "syscall", syscall);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_throw(env, error);
  return NULL;
}

napi_value throw_code(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

/* Throws ERR_INVALID_ARG for an argument of the wrong kind; returns false. */
static bool refuse(napi_env env, const char *message) {
  throw_code(env, "ERR_INVALID_ARG", message);
  return false;
}

bool arg_int32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok || refuse(env, "native: expected a number");
}

bool arg_int64(napi_env env, napi_value v, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < -9007199254740991.0 ||
      d > 9007199254740991.0 || (double)(int64_t)d != d)
    return refuse(env, "native: expected a safe integer");
  *out = (int64_t)d;
  return true;
}

bool arg_size(napi_env env, napi_value v, size_t *out) {
  int64_t i;
  if (!arg_int64(env, v, &i)) return false;
  if (i < 0) return refuse(env, "native: expected a non-negative integer");
  *out = (size_t)i;
  return true;
}

bool arg_bool(napi_env env, napi_value v, bool *out) {
  return napi_get_value_bool(env, v, out) == napi_ok || refuse(env, "native: expected a boolean");
}

napi_value make_int32(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

napi_value make_double(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

napi_value make_bool(napi_env env, bool v) {
  napi_value r;
  napi_get_boolean(env, v, &r);
  return r;
}

napi_value make_undefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

bool get_args(napi_env env, napi_callback_info info, size_t argc, napi_value *argv) {
  size_t n = argc;
  if (napi_get_cb_info(env, info, &n, argv, NULL, NULL) != napi_ok) return false;
  return n >= argc || refuse(env, "native: missing arguments");
}

napi_value export_fns(napi_env env, napi_value exports, const Export *fns, size_t count) {
  for (size_t i = 0; i < count; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return NULL;
  }
  return exports;
}
