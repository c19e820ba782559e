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

/* Each part's functions, as a table of EXPORT(name, fn) entries given to
 * export_all(), which sets each on the exports object as a function of that
 * name. Returns exports, or NULL with an exception pending. */
typedef struct {
  const char *name;
  napi_callback fn;
} Export;
#define EXPORT(name, fn) {#name, fn}
napi_value export_fns(napi_env env, napi_value exports, const Export *fns, size_t count);
#define export_all(env, exports, table) export_fns(env, exports, table, sizeof(table) / sizeof((table)[0]))

/* A parameter a callback's signature imposes and this callback does not need. */
#define UNUSED __attribute__((unused))

/* Per-environment state: the main thread and each worker have their own,
 * created by addon.c as the environment's instance data and ended by its one
 * cleanup hook. Process-wide state stays in statics, each saying why. */
typedef struct Waiters Waiters; /* futex.c: async waits' threads */
typedef struct {
  int *fds;
  int count, cap;
} OwnedFds; /* files.c: the descriptors this environment adopted */

typedef struct {
  Waiters *waiters; /* NULL until init_futex made it */
  OwnedFds owned;
} Addon;

/* This environment's Addon, or NULL with an exception pending. */
Addon *get_addon(napi_env env);

void waiters_stop(Waiters *w); /* joins its threads; NULL is a no-op */
void waiters_free(Waiters *w); /* after waiters_stop; NULL is a no-op */
void owned_fds_close(OwnedFds *o);

/* Each part of the addon adds its functions to the exports object, by resource. */
napi_value init_mapping(napi_env env, napi_value exports); /* mapping.c: mmap, mremap, munmap */
napi_value init_ranges(napi_env env, napi_value exports);  /* ranges.c: msync, madvise, mlock, mincore */
napi_value init_files(napi_env env, napi_value exports);   /* files.c: descriptors, locks */
napi_value init_crc32c(napi_env env, napi_value exports);  /* crc32c.c */
napi_value init_futex(napi_env env, napi_value exports, Addon *addon); /* futex.c: waits */

#endif
