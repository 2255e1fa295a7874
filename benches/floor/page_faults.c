/*
 * The physical floor of what a restore of a compacted GVThread allocates
 * (docs/benchmarks.md, "Idle GVThreads compacted"): the latency of a first
 * touch of a page, with and without its own page-table page, and of one
 * guard-marker install in an empty 2 MiB range, laid out as gvthread lays
 * out 16 MiB slots.
 *
 *   gcc -O2 benches/floor/page_faults.c -o /tmp/page_faults && /tmp/page_faults
 *
 * Linux 6.13 or later (MADV_GUARD_INSTALL). Prints p50/p90/p99/max in us.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define SLOTS 5000
#define SLOT (16UL << 20)
#define PAGE 4096UL
#define RANGE (2UL << 20)

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v) {
    qsort(v, SLOTS, sizeof *v, by_value);
    printf("%-44s p50 %6.2f  p90 %6.2f  p99 %6.2f  max %8.2f us\n", what, v[SLOTS / 2] / 1e3,
           v[SLOTS * 9 / 10] / 1e3, v[SLOTS * 99 / 100] / 1e3, v[SLOTS - 1] / 1e3);
}

int main(void) {
    char *base = mmap(NULL, SLOT * (SLOTS + 1), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    double *v = malloc(SLOTS * sizeof *v);
    if (base == MAP_FAILED || !v) {
        perror("mmap");
        return 1;
    }
    for (int i = 0; i < SLOTS; i++) {
        volatile char *top = base + SLOT * (i + 1) - PAGE;
        double t = now_ns();
        *top = 1;
        v[i] = now_ns() - t;
    }
    report("top page (data page + page-table page)", v);
    for (int i = 0; i < SLOTS; i++) {
        volatile char *second = base + SLOT * (i + 1) - 2 * PAGE;
        double t = now_ns();
        *second = 1;
        v[i] = now_ns() - t;
    }
    report("second page (page-table page present)", v);
    for (int i = 0; i < SLOTS; i++) {
        double t = now_ns();
        if (madvise(base + SLOT * i, PAGE, MADV_GUARD_INSTALL) != 0) {
            perror("MADV_GUARD_INSTALL");
            return 1;
        }
        v[i] = now_ns() - t;
    }
    report("guard marker (empty range: page-table page)", v);
    for (int i = 0; i < SLOTS; i++)
        madvise(base + SLOT * (i + 1) - RANGE, RANGE, MADV_DONTNEED);
    for (int i = 0; i < SLOTS; i++) {
        volatile char *top = base + SLOT * (i + 1) - PAGE;
        double t = now_ns();
        *top = 1;
        v[i] = now_ns() - t;
    }
    report("top page again after emptying its range", v);
    return 0;
}
