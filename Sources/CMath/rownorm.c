/* rownorm.c: one row's LayerNormalization / RMS normalisation, optionally after a residual add
 * (see include/rownorm.h for the formulas and the contract).
 *
 * Why C: the Swift loops these replace compile for the package's baseline x86-64 target (SSE2,
 * four lanes) and summed with one accumulator chain per pass; MiniLM's 128 × 384 add + norm took
 * ~1.1 ns per element on one thread. Here the sums run in several 8-lane accumulators with AVX2
 * and the add is taken in the first pass. */
#include "rownorm.h"
#include "vmath.h"

#include <math.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GRAFT_HAVE_AVX2 1
#include <immintrin.h>
#else
#define GRAFT_HAVE_AVX2 0
#endif

/* A row's statistics: m0 the first-pass mean, dm its correction (both 0 for RMS), inv. */
typedef struct { float m0, dm, inv; } row_stats;

/* LayerNormalization's statistics from m0, d = Σ(x - m0) and d2 = Σ(x - m0)². */
static row_stats layer_stats(float m0, float d, float d2, size_t n, float epsilon) {
    const float fn = (float)n, var = d2 - d * d / fn;
    row_stats st = {m0, d / fn, 1.0f / sqrtf((var > 0.0f ? var : 0.0f) / fn + epsilon)};
    return st;
}

/* RMS statistics from sq = Σx². */
static row_stats rms_stats(float sq, size_t n, float epsilon) {
    row_stats st = {0.0f, 0.0f, 1.0f / sqrtf(sq / (float)n + epsilon)};
    return st;
}

static void write_stats(row_stats st, int rms, float *mean, float *inv) {
    if (mean) *mean = rms ? 0.0f : st.m0 + st.dm;
    if (inv) *inv = st.inv;
}

/* MARK: - Portable path */

static void row_scalar(const float *a, const float *b, float *s, float *y, size_t n, int rms, float epsilon,
                       const float *scale, size_t ss, const float *bias, size_t bs, float *mean, float *inv) {
    const float *x = b;
    if (a) {
        for (size_t j = 0; j < n; j++) s[j] = a[j] + b[j];
        x = s;
    }
    row_stats st;
    if (rms) {
        float sq = 0.0f;
        for (size_t j = 0; j < n; j++) sq += x[j] * x[j];
        st = rms_stats(sq, n, epsilon);
    } else {
        float sum = 0.0f, d = 0.0f, d2 = 0.0f;
        for (size_t j = 0; j < n; j++) sum += x[j];
        const float m0 = sum / (float)n;
        for (size_t j = 0; j < n; j++) {
            const float e = x[j] - m0;
            d += e;
            d2 += e * e;
        }
        st = layer_stats(m0, d, d2, n, epsilon);
    }
    write_stats(st, rms, mean, inv);
    for (size_t j = 0; j < n; j++) {
        const float sc = scale[j * ss];
        if (rms) y[j] = x[j] * st.inv * sc;
        else y[j] = ((x[j] - st.m0) - st.dm) * st.inv * sc + (bias ? bias[j * bs] : 0.0f);
    }
}

/* MARK: - AVX2+FMA path */

#if GRAFT_HAVE_AVX2
#include "vmath_avx2.h" /* AVX2, AVX2_INLINE, hsum8, tail_mask */

/* p[0..8), or its first rem lanes and zeros (tail). */
AVX2_INLINE __m256 load8(const float *p, int tail, __m256i tm) {
    return tail ? _mm256_maskload_ps(p, tm) : _mm256_loadu_ps(p);
}

/* 8 values of a parameter from element j at stride 1, or its one value (stride 0). */
AVX2_INLINE __m256 param8(const float *p, size_t stride, size_t j, int tail, __m256i tm) {
    return stride ? load8(p + j, tail, tm) : _mm256_set1_ps(p[0]);
}

/* One step of pass 1 at element j: x = a + b (stored to s) or b; acc + x (or + x², RMS). */
AVX2_INLINE __m256 first_step(const int rms, const float *a, const float *b, float *s, size_t j, int tail,
                              __m256i tm, __m256 acc) {
    __m256 x = load8(b + j, tail, tm); /* zeros past n: they add nothing */
    if (a) {
        x = _mm256_add_ps(load8(a + j, tail, tm), x);
        if (tail) _mm256_maskstore_ps(s + j, tm, x);
        else _mm256_storeu_ps(s + j, x);
    }
    return rms ? _mm256_fmadd_ps(x, x, acc) : _mm256_add_ps(acc, x);
}

/* Pass 1: Σx (LayerNormalization) or Σx² (RMS), four independent 8-lane accumulators. */
AVX2_INLINE float first_pass(const int rms, const float *a, const float *b, float *s, size_t n) {
    const size_t full = n & ~(size_t)7, rem = n - full;
    const __m256i tm = tail_mask(rem);
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    size_t j = 0;
    for (; j + 32 <= full; j += 32) {
        c0 = first_step(rms, a, b, s, j, 0, tm, c0);
        c1 = first_step(rms, a, b, s, j + 8, 0, tm, c1);
        c2 = first_step(rms, a, b, s, j + 16, 0, tm, c2);
        c3 = first_step(rms, a, b, s, j + 24, 0, tm, c3);
    }
    for (; j < full; j += 8) c0 = first_step(rms, a, b, s, j, 0, tm, c0);
    if (rem) c1 = first_step(rms, a, b, s, j, 1, tm, c1);
    return hsum8(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)));
}

/* Pass 2 (LayerNormalization): d = Σ(x - m0), d2 = Σ(x - m0)², two accumulators each; tail lanes
 * masked to 0. */
AVX2_INLINE row_stats deviation_pass(const float *x, size_t n, float m0, float epsilon) {
    const size_t full = n & ~(size_t)7, rem = n - full;
    const __m256 m0v = _mm256_set1_ps(m0);
    __m256 d0 = _mm256_setzero_ps(), d1 = d0, q0 = d0, q1 = d0;
    size_t j = 0;
    for (; j + 16 <= full; j += 16) {
        const __m256 e0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), m0v);
        const __m256 e1 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), m0v);
        d0 = _mm256_add_ps(d0, e0);
        d1 = _mm256_add_ps(d1, e1);
        q0 = _mm256_fmadd_ps(e0, e0, q0);
        q1 = _mm256_fmadd_ps(e1, e1, q1);
    }
    for (; j < full; j += 8) {
        const __m256 e = _mm256_sub_ps(_mm256_loadu_ps(x + j), m0v);
        d0 = _mm256_add_ps(d0, e);
        q0 = _mm256_fmadd_ps(e, e, q0);
    }
    if (rem) {
        const __m256i tm = tail_mask(rem);
        const __m256 e = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, tm), m0v), _mm256_castsi256_ps(tm));
        d1 = _mm256_add_ps(d1, e);
        q1 = _mm256_fmadd_ps(e, e, q1);
    }
    return layer_stats(m0, hsum8(_mm256_add_ps(d0, d1)), hsum8(_mm256_add_ps(q0, q1)), n, epsilon);
}

static AVX2 void row_avx2(const float *a, const float *b, float *s, float *y, size_t n, int rms, float epsilon,
                          const float *scale, size_t ss, const float *bias, size_t bs, float *mean, float *inv) {
    const float *x = a ? s : b;
    const row_stats st = rms ? rms_stats(first_pass(1, a, b, s, n), n, epsilon)
                             : deviation_pass(x, n, first_pass(0, a, b, s, n) / (float)n, epsilon);
    write_stats(st, rms, mean, inv);
    /* Pass 3: y, each operation rounded on its own (as on the portable path). */
    const size_t full = n & ~(size_t)7;
    const __m256i tm = tail_mask(n - full);
    const __m256 m0v = _mm256_set1_ps(st.m0), dmv = _mm256_set1_ps(st.dm), invv = _mm256_set1_ps(st.inv);
    for (size_t j = 0; j < n; j += 8) {
        const int tail = j >= full;
        __m256 v = load8(x + j, tail, tm);
        v = rms ? _mm256_mul_ps(v, invv) : _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(v, m0v), dmv), invv);
        v = _mm256_mul_ps(v, param8(scale, ss, j, tail, tm));
        if (!rms && bias) v = _mm256_add_ps(v, param8(bias, bs, j, tail, tm));
        if (tail) _mm256_maskstore_ps(y + j, tm, v);
        else _mm256_storeu_ps(y + j, v);
    }
}
#endif /* GRAFT_HAVE_AVX2 */

/* MARK: - Dispatch */

int vmath_add_norm_row_on(int path, const float *a, const float *b, float *s, float *y, size_t n, int rms,
                          float epsilon, const float *scale, size_t ss, const float *bias, size_t bs, float *mean,
                          float *inv) {
    if (path != GRAFT_VMATH_SCALAR && path != GRAFT_VMATH_AVX2) return -1;
    /* vmath_run with n = 0 does nothing and says whether the path runs on this CPU. */
    if (vmath_run(GRAFT_VMATH_OP_SOFTMAX_ROW, path, NULL, NULL, 0) != 0) return -1;
    if (n == 0) return 0; /* no row (the kernels never pass one) */
#if GRAFT_HAVE_AVX2
    if (path == GRAFT_VMATH_AVX2) {
        row_avx2(a, b, s, y, n, rms, epsilon, scale, ss, bias, bs, mean, inv);
        return 0;
    }
#endif
    row_scalar(a, b, s, y, n, rms, epsilon, scale, ss, bias, bs, mean, inv);
    return 0;
}

void vmath_add_norm_row(const float *a, const float *b, float *s, float *y, size_t n, int rms, float epsilon,
                        const float *scale, size_t ss, const float *bias, size_t bs, float *mean, float *inv) {
    (void)vmath_add_norm_row_on(vmath_path(), a, b, s, y, n, rms, epsilon, scale, ss, bias, bs, mean, inv);
}

void vmath_norm_row(const float *x, float *y, size_t n, int rms, float epsilon, const float *scale, size_t ss,
                    const float *bias, size_t bs, float *mean, float *inv) {
    (void)vmath_add_norm_row_on(vmath_path(), NULL, x, NULL, y, n, rms, epsilon, scale, ss, bias, bs, mean, inv);
}
