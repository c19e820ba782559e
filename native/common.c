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

napi_value throw_errno(napi_env env, int err, const char *syscall) {
  const char *name = strerrorname_np(err);
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

bool arg_int32(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    throw_code(env, "ERR_INVALID_ARG", "native: expected a number");
    return false;
  }
  return true;
}

bool arg_int64(napi_env env, napi_value v, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < -9007199254740991.0 ||
      d > 9007199254740991.0 || (double)(int64_t)d != d) {
    throw_code(env, "ERR_INVALID_ARG", "native: expected a safe integer");
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool arg_size(napi_env env, napi_value v, size_t *out) {
  int64_t i;
  if (!arg_int64(env, v, &i)) return false;
  if (i < 0) {
    throw_code(env, "ERR_INVALID_ARG", "native: expected a non-negative integer");
    return false;
  }
  *out = (size_t)i;
  return true;
}

bool arg_bool(napi_env env, napi_value v, bool *out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    throw_code(env, "ERR_INVALID_ARG", "native: expected a boolean");
    return false;
  }
  return true;
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
  if (n < argc) {
    throw_code(env, "ERR_INVALID_ARG", "native: missing arguments");
    return false;
  }
  return true;
}
