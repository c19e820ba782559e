/* CRC32C: the checksum of the log's records, segment and meta headers, and record-file schemas. */
#include <pthread.h>

#include "common.h"

/* CRC32C (Castagnoli), software table; SSE4.2 when the CPU has it.
 *
 * The table and the CPU check are process-wide, not per environment: they are
 * the same for every thread. Every environment (each worker) runs
 * init_crc32c while others may be computing CRCs, so they are made once,
 * under pthread_once. */
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

napi_value init_crc32c(napi_env env, napi_value exports) {
  pthread_once(&crc_once, crc_init);
  static const Export fns[] = {EXPORT(crc32c, js_crc32c)};
  return export_all(env, exports, fns);
}
