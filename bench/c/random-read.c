/* The machine's limit for bench/core.ts: N random 8-byte reads through a
 * read-only mapping of a page-cached file, and a sequential 8-byte-word scan.
 * Offsets come from the same xorshift32 generator, seed and count as the
 * JavaScript side. Prints one JSON line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-common.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: random-read FILE READS\n");
    return 2;
  }
  size_t size;
  int fd = open_sized(argv[1], &size);
  long reads = atol(argv[2]);
  double t0 = now_ns();
  uint8_t *p = map_readonly(fd, size);
  double t1 = now_ns();
  uint32_t words = (uint32_t)(size / 8);
  uint32_t *offsets = malloc(sizeof(uint32_t) * reads);
  uint32_t x = 2463534242u;
  for (long i = 0; i < reads; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    offsets[i] = (x % words) * 8;
  }
  volatile uint64_t sink = 0;
  uint64_t acc = 0;
  double best_random = 1e300;
  for (int round = 0; round < 5; round++) {
    double a = now_ns();
    for (long i = 0; i < reads; i++) {
      uint64_t v;
      memcpy(&v, p + offsets[i], 8);
      acc += v;
    }
    double b = now_ns();
    if (b - a < best_random) best_random = b - a;
  }
  double best_scan = 1e300;
  for (int round = 0; round < 3; round++) {
    double a = now_ns();
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < size / 8; i++) acc += w[i];
    double b = now_ns();
    if (b - a < best_scan) best_scan = b - a;
  }
  sink = acc;
  (void)sink;
  printf("{\"mmapNs\":%.0f,\"randomReadNs\":%.3f,\"scanGBps\":%.3f}\n", t1 - t0, best_random / reads,
         size / best_scan);
  return 0;
}
