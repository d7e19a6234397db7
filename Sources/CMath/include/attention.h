/* attention.h: the rows of one attention head for GraftCore's graft:FusedAttention kernel
 * (Kernels/FusedAttention.swift). Internal to Graft (not part of graft.h): hidden visibility and
 * the vmath_ prefix keep these out of libgraft's exported graft_* namespace.
 *
 * For query rows i < rows of one (batch, head):
 *     S[i, j] = Σ_t q[i·ldq + t] · k[j·ldk + t]                  (t < d, j < sk)
 *     P[i, :] = vmath_softmax_scaled_row(S[i, :], mask + i·mask_row_stride, mask_stride,
 *                                        scale, flags)            (mask NULL: none)
 *     y[i·ldy + e] = Σ_j P[i, j] · v[j·ldv + e]                   (e < dv)
 * q: rows × d at row stride ldq; k: sk × d at ldk; v: sk × dv at ldv; y: rows × dv at ldy,
 * written (not accumulated), and must not overlap q, k, v or the mask. Strides are in floats.
 * scratch: vmath_attention_scratch_floats(sk, d) floats, any alignment, contents on entry and
 * exit unspecified. sk == 0 gives y = 0 (the empty sum; the softmax of an empty row is not
 * taken). d == 0 gives all-zero scores.
 *
 * Paths (the GRAFT_VMATH_* of vmath.h, so GRAFT_VMATH=scalar forces the portable one):
 *  - AVX2+FMA: K's head is packed transposed into 16-key panels (zero beyond sk) once per call;
 *    then per group of 6 query rows a 6 × 16 register tile of scores per panel, the 6 softmax
 *    rows while they are in L1 (two passes: logits and max, then exp and sum; the 1/sum is
 *    applied to y's rows instead of to P), and P·V as 6 × 16 tiles of y over V's rows (masked
 *    loads and stores for a dv tail that is not a multiple of 8).
 *  - scalar: plain C loops the compiler vectorises (K's head transposed once, then one query row
 *    at a time), the softmax row on vmath's scalar path: the fallback, and the reference.
 * The two paths sum the products in different orders (the AVX2 one with FMAs), so they agree to
 * float rounding, not bit for bit. The softmax rounds the scale / mask operations as
 * vmath_softmax_scaled_row does and uses the same exp; the scalar path calls that function. */
#ifndef GRAFT_ATTENTION_H
#define GRAFT_ATTENTION_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMATH_ATTENTION_API __attribute__((visibility("hidden")))

/* Floats of scratch one call needs (either path): the packed K head and 6 score rows. */
VMATH_ATTENTION_API size_t vmath_attention_scratch_floats(size_t sk, size_t d);

/* On vmath_path() (the CPU's best, or scalar under GRAFT_VMATH=scalar). */
VMATH_ATTENTION_API void vmath_attention_rows(const float *q, size_t ldq, const float *k, size_t ldk, const float *v,
                                              size_t ldv, const float *mask, ptrdiff_t mask_row_stride,
                                              ptrdiff_t mask_stride, float scale, int flags, float *y, size_t ldy,
                                              size_t rows, size_t sk, size_t d, size_t dv, float *scratch);

/* The same on an explicit path (GRAFT_VMATH_SCALAR / _AVX2), for tests: 0, or -1 when the path
 * is not available on this CPU. */
VMATH_ATTENTION_API int vmath_attention_rows_on(int path, const float *q, size_t ldq, const float *k, size_t ldk,
                                                const float *v, size_t ldv, const float *mask,
                                                ptrdiff_t mask_row_stride, ptrdiff_t mask_stride, float scale,
                                                int flags, float *y, size_t ldy, size_t rows, size_t sk, size_t d,
                                                size_t dv, float *scratch);

#ifdef __cplusplus
}
#endif

#endif
