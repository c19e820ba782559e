#define _GNU_SOURCE
#include "guard.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* One slot per live mapping. The signal handler reads the table without locks;
 * writers serialise on table_lock and bump the slot's sequence number around
 * each change (odd while changing), so the handler never acts on a start from
 * one mapping and an end from another. 65536 slots match Linux's default
 * vm.max_map_count, the most mappings a process can have.
 * Process-wide, not in the Addon: SIGBUS has one handler per process, which
 * cannot know which environment (thread) made the mapping it faulted in, and
 * may run on any thread; a wait on another environment's mapping looks it up too. */
#define GUARD_SLOTS 65536

typedef struct {
  atomic_uint seq;
  _Atomic uintptr_t start;
  _Atomic uintptr_t end; /* 0 when the slot is free */
  atomic_bool stale;
} guard_slot;

static guard_slot table[GUARD_SLOTS];
static _Atomic int high_water; /* slots at or above this index were never used */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static uintptr_t page_mask;

/* The disposition that was in place before ours, to pass on faults that are
 * not about our mappings. Each change publishes a new copy and never frees the
 * old one: a handler running on another thread may still be reading it. */
static _Atomic(const struct sigaction *) previous;

static void forward(int sig, siginfo_t *info, void *ctx) {
  const struct sigaction *prev = atomic_load(&previous);
  if (prev && (prev->sa_flags & SA_SIGINFO)) {
    if (prev->sa_sigaction) prev->sa_sigaction(sig, info, ctx);
    return;
  }
  void (*handler)(int) = prev ? prev->sa_handler : SIG_DFL;
  /* An ignored SIGBUS that came from a fault would re-execute the faulting
   * instruction forever: a fault that is not ours gets the default action. */
  if (handler == SIG_IGN && info->si_code <= 0) return;
  if (handler == SIG_DFL || handler == SIG_IGN) {
    /* Restore the default action: a real fault re-executes and kills the
     * process with SIGBUS as it would have without us; a sent signal is re-raised. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    if (info->si_code <= 0) raise(sig);
    return;
  }
  handler(sig);
}

/* A consistent copy of a slot: retries while a writer is changing it. The
 * writer never touches mapped memory, so it cannot be this very thread. */
static void read_slot(guard_slot *s, uintptr_t *start, uintptr_t *end) {
  for (;;) {
    unsigned before = atomic_load(&s->seq);
    if (!(before & 1)) {
      *start = atomic_load(&s->start);
      *end = atomic_load(&s->end);
      if (atomic_load(&s->seq) == before) return;
    }
    sched_yield();
  }
}

/* Async-signal-safe: atomics, mmap, sigaction, raise; errno is preserved. */
static void on_sigbus(int sig, siginfo_t *info, void *ctx) {
  int saved_errno = errno;
  /* Only a fault on a missing page of a mapped object (past the end of a
   * truncated file, or a write that found no space) is ours to repair. */
  if (info->si_code == BUS_ADRERR || info->si_code == BUS_OBJERR) {
    uintptr_t addr = (uintptr_t)info->si_addr;
    int n = atomic_load(&high_water);
    for (int i = 0; i < n; i++) {
      uintptr_t start, end;
      read_slot(&table[i], &start, &end);
      if (end == 0 || addr < start || addr >= end) continue;
      /* SAFETY: [page, end) is inside our own mapping, which cannot be unmapped
       * while the code that faulted still holds it (a live buffer or a pinned
       * job). Private zero pages from the faulting page to the end keep every
       * pointer valid; the pages before it still read and write the file. */
      uintptr_t page = addr & page_mask;
      void *p = mmap((void *)page, end - page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) break; /* cannot repair: let the previous disposition decide */
      atomic_store(&table[i].stale, true);
      errno = saved_errno;
      return;
    }
  }
  forward(sig, info, ctx);
  errno = saved_errno;
}

/* Puts our handler back on top if something replaced it, keeping that
 * something as the disposition to forward to. libuv installs its own SIGBUS
 * handler when a program listens for the signal (process.on("SIGBUS")) and
 * resets it to the default when the last listener goes; memmap's JS layer
 * calls this after both (newListener/removeListener), and every new mapping does. */
void guard_reassert(void) {
  pthread_mutex_lock(&table_lock);
  struct sigaction current;
  if (sigaction(SIGBUS, NULL, &current) == 0 &&
      !((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_sigbus)) {
    struct sigaction *copy = malloc(sizeof *copy);
    if (copy) {
      *copy = current;
      atomic_store(&previous, copy);
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_sigaction = on_sigbus;
      sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
      sigemptyset(&sa.sa_mask);
      sigaction(SIGBUS, &sa, NULL);
    }
  }
  pthread_mutex_unlock(&table_lock);
}

static void install_once(void) {
  page_mask = ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
  guard_reassert();
}

void guard_install(void) { pthread_once(&once, install_once); }

/* Caller holds table_lock. */
static void write_slot(int slot, uintptr_t start, uintptr_t end) {
  guard_slot *s = &table[slot];
  unsigned seq = atomic_load(&s->seq);
  atomic_store(&s->seq, seq + 1);
  atomic_store(&s->start, start);
  atomic_store(&s->end, end);
  atomic_store(&s->seq, seq + 2);
}

int guard_add(void *start, size_t len) {
  guard_reassert();
  pthread_mutex_lock(&table_lock);
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
    write_slot(slot, (uintptr_t)start, (uintptr_t)start + len);
  }
  pthread_mutex_unlock(&table_lock);
  return slot;
}

void guard_move(int slot, void *start, size_t len) {
  if (slot < 0) return;
  pthread_mutex_lock(&table_lock);
  write_slot(slot, (uintptr_t)start, (uintptr_t)start + len);
  pthread_mutex_unlock(&table_lock);
}

void guard_remove(int slot) {
  if (slot < 0) return;
  pthread_mutex_lock(&table_lock);
  write_slot(slot, 0, 0);
  pthread_mutex_unlock(&table_lock);
}

bool guard_stale(int slot) { return slot >= 0 && atomic_load(&table[slot].stale); }

int guard_find(const void *addr, unsigned *seq) {
  uintptr_t a = (uintptr_t)addr;
  int found = -1;
  pthread_mutex_lock(&table_lock);
  int n = atomic_load(&high_water);
  for (int i = 0; i < n; i++) {
    uintptr_t end = atomic_load(&table[i].end);
    if (end != 0 && a >= atomic_load(&table[i].start) && a < end) {
      found = i;
      *seq = atomic_load(&table[i].seq);
      break;
    }
  }
  pthread_mutex_unlock(&table_lock);
  return found;
}

bool guard_unchanged(int slot, unsigned seq) { return slot < 0 || atomic_load(&table[slot].seq) == seq; }
