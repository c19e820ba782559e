/* The machine's limit for bench:log's end-to-end test: how long a process
 * sleeping on a shared futex takes to notice a new record. A parent on CPU 0
 * stamps the clock, bumps a counter and wakes; a child on CPU 1 sleeping on
 * the counter reads the clock when it wakes. One event every ~200 µs; between
 * events the parent spins ("busy") or sleeps ("idle"), as in the JS test.
 *
 * usage: futex-wake busy|idle <events> [unpinned]   prints the latencies in ns, one per line
 * ("unpinned": both processes run wherever the scheduler puts them). With
 * FUTEX_WAKE_SPLIT=1 in the environment, each line also has how long the
 * parent's FUTEX_WAKE took to return, counted from the same stamp. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-common.h"

struct shared {
  _Atomic uint32_t count; /* events sent; the futex word */
  _Atomic uint32_t ready; /* the child is about to wait */
  _Atomic double stamp;   /* when the newest event was sent */
};

static int pinned = 1;

static void pin(int cpu) {
  if (!pinned) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set); /* best effort: one CPU means no pinning */
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) { fprintf(stderr, "usage: futex-wake busy|idle <events> [unpinned]\n"); return 2; }
  pinned = argc == 3;
  int busy = strcmp(argv[1], "busy") == 0;
  uint32_t events = (uint32_t)atoi(argv[2]);
  struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  double *lat = mmap(NULL, events * sizeof(double), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  double *woken = mmap(NULL, events * sizeof(double), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED || lat == MAP_FAILED || woken == MAP_FAILED) { perror("mmap"); return 1; }
  int split = getenv("FUTEX_WAKE_SPLIT") != NULL;
  pid_t child = fork();
  if (child < 0) { perror("fork"); return 1; }
  if (child == 0) {
    pin(1);
    uint32_t seen = 0;
    atomic_store(&sh->ready, 1);
    while (seen < events) {
      while (atomic_load(&sh->count) == seen) syscall(SYS_futex, &sh->count, FUTEX_WAIT, seen, NULL, NULL, 0);
      double woke = now_ns();
      seen = atomic_load(&sh->count);
      lat[seen - 1] = woke - atomic_load(&sh->stamp); /* an event overtaken by the next one stays 0 */
    }
    _exit(0);
  }
  pin(0);
  while (!atomic_load(&sh->ready)) sched_yield();
  for (uint32_t i = 0; i < events; i++) {
    if (busy) {
      for (double until = now_ns() + 200e3; now_ns() < until;) {}
    } else {
      struct timespec gap = {0, 200000};
      nanosleep(&gap, NULL);
    }
    atomic_store(&sh->stamp, now_ns());
    atomic_fetch_add(&sh->count, 1);
    syscall(SYS_futex, &sh->count, FUTEX_WAKE, 1, NULL, NULL, 0);
    woken[i] = now_ns() - atomic_load(&sh->stamp);
  }
  waitpid(child, NULL, 0);
  for (uint32_t i = 0; i < events; i++)
    if (lat[i] > 0 && split) printf("%.0f %.0f\n", lat[i], woken[i]);
    else if (lat[i] > 0) printf("%.0f\n", lat[i]);
  return 0;
}
