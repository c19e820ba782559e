/* memmap's Node-API addon: system calls only. Policy lives in src/ (TypeScript). */
#include "common.h"

static napi_value init(napi_env env, napi_value exports) {
  if (!init_mapping(env, exports)) return NULL;
  if (!init_futex(env, exports)) return NULL;
  if (!init_extras(env, exports)) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
