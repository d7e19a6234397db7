/* attention_kernel.c: FusedAttention's head kernel (Sources/CMath/attention.c) next to the method
 * it replaced — per head a strided cblas_sgemm for Q_h·K_hᵀ, vmath_softmax_scaled_row per score
 * row, a strided cblas_sgemm for P·V_h — on the same inputs, in one process, one thread.
 * Not a test; figures in docs/PERFORMANCE.md ("FusedAttention kernel").
 *
 * Build and run from the repository root (nothing is written into it):
 *   clang -O2 -I Sources/CMath/include -I Sources/CMath $(pkg-config --cflags openblas) \
 *     benchmarks/attention_kernel.c Sources/CMath/attention.c Sources/CMath/vmath.c Sources/CMath/fused.c \
 *     $(pkg-config --libs openblas) -lm -o /tmp/attention_kernel
 *   OPENBLAS_NUM_THREADS=1 /tmp/attention_kernel [reps]
 *
 * One "layer" is MiniLM's attention for one sequence: H = 12 heads of D = Dv = 32, Q, K, V
 * [S, H·D] (row stride H·D, as Graft reads the projections), a padding mask [S] (one row for every
 * query row), scale 1/√D. The two methods alternate repetition by repetition (the machine may be
 * shared); min and median per layer are printed with their ratio and the largest |Δ| of the
 * outputs (the products sum in different orders: float rounding only). */
#include "attention.h"
#include "vmath.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "harness.h" /* seconds, compare_doubles */

enum { H = 12, D = 32 };

/* The previous FusedAttention: s [S][S] scratch. */
static void layer_blas(int s_len, const float *q, const float *k, const float *v, const float *mask, float scale,
                       float *y, float *s) {
    const int ld = H * D;
    for (int h = 0; h < H; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s_len, s_len, D, 1, q + h * D, ld, k + h * D, ld, 0, s,
                    s_len);
        for (int i = 0; i < s_len; i++) vmath_softmax_scaled_row(s + i * s_len, mask, 1, scale, 0, s + i * s_len, s_len);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s_len, D, s_len, 1, s, s_len, v + h * D, ld, 0,
                    y + h * D, ld);
    }
}

static void layer_graft(int s_len, const float *q, const float *k, const float *v, const float *mask, float scale,
                        float *y, float *scratch) {
    const size_t ld = H * D;
    for (int h = 0; h < H; h++)
        vmath_attention_rows(q + h * D, ld, k + h * D, ld, v + h * D, ld, mask, 0, 1, scale, 0, y + h * D, ld,
                             (size_t)s_len, (size_t)s_len, D, D, scratch);
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 200;
    const int lens[] = {16, 128, 512};
    printf("| S | OpenBLAS + softmax rows: min / median (µs per layer) | attention.c: min / median | ratio (median) | max |Δ| |\n");
    printf("|---:|---|---|---:|---:|\n");
    srand(1);
    for (size_t c = 0; c < sizeof lens / sizeof lens[0]; c++) {
        const int n = lens[c];
        const size_t len = (size_t)n * H * D;
        float *q = malloc(len * 4), *k = malloc(len * 4), *v = malloc(len * 4), *ya = malloc(len * 4),
              *yb = malloc(len * 4), *mask = malloc((size_t)n * 4), *s = malloc((size_t)n * n * 4),
              *scratch = malloc(vmath_attention_scratch_floats((size_t)n, D) * 4);
        for (size_t i = 0; i < len; i++) {
            q[i] = 6.0f * (float)((double)rand() / RAND_MAX) - 3;
            k[i] = 6.0f * (float)((double)rand() / RAND_MAX) - 3;
            v[i] = 6.0f * (float)((double)rand() / RAND_MAX) - 3;
        }
        for (int j = 0; j < n; j++) mask[j] = j < n - n / 8 ? 0.0f : -3.4028234663852886e38f; /* last 1/8 padding */
        const float scale = 1.0f / sqrtf((float)D);
        const int r = reps * 128 / n > 5 ? reps * 128 / n : 5; /* shorter sequences: more repetitions */
        double *ta = malloc(r * sizeof(double)), *tb = malloc(r * sizeof(double));
        for (int i = 0; i < r; i++) {
            double t = seconds(CLOCK_MONOTONIC);
            layer_blas(n, q, k, v, mask, scale, ya, s);
            ta[i] = seconds(CLOCK_MONOTONIC) - t;
            t = seconds(CLOCK_MONOTONIC);
            layer_graft(n, q, k, v, mask, scale, yb, scratch);
            tb[i] = seconds(CLOCK_MONOTONIC) - t;
        }
        double diff = 0;
        for (size_t i = 0; i < len; i++) diff = fmax(diff, fabs((double)ya[i] - yb[i]));
        qsort(ta, r, sizeof(double), compare_doubles);
        qsort(tb, r, sizeof(double), compare_doubles);
        printf("| %d | %.1f / %.1f | %.1f / %.1f | %.2f | %.1e |\n", n, ta[0] * 1e6, ta[r / 2] * 1e6, tb[0] * 1e6,
               tb[r / 2] * 1e6, tb[r / 2] / ta[r / 2], diff);
        free(q), free(k), free(v), free(ya), free(yb), free(mask), free(s), free(scratch), free(ta), free(tb);
    }
    return 0;
}
