/* gelu_kernel.c: the exact GELU (vmath_gelu_erf, Sources/CMath/vmath.c) per element, and in the
 * product that carries it in the MiniLM encoder (FFN's first MatMul, 128 × 1536 × 384, the GELU
 * applied by PackedGemm.run to the thread's block of C after the product), one thread.
 * Not a test; figures in docs/PERFORMANCE.md ("GELU (erf form)").
 *
 * Build and run from the repository root (nothing is written into it):
 *   clang -O2 -I Sources/CMath/include -I Sources/CKernels/include benchmarks/gelu_kernel.c \
 *     Sources/CMath/vmath.c Sources/CMath/fused.c Sources/CKernels/gemm.c -lm -o /tmp/gelu_kernel
 *   /tmp/gelu_kernel
 * It uses only vmath.h and graft_kernels.h, so building it against another checkout's Sources
 * (e.g. the commit before a change) gives that checkout's figures for comparison.
 *
 * Timing: thread CPU time, minimum over many short repetitions (the machine may be shared with
 * other jobs; the minimum is the least disturbed run). Printed:
 *   - ns per element of GELU (AVX2 path and the scalar libm path), erf and GELU-tanh, on
 *     x uniform in [-4, 4), n = 4096 (in L1) and n = 196,608 (one encoder layer's FFN
 *     activation, 768 KiB in and out, beyond L2);
 *   - the product alone and the product followed by GELU over C (the weights rotated through
 *     48 MB of copies so that they come from memory, as in a model run), and the difference. */
#include "graft_kernels.h"
#include "vmath.h"

#include <stdio.h>
#include <stdlib.h>
#include "harness.h" /* seconds, compare_doubles */

static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)rand() / (float)RAND_MAX; }

/* Minimum time of one call of op on path over `rounds` timed blocks of `inner` calls. */
static double per_element(int op, int path, const float *x, float *y, size_t n, int inner, int rounds) {
    double best = 1e9;
    for (int r = 0; r < rounds; r++) {
        double t = seconds(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < inner; i++) vmath_run(op, path, x, y, n);
        t = (seconds(CLOCK_THREAD_CPUTIME_ID) - t) / inner;
        if (t < best) best = t;
    }
    return best / (double)n * 1e9;
}

/* As per_element for vmath_gelu_tanh (no vmath_run op code; it runs on the active path). */
static double tanh_per_element(const float *x, float *y, size_t n, int inner, int rounds) {
    double best = 1e9;
    for (int r = 0; r < rounds; r++) {
        double t = seconds(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < inner; i++) vmath_gelu_tanh(x, y, n);
        t = (seconds(CLOCK_THREAD_CPUTIME_ID) - t) / inner;
        if (t < best) best = t;
    }
    return best / (double)n * 1e9;
}

int main(void) {
    enum { MAX_N = 196608 };
    float *x = aligned_alloc(64, MAX_N * sizeof(float)), *y = aligned_alloc(64, MAX_N * sizeof(float));
    for (size_t i = 0; i < MAX_N; i++) x[i] = uniform(-4, 4);
    printf("vmath path: %s\n", vmath_path() == GRAFT_VMATH_AVX2 ? "avx2" : "scalar");
    const size_t sizes[2] = {4096, MAX_N};
    for (int s = 0; s < 2; s++) {
        size_t n = sizes[s];
        int inner = n <= 4096 ? 20 : 1, rounds = n <= 4096 ? 2000 : 300;
        printf("n = %6zu  gelu avx2 %.3f ns/elem  gelu scalar %.3f  erf avx2 %.3f  gelu-tanh %.3f\n", n,
               per_element(GRAFT_VMATH_OP_GELU_ERF, GRAFT_VMATH_AVX2, x, y, n, inner, rounds),
               per_element(GRAFT_VMATH_OP_GELU_ERF, GRAFT_VMATH_SCALAR, x, y, n, inner, rounds / 10),
               per_element(GRAFT_VMATH_OP_ERF, GRAFT_VMATH_AVX2, x, y, n, inner, rounds),
               tanh_per_element(x, y, n, inner, rounds));
    }

    /* FFN1 of one encoder layer: A [M × K] (hidden states), W [K × N] packed, bias [N], C [M × N]. */
    const size_t M = 128, N = 1536, K = 384, panels = (N + GRAFT_GEMM_NR - 1) / GRAFT_GEMM_NR;
    int copies = (int)(48e6 / (4.0 * K * N)) + 1;
    float *a = aligned_alloc(64, M * K * sizeof(float)), *c = aligned_alloc(64, M * N * sizeof(float));
    float *bias = malloc(N * sizeof(float)), *b = malloc(K * N * sizeof(float));
    float **w = malloc(copies * sizeof(float *));
    for (size_t i = 0; i < M * K; i++) a[i] = uniform(-0.25f, 0.25f);
    for (size_t j = 0; j < N; j++) bias[j] = uniform(-0.05f, 0.05f);
    for (int cp = 0; cp < copies; cp++) {
        for (size_t i = 0; i < K * N; i++) b[i] = uniform(-0.5f, 0.5f);
        w[cp] = aligned_alloc(64, (graft_gemm_packed_count(K, N) + 15) / 16 * 16 * sizeof(float));
        graft_gemm_pack_b_panels(b, K, N, 0, w[cp], 0, panels);
    }
    double best[2] = {1e9, 1e9};
    int reps = 2 * copies;
    for (int round = 0; round < 15; round++) {
        for (int v = 0; v < 2; v++) { /* alternate: product alone, product then GELU */
            double t = seconds(CLOCK_THREAD_CPUTIME_ID);
            for (int r = 0; r < reps; r++) {
                graft_gemm_packed(GRAFT_GEMM_AUTO, M, N, K, a, K, w[r % copies], bias, c, N, 0, M, 0, panels);
                if (v == 1) vmath_gelu_erf(c, c, M * N);
            }
            t = (seconds(CLOCK_THREAD_CPUTIME_ID) - t) / reps;
            if (t < best[v]) best[v] = t;
        }
    }
    printf("FFN1 %zu x %zu x %zu: product %.3f ms, product + GELU %.3f ms, GELU %.3f ms (%.2f ns/elem)\n", M, N, K,
           best[0] * 1e3, best[1] * 1e3, (best[1] - best[0]) * 1e3, (best[1] - best[0]) / (double)(M * N) * 1e9);
    return 0;
}
