/* rownorm.h: one row's LayerNormalization or RMS normalisation, optionally after a residual add,
 * for GraftCore's normalisation kernels (Kernels/Normalization.swift, the graft:FusedAddNorm
 * kernel). Internal to Graft (not part of graft.h): hidden visibility, vmath_ prefix.
 *
 * LayerNormalization (rms = 0), a corrected two-pass mean and variance:
 *     m0 = Σx / n;  d = Σ(x - m0);  d2 = Σ(x - m0)²;  dm = d / n
 *     mean = m0 + dm;  inv = 1 / √(max(d2 - d²/n, 0) / n + ε)
 *     y[j] = ((x[j] - m0) - dm) · inv · scale[j·ss] + bias[j·bs]
 * (the second pass's sum of deviations repairs the rounding of the first mean, so rows with a
 * large offset keep their precision);
 * RMS (rms = 1):  inv = 1 / √(Σx² / n + ε);  mean = 0;  y[j] = x[j] · inv · scale[j·ss].
 * x, y: [n]; y may be x (every element is read before it is written). scale: [n] at stride
 * ss = 1, or one value (ss = 0); bias: the same with bs, or NULL for none (ignored for RMS).
 * mean, inv: where to write the row's statistics, or NULL.
 *
 * Paths (vmath.h's GRAFT_VMATH_*; GRAFT_VMATH=scalar forces the portable one): AVX2 sums in
 * 4 × 8 lanes with FMAs for the squares, the portable path in plain C loops. They agree to float
 * rounding, not bit for bit. The products in y are rounded one operation at a time (no FMA), in
 * the order written above, on both paths. */
#ifndef GRAFT_ROWNORM_H
#define GRAFT_ROWNORM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VMATH_ROWNORM_API __attribute__((visibility("hidden")))

/* The normalisation above of x into y, on vmath_path(). */
VMATH_ROWNORM_API void vmath_norm_row(const float *x, float *y, size_t n, int rms, float epsilon,
                                      const float *scale, size_t ss, const float *bias, size_t bs,
                                      float *mean, float *inv);

/* s[j] = a[j] + b[j] (written to s: [n], which may be a, b or y), then vmath_norm_row(s, y, ...);
 * the sum is taken in the pass that computes Σs. */
VMATH_ROWNORM_API void vmath_add_norm_row(const float *a, const float *b, float *s, float *y, size_t n, int rms,
                                          float epsilon, const float *scale, size_t ss, const float *bias,
                                          size_t bs, float *mean, float *inv);

/* Both on an explicit path (GRAFT_VMATH_SCALAR / _AVX2), for tests: 0, or -1 when the path is not
 * available on this CPU. a == NULL: no add (x = b). */
VMATH_ROWNORM_API int vmath_add_norm_row_on(int path, const float *a, const float *b, float *s, float *y, size_t n,
                                            int rms, float epsilon, const float *scale, size_t ss,
                                            const float *bias, size_t bs, float *mean, float *inv);

#ifdef __cplusplus
}
#endif

#endif
