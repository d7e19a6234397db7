/* harness.h: what the C kernel harnesses in benchmarks/ share (attention_kernel.c,
 * gelu_kernel.c, gemv_kernel.c): a clock and the comparison qsort needs for medians. */
#ifndef GRAFT_BENCH_HARNESS_H
#define GRAFT_BENCH_HARNESS_H

#include <time.h>

/* Seconds on `clock` (CLOCK_MONOTONIC for wall time, CLOCK_THREAD_CPUTIME_ID for this
 * thread's CPU time). */
static inline double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* qsort order for doubles, ascending. */
static inline int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
