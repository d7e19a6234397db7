/* gemv_kernel.c: the decode GEMV (Sources/CKernels/gemv.c) next to the method it replaced —
 * each thread a cblas_sgemv over its contiguous block of W's rows into a partial y, partials
 * summed by a scalar loop — on the Llama decode step's weight shapes, in one process.
 * Not a test; figures in docs/PERFORMANCE.md ("Decode GEMV").
 *
 * Build and run from the repository root (nothing is written into it):
 *   clang -O2 -I Sources/CKernels/include $(pkg-config --cflags openblas) \
 *     benchmarks/gemv_kernel.c Sources/CKernels/gemm.c $(pkg-config --libs openblas) -lpthread -lm -o /tmp/gemv_kernel
 *   OPENBLAS_NUM_THREADS=1 /tmp/gemv_kernel [threads] [rounds] [variants]
 *
 * It includes gemv.c itself so that it can vary the kernel's tuning (stream count, streams
 * spread apart or adjacent rows) and the split (K blocks or column ranges per thread); the
 * variants are listed in all_variants, and the optional third argument picks some by index
 * ("0,6,8": old, the library's choice, N split). Every shape's weight is copied until the copies hold >= 320 MB
 * and the calls rotate through the copies, so every call reads its weight from memory (L3 is
 * 32 MB here). Threads: a spinning pool like Graft's WorkerPool (the caller is thread 0).
 * Variants alternate round by round (the machine may be shared); the median per call over
 * rounds is printed as GB/s of weight read. */
#include "../Sources/CKernels/gemv.c"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include "harness.h" /* seconds, compare_doubles */

/* ---------------------------------------------------------------- pool */

typedef void (*job_fn)(int t, int threads);
static job_fn pool_job;
static int pool_threads;
static _Atomic unsigned pool_epoch;
static _Atomic int pool_done;

static void *worker(void *arg) {
    int t = (int)(long)arg;
    unsigned seen = 0;
    for (;;) {
        unsigned e;
        while ((e = atomic_load_explicit(&pool_epoch, memory_order_acquire)) == seen) __builtin_ia32_pause();
        seen = e;
        pool_job(t, pool_threads);
        atomic_fetch_add_explicit(&pool_done, 1, memory_order_release);
    }
    return NULL;
}

static void pool_run(job_fn f) {
    if (pool_threads == 1) { f(0, 1); return; }
    pool_job = f;
    atomic_store(&pool_done, 0);
    atomic_fetch_add_explicit(&pool_epoch, 1, memory_order_release);
    f(0, pool_threads);
    while (atomic_load_explicit(&pool_done, memory_order_acquire) != pool_threads - 1) __builtin_ia32_pause();
}

/* ---------------------------------------------------------------- the call */

static size_t K, N;
static const float *W;   /* [K × N], the current copy */
static const float *X;   /* [K] */
static float *Y;         /* [N] */
static float *PARTS;     /* [threads - 1][N] */

/* Old: cblas_sgemv on the thread's K block, y cleared first (as Linear.swift did). */
static void job_old(int t, int T) {
    size_t k0 = K * t / T, k1 = K * (t + 1) / T;
    float *y = t == 0 ? Y : PARTS + (size_t)(t - 1) * N;
    memset(y, 0, N * sizeof(float));
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)(k1 - k0), (int)N, 1, W + k0 * N, (int)N, X + k0, 1, 0, y, 1);
}
static void call_old(void) {
    pool_run(job_old);
    for (int t = 1; t < pool_threads; t++) {
        const float *p = PARTS + (size_t)(t - 1) * N;
        for (size_t j = 0; j < N; j++) Y[j] += p[j];
    }
}

/* New, K split: graft_gemv_rows on the thread's K block, graft_gemv_sum after. */
static void job_new(int t, int T) {
    size_t k0 = K * t / T, k1 = K * (t + 1) / T;
    float *y = t == 0 ? Y : PARTS + (size_t)(t - 1) * N;
    graft_gemv_rows(GRAFT_GEMM_AUTO, k1 - k0, N, X + k0, W + k0 * N, N, y, 0);
}
static void call_new(void) {
    pool_run(job_new);
    graft_gemv_sum(GRAFT_GEMM_AUTO, N, Y, PARTS, N, (size_t)pool_threads - 1);
}

/* New, N split: every thread all of K over its columns (multiples of 32), no partials. */
static void job_nsplit(int t, int T) {
    size_t blocks = (N + 31) / 32;
    size_t c0 = blocks * t / T * 32, c1 = blocks * (t + 1) / T * 32;
    if (c1 > N) c1 = N;
    if (c0 < c1) graft_gemv_rows(GRAFT_GEMM_AUTO, K, c1 - c0, X, W + c0, N, Y + c0, 0);
}
static void call_nsplit(void) { pool_run(job_nsplit); }

typedef struct {
    const char *name;
    void (*call)(void);
    int streams, spread;
} variant;

/* Index 0 is the baseline; 6 is what the library runs (K split, 4 spread streams). */
static const variant all_variants[] = {
    {"old sgemv", call_old, 0, 0},
    {"K S1", call_new, 1, 1},
    {"K S2 adj", call_new, 2, 0},
    {"K S4 adj", call_new, 4, 0},
    {"K S8 adj", call_new, 8, 0},
    {"K S2 spread", call_new, 2, 1},
    {"K S4 spread", call_new, 4, 1},
    {"K S8 spread", call_new, 8, 1},
    {"N S4 spread", call_nsplit, 4, 1},
    {"N S8 spread", call_nsplit, 8, 1},
};
enum { NV = sizeof all_variants / sizeof all_variants[0] };

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    if (rounds < 1) rounds = 1;
    if (rounds > 256) rounds = 256;
    const char *pick = argc > 3 ? argv[3] : NULL; /* comma-separated variant indices, or all */
    int use[NV];
    for (int v = 0; v < NV; v++) use[v] = pick == NULL;
    if (pick) {
        for (const char *p = pick; *p;) {
            int v = atoi(p);
            if (v >= 0 && v < NV) use[v] = 1;
            while (*p && *p != ',') p++;
            if (*p) p++;
        }
    }
    pool_threads = threads;
    for (int t = 1; t < threads; t++) {
        pthread_t th;
        pthread_create(&th, NULL, worker, (void *)(long)t);
    }
    static const size_t shapes[][2] = {{768, 768}, {768, 256}, {768, 2048}, {2048, 768}, {768, 32000}};
    printf("threads %d, rounds %d, median per call; GB/s of weight read\n", threads, rounds);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        K = shapes[si][0];
        N = shapes[si][1];
        size_t bytes = K * N * sizeof(float);
        size_t copies = (320u << 20) / bytes + 1;
        float *pool = aligned_alloc(64, copies * bytes);
        srand(1);
        for (size_t i = 0; i < K * N; i++) pool[i] = (float)(rand() / (double)RAND_MAX) - 0.5f;
        for (size_t c = 1; c < copies; c++) memcpy(pool + c * K * N, pool, bytes);
        float *x = malloc(K * sizeof(float));
        for (size_t i = 0; i < K; i++) x[i] = (float)(rand() / (double)RAND_MAX) - 0.5f;
        X = x;
        Y = aligned_alloc(64, (N + 16) * sizeof(float));
        PARTS = aligned_alloc(64, ((size_t)threads * N + 16) * sizeof(float));
        double *ref = malloc(N * sizeof(double));
        for (size_t j = 0; j < N; j++) {
            double s = 0;
            for (size_t i = 0; i < K; i++) s += (double)x[i] * pool[i * N + j];
            ref[j] = s;
        }
        size_t calls = copies > 20 ? copies : 20;
        double times[NV][256];
        float worst[NV];
        for (int r = 0; r < rounds; r++) {
            for (int vi = 0; vi < NV; vi++) {
                int v = (vi + r) % NV; /* rotate the order every round */
                if (!use[v]) continue;
                gemv_streams = all_variants[v].streams ? all_variants[v].streams : 8;
                gemv_spread = all_variants[v].spread;
                W = pool;
                all_variants[v].call(); /* warm the code, check the result */
                float err = 0;
                for (size_t j = 0; j < N; j++) {
                    float e = fabsf((float)(Y[j] - ref[j])) / (1.0f + fabsf((float)ref[j]));
                    if (e > err) err = e;
                }
                worst[v] = err;
                double t0 = seconds(CLOCK_MONOTONIC);
                for (size_t c = 0; c < calls; c++) {
                    W = pool + (c % copies) * K * N;
                    all_variants[v].call();
                }
                times[v][r] = (seconds(CLOCK_MONOTONIC) - t0) / calls;
            }
        }
        printf("\n[%zu x %zu] %.2f MB, %zu copies\n", K, N, bytes / 1e6, copies);
        double old = 0;
        for (int v = 0; v < NV; v++) {
            if (!use[v]) continue;
            qsort(times[v], rounds, sizeof(double), compare_doubles);
            double med = times[v][rounds / 2];
            if (v == 0) old = med;
            printf("  %-20s %8.4f ms  %5.1f GB/s  (min %.4f ms)  err %.1e\n", all_variants[v].name, med * 1e3,
                   bytes / med / 1e9, times[v][0] * 1e3, worst[v]);
            if (old > 0 && v > 0) printf("  %-20s time / old %.3f\n", "", med / old);
        }
        free(pool); free(x); free(Y); free(PARTS); free(ref);
    }
    return 0;
}
