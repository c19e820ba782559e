#define _GNU_SOURCE
#include "guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

/* One slot per live mapping. The signal handler reads the table without locks,
 * so every field is atomic; writers serialise on table_lock. 65536 slots match
 * Linux's default vm.max_map_count, the most mappings a process can have. */
#define GUARD_SLOTS 65536

typedef struct {
  _Atomic uintptr_t start;
  _Atomic uintptr_t end; /* 0 when the slot is free */
  atomic_bool stale;
} guard_slot;

static guard_slot table[GUARD_SLOTS];
static _Atomic int high_water; /* slots at or above this index were never used */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction previous;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void chain(int sig, siginfo_t *info, void *ctx) {
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) previous.sa_sigaction(sig, info, ctx);
    return;
  }
  if (previous.sa_handler == SIG_IGN) return;
  if (previous.sa_handler == SIG_DFL) {
    /* Restore the default action: a real fault re-executes and kills the
     * process with SIGBUS as it would have without us; a sent signal is re-raised. */
    signal(sig, SIG_DFL);
    if (info->si_code <= 0) raise(sig);
    return;
  }
  previous.sa_handler(sig);
}

static void on_sigbus(int sig, siginfo_t *info, void *ctx) {
  uintptr_t addr = (uintptr_t)info->si_addr;
  int n = atomic_load(&high_water);
  for (int i = 0; i < n; i++) {
    uintptr_t start = atomic_load(&table[i].start);
    uintptr_t end = atomic_load(&table[i].end);
    if (end != 0 && addr >= start && addr < end) {
      /* SAFETY: [start, end) is our own mapping; replacing it with private zero
       * pages at the same address keeps every pointer into it valid. mmap is a
       * plain system call here, safe to make from a signal handler in practice. */
      void *p = mmap((void *)start, end - start, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) break; /* cannot repair: let the default action happen */
      atomic_store(&table[i].stale, true);
      return;
    }
  }
  chain(sig, info, ctx);
}

static void install_once(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &previous);
}

void guard_install(void) { pthread_once(&once, install_once); }

/* libuv installs its own SIGBUS handler when a program listens for the
 * signal (process.on("SIGBUS")), replacing ours; then a fault in a mapping
 * would loop forever. Each new mapping re-asserts the guard, keeping the
 * newer handler as the one to chain to. Caller holds table_lock. */
static void reassert(void) {
  struct sigaction current;
  if (sigaction(SIGBUS, NULL, &current) != 0) return;
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_sigbus) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  previous = current;
  sigaction(SIGBUS, &sa, NULL);
}

int guard_add(void *start, size_t len) {
  pthread_mutex_lock(&table_lock);
  reassert();
  int slot = -1;
  int n = atomic_load(&high_water);
  for (int i = 0; i < n; i++) {
    if (atomic_load(&table[i].end) == 0) { slot = i; break; }
  }
  if (slot < 0 && n < GUARD_SLOTS) {
    slot = n;
    atomic_store(&high_water, n + 1);
  }
  if (slot >= 0) {
    atomic_store(&table[slot].stale, false);
    atomic_store(&table[slot].start, (uintptr_t)start);
    atomic_store(&table[slot].end, (uintptr_t)start + len);
  }
  pthread_mutex_unlock(&table_lock);
  return slot;
}

void guard_move(int slot, void *start, size_t len) {
  if (slot < 0) return;
  pthread_mutex_lock(&table_lock);
  atomic_store(&table[slot].end, 0);
  atomic_store(&table[slot].start, (uintptr_t)start);
  atomic_store(&table[slot].end, (uintptr_t)start + len);
  pthread_mutex_unlock(&table_lock);
}

void guard_remove(int slot) {
  if (slot < 0) return;
  pthread_mutex_lock(&table_lock);
  atomic_store(&table[slot].end, 0);
  atomic_store(&table[slot].start, 0);
  pthread_mutex_unlock(&table_lock);
}

bool guard_stale(int slot) { return slot >= 0 && atomic_load(&table[slot].stale); }
