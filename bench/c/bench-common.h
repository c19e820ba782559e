/* Shared by the C references of the benchmarks (bench/c/): a
 * monotonic clock and a read-only view of a whole file. Included by path
 * ("bench-common.h" next to the .c file), so the build needs no -I. */
#ifndef MEMMAP_BENCH_COMMON_H
#define MEMMAP_BENCH_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

static inline double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Opens `path` read-only and stores its size; exits with status 1 on failure. */
static inline int open_sized(const char *path, size_t *size) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) { perror("open"); exit(1); }
  struct stat st;
  if (fstat(fd, &st) != 0) { perror("fstat"); exit(1); }
  *size = (size_t)st.st_size;
  return fd;
}

/* Maps `size` bytes of `fd` read-only and shared; exits with status 1 on failure. */
static inline uint8_t *map_readonly(int fd, size_t size) {
  uint8_t *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) { perror("mmap"); exit(1); }
  return p;
}

#endif
