/* graft_kernels.h — Graft's own float32 GEMM for weight products (C11).
 *
 * C[M × N] = A[M × K] · B[K × N] (+ bias[N]) where B is a weight known when the model is
 * planned. B is packed once into column panels of GRAFT_GEMM_NR floats with K contiguous per
 * panel row (layout below); A and C are row-major with leading dimensions lda and ldc.
 *
 * Packed layout (floats, 64-byte aligned base):
 *     packed[p][k][j] = B[k][p*NR + j]   for p < ceil(N/NR), k < K, j < NR
 *   i.e. panel p starts at packed + p*K*NR; row k of panel p is NR contiguous floats;
 *   columns p*NR + j >= N are zero.
 *
 * Micro-kernels (chosen once at run time, or forced per call for tests):
 *   AVX-512F  12 rows × 32 columns (24 zmm accumulators), small-M variants for 1–2 rows;
 *   AVX2+FMA   6 rows × 16 columns (12 ymm accumulators, half a panel), 1–2 rows × 32;
 *   portable   4 rows × 32 columns in plain C.
 * Every path reads the same packed layout, so one packing serves all of them.
 */
#ifndef GRAFT_KERNELS_H
#define GRAFT_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Columns per packed panel. */
/* Internal to libgraft: hidden, so the library exports only the API of graft.h (an ABI test
 * checks the export list). */
#define GRAFT_KERNEL_API __attribute__((visibility("hidden")))

#define GRAFT_GEMM_NR 32

/* Kernel paths. AUTO: the best the CPU supports, or the one named by the environment
 * variable GRAFT_GEMM_PATH ("portable", "avx2", "avx512"; read once) when that is supported. */
enum {
    GRAFT_GEMM_AUTO = 0,
    GRAFT_GEMM_PORTABLE = 1,
    GRAFT_GEMM_AVX2 = 2,
    GRAFT_GEMM_AVX512 = 3
};

/* 1 when `path` can run on this CPU (AUTO and PORTABLE always can). */
GRAFT_KERNEL_API int graft_gemm_path_supported(int path);

/* The path AUTO resolves to (never AUTO). */
GRAFT_KERNEL_API int graft_gemm_resolved_path(void);

/* Floats needed by the packed copy of a K × N weight: ceil(N/NR) * K * NR. */
GRAFT_KERNEL_API size_t graft_gemm_packed_count(size_t k, size_t n);

/* Packs panels [panel_begin, panel_end) of B into `packed` (graft_gemm_packed_count(k, n)
 * floats for the whole of B, 64-byte aligned); disjoint ranges may be packed on different
 * threads, and all ceil(N/NR) panels make the packed B that graft_gemm_packed reads.
 * transposed == 0: B is [K × N] row-major (ONNX MatMul weight, [in, out]).
 * transposed != 0: B is [N × K] row-major (Gemm with transB = 1, [out, in]). */
GRAFT_KERNEL_API void graft_gemm_pack_b_panels(const float *b, size_t k, size_t n, int transposed, float *packed,
                                               size_t panel_begin, size_t panel_end);

/* C[rows, panels] = A[rows, :] · Bpacked[:, panels] (+ bias), for rows in
 * [row_begin, row_end) of M and column panels in [panel_begin, panel_end) of ceil(N/NR):
 * the caller splits either range across threads (the written parts of C are disjoint).
 *   a:      [M × K] row-major, row stride lda (>= K)
 *   packed: every panel of graft_gemm_pack_b_panels' output for this K and N
 *   bias:   [N] or NULL
 *   c:      [M × N] row-major, row stride ldc (>= N); overwritten (not accumulated)
 * k == 0 writes bias (or zeros). path: GRAFT_GEMM_* (an unsupported path runs AUTO). */
GRAFT_KERNEL_API void graft_gemm_packed(int path, size_t m, size_t n, size_t k,
                       const float *a, size_t lda, const float *packed, const float *bias,
                       float *c, size_t ldc,
                       size_t row_begin, size_t row_end, size_t panel_begin, size_t panel_end);

/* ---- One-row products (decode), Sources/CKernels/gemv.c ----
 * y[1 × N] = x[1 × K] · W[K × N] with W row-major and read where it is (no packing, no copy),
 * for one new token's weight products. The caller splits K across threads: each thread runs
 * graft_gemv_rows on its contiguous block of W's rows into its own partial y, and
 * graft_gemv_sum adds the partials into the first.
 * path: GRAFT_GEMM_PORTABLE forces plain C; any other value runs AVX2+FMA when the CPU has it
 * (there is no AVX-512 variant: the product is memory-bound). */

/* y[0..n) = (accumulate ? y[0..n) : 0) + Σ_{i<k} x[i] · w[i·ldw + j]   for j < n
 *   x: [k]
 *   w: [k × ldw] row-major, the first n floats of each row used (ldw >= n)
 *   y: [n]; when accumulate == 0 its old contents are never read (may be garbage or NaN)
 * k == 0 writes zeros (accumulate == 0) or leaves y alone. */
GRAFT_KERNEL_API void graft_gemv_rows(int path, size_t k, size_t n, const float *x, const float *w, size_t ldw,
                                      float *y, int accumulate);

/* y[0..n) += Σ_{p<count} parts[p·ldp + j]   for j < n, partials added in order p = 0, 1, ...
 *   y:     [n]
 *   parts: [count × ldp] row-major (ldp >= n) */
GRAFT_KERNEL_API void graft_gemv_sum(int path, size_t n, float *y, const float *parts, size_t ldp, size_t count);

#ifdef __cplusplus
}
#endif

#endif
