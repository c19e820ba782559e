/* The SIGBUS guard: a fault inside one of memmap's mappings (the file was
 * truncated under it, or its storage failed) must not kill the process. */
#ifndef MEMMAP_GUARD_H
#define MEMMAP_GUARD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Installs the process-wide handler once (idempotent, thread-safe). */
void guard_install(void);
/* Puts the guard back on top of a handler installed after it (libuv's, for
 * process.on("SIGBUS")), which becomes the one faults not ours are passed to. */
void guard_reassert(void);
/* Registers [start, start+len); returns a slot number or -1 when the table is full. */
int guard_add(void *start, size_t len);
/* Moves a slot after mremap. */
void guard_move(int slot, void *start, size_t len);
/* Forgets a slot; call before munmap so the address can never be mistaken later. */
void guard_remove(int slot);
/* True once a fault hit this slot and its pages from the faulting one on were replaced by zero pages. */
bool guard_stale(int slot);
/* The slot whose range holds addr (-1 if none) and its sequence number now:
 * for a wait on a mapped word, to notice that the range left the mapping. */
int guard_find(const void *addr, unsigned *seq);
/* True while the slot still has sequence number seq (neither moved nor removed). */
bool guard_unchanged(int slot, unsigned seq);
#endif
