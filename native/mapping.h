/* A mapping as the addon holds it, shared by mapping.c (making, growing,
 * shrinking and ending mappings, with the reservations described there) and
 * ranges.c (what is done to a range of a live mapping: msync, madvise,
 * mlock, mincore, and the jobs on the thread pool). */
#ifndef MEMMAP_MAPPING_H
#define MEMMAP_MAPPING_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NAPI_VERSION 8
#include <node_api.h>

enum { ACCESS_READ = 0, ACCESS_WRITE = 1, ACCESS_COPY = 2 };

/* An address range taken out of a mapping and held as a reservation until the
 * buffers that may point into it are gone. */
typedef struct Retired {
  struct Retired *next;
  uint8_t *start;
  size_t len;
  unsigned epoch; /* buffers made in this epoch or before may point into it */
  int pending;    /* how many of those are still alive */
} Retired;

typedef struct {
  uint8_t *base;   /* page-aligned address from mmap; NULL for an empty mapping */
  size_t map_len;  /* bytes mapped at base */
  size_t delta;    /* the user's byte 0 is base + delta (offset alignment) */
  off_t file_off;  /* file offset of base */
  int access;
  bool handle_alive; /* the JS handle (an External) has not been collected */
  int buffers;     /* ArrayBuffers handed out and not yet fully released */
  unsigned epoch;  /* bumped each time a range is retired */
  Retired *retired;
  int pins;        /* async operations using the memory (ranges.c's jobs) */
  int slot;        /* SIGBUS guard slot, -1 if none */
  bool unmapped;
  bool unmap_pending; /* close() asked while pins > 0 */
  bool stale;      /* copied from the guard when unmapping */
} Mapping;

/* The page size, read once by init_mapping (the same for every environment). */
extern size_t page_size;

/* Takes the whole live range out of the mapping (close(), a collected handle,
 * or the last job ending after close() was asked for). */
void do_unmap(Mapping *m);

/* The live mapping argv[0] and a range [off, off+len) inside it from argv[1]
 * and argv[2], or NULL with an exception pending. */
Mapping *get_live_range(napi_env env, napi_value *argv, size_t *off, size_t *len);

/* Page-aligned [start, start+bytes) covering the user range, for msync & co. */
void page_range(Mapping *m, size_t off, size_t len, uint8_t **start, size_t *bytes);

/* Pre-faults [p, p+len) for reading (best effort: a hint). */
void populate_read(uint8_t *p, size_t len);

#endif
