/* The machine's limits for bench/channel.ts, in C over a shared anonymous
 * mapping between two processes.
 *
 *   channel-pingpong spin|futex ROUND_TRIPS
 *   channel-pingpong stream release|seqcst MESSAGES BATCH SIZE
 *
 * Ping-pong: two processes bouncing a 16-byte message, as fast as C can.
 * Each direction has its own 128-byte line: a sequence word, then the
 * 16-byte payload. A side writes the payload, then release-stores the next
 * sequence number; the other side waits until it sees that number (busy-
 * polling with "spin"; sleeping in FUTEX_WAIT, woken by FUTEX_WAKE, with
 * "futex"), copies the payload and answers the same way. The parent is
 * pinned to CPU 0 and the child to CPU 1 when there are two CPUs (unless
 * MEMMAP_BENCH_NOPIN=1: then both stay on the CPUs the caller allowed).
 *
 * Prints one JSON line: round-trip percentiles in nanoseconds.
 *
 * Stream: one-way throughput of SIZE-byte messages through a 1 MiB ring of
 * the channel's frames (8-byte header, padded to 8), the tail published
 * once per BATCH messages and the consumer polling it. "release" publishes
 * with a plain release store, as C can and JavaScript cannot; "seqcst" with a
 * sequentially consistent store followed by a load of another word — the
 * store-then-check-for-sleepers that a consumer allowed to sleep requires,
 * and what the channel's Atomics.store amounts to. Prints messages/s. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  _Alignas(128) _Atomic uint32_t seq;
  unsigned char payload[16];
} Line;

typedef struct {
  Line ping; /* parent -> child */
  Line pong; /* child -> parent */
} Shared;

static int use_futex;

static void post(Line *line, const unsigned char *payload, uint32_t seq) {
  memcpy(line->payload, payload, 16);
  atomic_store_explicit(&line->seq, seq, memory_order_release);
  if (use_futex) syscall(SYS_futex, &line->seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void await_seq(Line *line, uint32_t seq, unsigned char *payload) {
  for (;;) {
    uint32_t now = atomic_load_explicit(&line->seq, memory_order_acquire);
    if (now == seq) break;
    if (use_futex) syscall(SYS_futex, &line->seq, FUTEX_WAIT, now, NULL, NULL, 0);
  }
  memcpy(payload, line->payload, 16);
}

static void pin(int cpu) {
  /* MEMMAP_BENCH_NOPIN=1: stay where the caller put us (bench:channel's conditions: unpinned, or taskset -c 0). */
  const char *nopin = getenv("MEMMAP_BENCH_NOPIN");
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2 || (nopin && strcmp(nopin, "1") == 0)) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

#define RING (1u << 20)

typedef struct {
  _Alignas(128) _Atomic uint64_t tail;
  _Alignas(128) _Atomic uint64_t head;
  _Alignas(128) _Atomic uint32_t sleepers; /* never set here: only read, as a waking producer must */
  _Alignas(128) unsigned char ring[RING];
} Stream;

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int stream(int seqcst, long count, long batch, uint32_t size) {
  Stream *s = mmap(NULL, sizeof(Stream), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) return perror("mmap"), 1;
  const uint64_t frame = (8u + size + 7u) & ~7ull;
  pid_t child = fork();
  if (child < 0) return perror("fork"), 1;
  if (child == 0) { /* producer */
    pin(1);
    unsigned char *msg = malloc(size);
    memset(msg, 7, size);
    uint64_t tail = 0, head = 0;
    for (long i = 0; i < count; i++) {
      uint64_t index = tail % RING;
      uint64_t pad = index + frame > RING ? RING - index : 0;
      while (tail + pad + frame - head > RING) head = atomic_load_explicit(&s->head, memory_order_acquire);
      if (pad) {
        memcpy(&s->ring[index], &(uint32_t){(uint32_t)pad}, 4);
        memcpy(&s->ring[index + 4], &(uint32_t){2}, 4); /* padding */
        tail += pad;
        index = 0;
      }
      memcpy(&s->ring[index], &(uint32_t){8u + size}, 4);
      memcpy(&s->ring[index + 4], &(uint32_t){1}, 4); /* data */
      memcpy(&s->ring[index + 8], msg, size);
      tail += frame;
      if ((i + 1) % batch == 0 || i == count - 1) {
        if (seqcst) {
          atomic_store_explicit(&s->tail, tail, memory_order_seq_cst);
          (void)atomic_load_explicit(&s->sleepers, memory_order_seq_cst);
        } else {
          atomic_store_explicit(&s->tail, tail, memory_order_release);
        }
      }
    }
    _exit(0);
  }
  pin(0);
  uint64_t head = 0, sum = 0;
  long got = 0;
  double t0 = 0;
  while (got < count) {
    uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
    if (tail == head) continue;
    if (t0 == 0) t0 = seconds();
    while (head < tail) {
      uint32_t len, type;
      uint64_t index = head % RING;
      memcpy(&len, &s->ring[index], 4);
      memcpy(&type, &s->ring[index + 4], 4);
      if (type == 1) {
        got++;
        sum += s->ring[index + 8];
      }
      head += (len + 7u) & ~7u;
    }
    atomic_store_explicit(&s->head, head, memory_order_release);
  }
  double elapsed = seconds() - t0;
  waitpid(child, NULL, 0);
  printf("{\"publication\":\"%s\",\"messages\":%ld,\"batch\":%ld,\"size\":%u,\"perSecond\":%.0f,\"check\":%llu}\n",
         seqcst ? "seqcst" : "release", count, batch, size, (double)count / elapsed, (unsigned long long)sum);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 6 && strcmp(argv[1], "stream") == 0 && (!strcmp(argv[2], "release") || !strcmp(argv[2], "seqcst"))) {
    long count = atol(argv[3]), batch = atol(argv[4]);
    long size = atol(argv[5]);
    if (count < 1 || batch < 1 || size < 0 || size > 65536) return 2;
    return stream(strcmp(argv[2], "seqcst") == 0, count, batch, (uint32_t)size);
  }
  if (argc != 3 || (strcmp(argv[1], "spin") && strcmp(argv[1], "futex"))) {
    fprintf(stderr, "usage: channel-pingpong spin|futex ROUND_TRIPS\n"
                    "       channel-pingpong stream release|seqcst MESSAGES BATCH SIZE\n");
    return 2;
  }
  use_futex = strcmp(argv[1], "futex") == 0;
  long rounds = atol(argv[2]);
  long warmup = rounds / 10 + 100;
  if (rounds < 1) return 2;

  Shared *s = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) return perror("mmap"), 1;
  memset(s, 0, sizeof *s);

  unsigned char msg[16] = "ping-pong-16byte";
  pid_t child = fork();
  if (child < 0) return perror("fork"), 1;
  if (child == 0) {
    pin(1);
    unsigned char buf[16];
    for (uint32_t seq = 1; seq <= (uint32_t)(warmup + rounds); seq++) {
      await_seq(&s->ping, seq, buf);
      post(&s->pong, buf, seq);
    }
    _exit(0);
  }
  pin(0);
  uint64_t *samples = malloc(sizeof(uint64_t) * (size_t)rounds);
  if (!samples) return 1;
  unsigned char buf[16];
  for (uint32_t seq = 1; seq <= (uint32_t)(warmup + rounds); seq++) {
    uint64_t t0 = now_ns();
    post(&s->ping, msg, seq);
    await_seq(&s->pong, seq, buf);
    uint64_t t1 = now_ns();
    if (seq > (uint32_t)warmup) samples[seq - warmup - 1] = t1 - t0;
  }
  waitpid(child, NULL, 0);
  qsort(samples, (size_t)rounds, sizeof *samples, compare);
  double sum = 0;
  for (long i = 0; i < rounds; i++) sum += (double)samples[i];
  printf("{\"mode\":\"%s\",\"roundTrips\":%ld,\"medianNs\":%llu,\"p99Ns\":%llu,\"p999Ns\":%llu,\"meanNs\":%.1f}\n",
         argv[1], rounds, (unsigned long long)samples[rounds / 2], (unsigned long long)samples[(long)(rounds * 0.99)],
         (unsigned long long)samples[(long)(rounds * 0.999)], sum / (double)rounds);
  return 0;
}
