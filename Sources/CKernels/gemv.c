/* One-row weight products (decode): y[1 × N] = x[1 × K] · W[K × N] with W row-major, read in
 * place (never packed or copied). Memory-bound: every weight float is read once and used once,
 * so the kernel's job is to keep enough reads in flight.
 *
 * How a block of W's rows is read (graft_gemv_rows): the rows are split into STREAMS (= 4,
 * gemv_streams below) groups of consecutive rows ("spread"), and one row of every group is
 * consumed per step, so memory is read as STREAMS sequential streams that start far apart
 * (like STREAMS independent readers) rather than one. Each step adds x[r]·W[r, :] of its
 * STREAMS rows into y[0..N): the weights go through 4 ymm accumulators 32 columns at a time,
 * y itself stays in L1 (N ≤ 8192) or L2 (the 32000-wide lm_head, 125 KiB). Every step after
 * the first adds to y, so y is read and written once per STREAMS rows (from L1/L2, while the
 * weights come from memory). Rows left over (rows mod STREAMS) run one at a time.
 * Measurements and the choices they led to: docs/PERFORMANCE.md, "Decode GEMV". */
#include "graft_kernels.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define GRAFT_X86 1
#include <immintrin.h>
#else
#define GRAFT_X86 0
#endif

/* Tuning (benchmarks/gemv_kernel.c overrides these to compare; the library never changes them):
 *   gemv_streams: row streams per step, 1, 2, 4 or 8
 *   gemv_spread:  1 = streams start far apart (rows s·L + i, L = rows / streams),
 *                 0 = adjacent (rows i·streams + s: really one stream, read in row-sized pieces)
 * Measured (2 threads, weights from memory): 4 spread streams read 31–36 GB/s on every decode
 * shape, 8 spread about 1 GB/s less, adjacent rows little better than 1 stream (27–33);
 * software prefetch 512 bytes ahead of each stream gained nothing (±1 GB/s), so there is none. */
static int gemv_streams = 4;
static int gemv_spread = 1;

/* ---------------------------------------------------------------- portable */

/* y[0..n) (=|+=) Σ_s xs[s] · ws[s][0..n), S row pointers ws (each [n]), S scales xs. */
static void step_portable(int S, const float *const *ws, const float *xs, size_t n, float *y, int accumulate) {
    for (size_t j = 0; j < n; j++) {
        float v = accumulate ? y[j] : 0.0f;
        for (int s = 0; s < S; s++) v += xs[s] * ws[s][j];
        y[j] = v;
    }
}

/* graft_gemv_sum's columns j0..n: y[j] += parts[0][j] + parts[1][j] + ..., added in order. */
static void sum_portable(size_t j0, size_t n, float *y, const float *parts, size_t ldp, size_t count) {
    for (size_t j = j0; j < n; j++) {
        float v = y[j];
        for (size_t p = 0; p < count; p++) v += parts[p * ldp + j];
        y[j] = v;
    }
}

#if GRAFT_X86
/* ---------------------------------------------------------------- AVX2 + FMA */

#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

/* Same contract as step_portable with S a compile-time constant after inlining. Columns in
 * blocks of 32 (4 ymm accumulators, each a chain of S FMAs), then 8, then a scalar tail. */
AVX2_INLINE void step_avx2(const int S, const float *const *ws, const float *xs, size_t n, float *y,
                           int accumulate) {
    __m256 xv[8];
    for (int s = 0; s < S; s++) xv[s] = _mm256_set1_ps(xs[s]);
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 a0, a1, a2, a3;
        if (accumulate) {
            a0 = _mm256_loadu_ps(y + j); a1 = _mm256_loadu_ps(y + j + 8);
            a2 = _mm256_loadu_ps(y + j + 16); a3 = _mm256_loadu_ps(y + j + 24);
        } else {
            a0 = a1 = a2 = a3 = _mm256_setzero_ps();
        }
        for (int s = 0; s < S; s++) {
            const float *w = ws[s] + j;
            a0 = _mm256_fmadd_ps(xv[s], _mm256_loadu_ps(w), a0);
            a1 = _mm256_fmadd_ps(xv[s], _mm256_loadu_ps(w + 8), a1);
            a2 = _mm256_fmadd_ps(xv[s], _mm256_loadu_ps(w + 16), a2);
            a3 = _mm256_fmadd_ps(xv[s], _mm256_loadu_ps(w + 24), a3);
        }
        _mm256_storeu_ps(y + j, a0); _mm256_storeu_ps(y + j + 8, a1);
        _mm256_storeu_ps(y + j + 16, a2); _mm256_storeu_ps(y + j + 24, a3);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 a = accumulate ? _mm256_loadu_ps(y + j) : _mm256_setzero_ps();
        for (int s = 0; s < S; s++) a = _mm256_fmadd_ps(xv[s], _mm256_loadu_ps(ws[s] + j), a);
        _mm256_storeu_ps(y + j, a);
    }
    for (; j < n; j++) {
        float v = accumulate ? y[j] : 0.0f;
        for (int s = 0; s < S; s++) v = __builtin_fmaf(xs[s], ws[s][j], v);
        y[j] = v;
    }
}

__attribute__((target("avx2,fma"))) static void step_avx2_any(int S, const float *const *ws, const float *xs,
                                                              size_t n, float *y, int accumulate) {
    switch (S) {
    case 8: step_avx2(8, ws, xs, n, y, accumulate); break;
    case 4: step_avx2(4, ws, xs, n, y, accumulate); break;
    case 2: step_avx2(2, ws, xs, n, y, accumulate); break;
    default: step_avx2(1, ws, xs, n, y, accumulate); break;
    }
}

/* Vector sum for graft_gemv_sum: y[0..n) += Σ_p parts[p][0..n). */
__attribute__((target("avx2,fma"))) static void sum_avx2(size_t n, float *y, const float *parts, size_t ldp, size_t count) {
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(y + j);
        for (size_t p = 0; p < count; p++) v = _mm256_add_ps(v, _mm256_loadu_ps(parts + p * ldp + j));
        _mm256_storeu_ps(y + j, v);
    }
    sum_portable(j, n, y, parts, ldp, count);
}
#endif

/* ---------------------------------------------------------------- driver */

static int use_avx2(int path) {
#if GRAFT_X86
    /* AUTO follows the GEMM's choice (so GRAFT_GEMM_PATH=portable forces plain C here too);
     * AVX2 and AVX-512 both run AVX2 (no AVX-512 GEMV: the product is memory-bound and AVX2
     * already outruns memory) when the CPU has AVX2+FMA. */
    if (path == GRAFT_GEMM_AUTO) path = graft_gemm_resolved_path();
    if (path == GRAFT_GEMM_PORTABLE) return 0;
    return graft_gemm_path_supported(GRAFT_GEMM_AVX2);
#else
    (void)path;
    return 0;
#endif
}

static void step(int avx2, int S, const float *const *ws, const float *xs, size_t n, float *y, int accumulate) {
#if GRAFT_X86
    if (avx2) { step_avx2_any(S, ws, xs, n, y, accumulate); return; }
#endif
    (void)avx2;
    step_portable(S, ws, xs, n, y, accumulate);
}

void graft_gemv_rows(int path, size_t k, size_t n, const float *x, const float *w, size_t ldw, float *y,
                     int accumulate) {
    if (n == 0) return;
    if (k == 0) {
        if (!accumulate) memset(y, 0, n * sizeof(float));
        return;
    }
    int avx2 = use_avx2(path);
    int S = gemv_streams;
    while (S > 1 && (size_t)S > k) S >>= 1;
    size_t L = k / (size_t)S; /* steps over the STREAMS groups; rows S·L.. are left over */
    const float *ws[8];       /* [S] row pointers of one step */
    float xs[8];              /* [S] their x values */
    for (size_t i = 0; i < L; i++) {
        for (int s = 0; s < S; s++) {
            size_t r = gemv_spread ? (size_t)s * L + i : i * (size_t)S + (size_t)s;
            ws[s] = w + r * ldw;
            xs[s] = x[r];
        }
        step(avx2, S, ws, xs, n, y, accumulate || i > 0);
    }
    for (size_t r = (size_t)S * L; r < k; r++) {
        ws[0] = w + r * ldw;
        xs[0] = x[r];
        step(avx2, 1, ws, xs, n, y, accumulate || r > 0);
    }
}

void graft_gemv_sum(int path, size_t n, float *y, const float *parts, size_t ldp, size_t count) {
    if (count == 0 || n == 0) return;
#if GRAFT_X86
    if (use_avx2(path)) { sum_avx2(n, y, parts, ldp, count); return; }
#endif
    sum_portable(0, n, y, parts, ldp, count);
}
