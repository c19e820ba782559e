/* memmap's Node-API addon: system calls only. Policy lives in src/ (TypeScript).
 * This file registers the parts and owns the per-environment state (Addon). */
#include <errno.h>
#include <stdlib.h>

#include "common.h"

/* The environment ends (the process exits, or a worker is terminated): stop
 * what runs on its behalf. Node-API runs this before the instance data's
 * finalizer (its own cleanup hook was registered first, and hooks run last
 * registered first), so addon_free finds the threads joined. */
static void addon_cleanup(void *arg) {
  Addon *addon = arg;
  owned_fds_close(&addon->owned);
  waiters_stop(addon->waiters);
}

static void addon_free(napi_env env UNUSED, void *data, void *hint UNUSED) {
  Addon *addon = data;
  waiters_free(addon->waiters);
  free(addon);
}

Addon *get_addon(napi_env env) {
  Addon *addon = NULL;
  if (napi_get_instance_data(env, (void **)&addon) != napi_ok || !addon) {
    throw_code(env, "ERR_INTERNAL", "native: the addon is not initialised");
    return NULL;
  }
  return addon;
}

static napi_value init(napi_env env, napi_value exports) {
  Addon *addon = calloc(1, sizeof *addon);
  if (!addon) return throw_errno(env, ENOMEM, "calloc");
  if (napi_set_instance_data(env, addon, addon_free, NULL) != napi_ok) {
    free(addon);
    return throw_code(env, "ERR_INTERNAL", "native: cannot set instance data");
  }
  /* From here on the finalizer owns addon. */
  bool ok = init_mapping(env, exports) && init_ranges(env, exports) && init_files(env, exports) && init_crc32c(env, exports) &&
            init_futex(env, exports, addon);
  /* Added after init_futex made the waiters' thread-safe function, which has
   * a cleanup hook of its own: hooks run last added first, so waiters_stop
   * runs while that function is still open. Added even when a part failed,
   * to end what the parts before it started. */
  if (napi_add_env_cleanup_hook(env, addon_cleanup, addon) != napi_ok && ok)
    return throw_code(env, "ERR_INTERNAL", "native: cannot add a cleanup hook");
  return ok ? exports : NULL;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
