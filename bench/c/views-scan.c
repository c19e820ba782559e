/* The machine's limit for bench/views.ts: the same record file, mapped,
 * read through a C struct. (1) the sum of one field over every row, (2)
 * every field of READS random rows, chosen by the same xorshift32 sequence
 * (seed 2463534242) as the JavaScript side. Prints one JSON line with the
 * best of 5 rounds and the checksums (which must match JavaScript's).
 *
 * usage: views-scan FILE.rec READS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-common.h"

/* The bench's Trade layout: struct({ id: "u32", side: "u8", qty: "i32", price: "f64", ts: "f64" }). */
struct trade {
  uint32_t id;
  uint8_t side;
  int32_t qty;
  double price;
  double ts;
};
_Static_assert(sizeof(struct trade) == 32, "Trade is 32 bytes");

/* Header fields used here; see src/views/record-format.ts. */
#define HEADER_LENGTH_OFFSET 12
#define ROW_COUNT_OFFSET 32

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: views-scan FILE.rec READS\n");
    return 2;
  }
  size_t size;
  int fd = open_sized(argv[1], &size);
  const uint8_t *p = map_readonly(fd, size);
  uint32_t header_length;
  uint64_t count;
  memcpy(&header_length, p + HEADER_LENGTH_OFFSET, 4);
  memcpy(&count, p + ROW_COUNT_OFFSET, 8);
  const struct trade *rows = (const struct trade *)(p + header_length);
  long reads = atol(argv[2]);
  uint32_t *index = malloc(sizeof(uint32_t) * (size_t)reads);
  uint32_t x = 2463534242u;
  for (long i = 0; i < reads; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    index[i] = (uint32_t)(x % count);
  }

  double best_sum = 1e300, best_random = 1e300, sum = 0, random_sum = 0;
  for (int round = 0; round < 5; round++) {
    double a = now_ns();
    double s = 0;
    for (uint64_t i = 0; i < count; i++) s += rows[i].price;
    double b = now_ns();
    double r = 0;
    for (long k = 0; k < reads; k++) {
      const struct trade *t = &rows[index[k]];
      r += (double)t->id + (double)t->side + (double)t->qty + t->price + t->ts;
    }
    double c = now_ns();
    if (b - a < best_sum) best_sum = b - a;
    if (c - b < best_random) best_random = c - b;
    sum = s;
    random_sum = r;
  }
  printf("{\"sumNs\":%.0f,\"randomNs\":%.0f,\"rows\":%llu,\"reads\":%ld,\"sum\":%.17g,\"randomSum\":%.17g}\n",
         best_sum, best_random, (unsigned long long)count, reads, sum, random_sum);
  return 0;
}
