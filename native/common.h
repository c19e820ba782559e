/* Shared helpers for the memmap addon: argument reading and errno errors.
 * The TypeScript layer validates every argument before calling in; the checks
 * here are a second line so that a bug there can never become a wild pointer. */
#ifndef MEMMAP_COMMON_H
#define MEMMAP_COMMON_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Throws an Error with code (errno name), errno and syscall set; returns NULL. */
napi_value throw_errno(napi_env env, int err, const char *syscall);
/* Throws an Error with an ERR_… code of memmap's own; returns NULL. */
napi_value throw_code(napi_env env, const char *code, const char *message);

bool arg_int32(napi_env env, napi_value v, int32_t *out);
bool arg_int64(napi_env env, napi_value v, int64_t *out);
bool arg_size(napi_env env, napi_value v, size_t *out); /* a non-negative safe integer */
bool arg_bool(napi_env env, napi_value v, bool *out);

napi_value make_int32(napi_env env, int32_t v);
napi_value make_double(napi_env env, double v);
napi_value make_bool(napi_env env, bool v);
napi_value make_undefined(napi_env env);

/* Reads argc arguments into argv, throwing if fewer were given. */
bool get_args(napi_env env, napi_callback_info info, size_t argc, napi_value *argv);

#define EXPORT_FN(env, exports, name, fn)                                            \
  do {                                                                               \
    napi_value f_;                                                                   \
    if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f_) != napi_ok) \
      return NULL;                                                                   \
    if (napi_set_named_property(env, exports, name, f_) != napi_ok) return NULL;     \
  } while (0)

/* Each part of the addon adds its functions to the exports object. */
napi_value init_mapping(napi_env env, napi_value exports);
napi_value init_futex(napi_env env, napi_value exports);
napi_value init_extras(napi_env env, napi_value exports);

#endif
