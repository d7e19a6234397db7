/* Vectorised exp / erf and fused GELU, sigmoid, softmax row (see include/vmath.h).
 *
 * Two paths:
 *  - scalar: one libm call per element (expf, erff; GELU through double erfc), the same formulas
 *    GraftCore's Swift kernels used before; the reference and the fallback on CPUs without
 *    AVX2+FMA.
 *  - AVX2+FMA: 8 floats per step, compiled with __attribute__((target("avx2,fma"))) so the rest
 *    of the package keeps the baseline x86-64 target; chosen at run time.
 *
 * Approximations of the AVX2 path (coefficients: Sources/CMath/fit_coefficients.py, our own
 * weighted minimax fits with numpy, rounded to float):
 *  - exp(x): x is clamped to [-104, 89] (outside, the float result is already 0 or +inf), then
 *    k = round(x / ln2), r = x - k·ln2 with ln2 split in two (Cody–Waite, each step one FMA),
 *    |r| <= ln2/2, e^r = 1 + r + r²·P(r) with P of degree 4 (relative error 3e-9 before float
 *    rounding), and the result is scaled by 2^k as 2^(k/2)·2^(k-k/2) so that both factors are
 *    normal floats: overflow to +inf and gradual underflow to denormals / 0 happen in the last
 *    multiplication, rounded once. NaN propagates through the arithmetic.
 *  - erf(x) on a = |x|, sign restored at the end (so erf(-0) = -0):
 *      a < 1:  a·A(a²), A of degree 6 in a² (absolute error 8e-10 before float evaluation),
 *              its constant 2/√π as a float hi + lo pair so that a·2/√π is not off by an ulp;
 *      a >= 1: 1 - erfc(a), erfc(a) = exp(-a²)·B(min(a, 4) - 2.5), B of degree 8 (absolute
 *              error 2.4e-9 on [1, 4]); past 4, erfc < 1.6e-8 is below half an ulp of 1, so
 *              erf rounds to exactly ±1 (and ±inf gives ±1 through exp(-inf) = 0).
 *  - GELU(x) = x·Φ(x) needs only h = ½·erfc(|x|/√2) = exp(-x²/2)·R(|x|) for both signs
 *    (Φ = h for x < 0, 1 - h for x >= 0), R = ½·erfcx(|x|/√2) a rational function of degree
 *    (4, 5) on [0, 14.5]; exp(-x²/2) with x² split exactly and no range clamping beyond
 *    |x| <= 14.5. Details and the operation count at v_gelu_erf. ~30 vector operations per 8
 *    floats instead of ~60 (erf polynomial, erfc polynomial, v_exp and three blends before):
 *    0.73 instead of 1.35 ns per element on the machine of docs/PERFORMANCE.md.
 *    Errors against the exact GELU (double erfc), over every float in [-13.04, 20] (below
 *    -13.04 the result is a denormal; above 5.7 it is x):
 *                                       before (erf + erfc blend)    now
 *      |y - ref| / max(1, |x|)                 1.13e-7                  1.17e-7
 *      relative, x > 0                         1.3e-7                   3.0e-7
 *      relative, x in (-5.66, 0)               0.075 (B was fitted      5.1e-7
 *                                              for absolute error)
 *      relative, x in [-13.04, -5.66]          up to 1.42 (erfc's       5.1e-7
 *                                              argument clamped at 4)
 *      x in [-14.4, -13.04] (denormal result)  up to 1.2e7 × 2^-149     9 × 2^-149
 *                                              (sweep of 2e6 points)
 *    The scalar path (double erfc rounded to float) is within 6e-8 relative everywhere (it was
 *    0.5·x·(1 + erff(x/√2)), which cancels to 0 below x ≈ -5.9).
 * Measured errors (Tests/GraftCoreTests/VectorMathTests.swift): see the tolerances there.
 */
#include "vmath.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GRAFT_HAVE_AVX2 1
#include <immintrin.h>
#else
#define GRAFT_HAVE_AVX2 0
#endif

/* MARK: - Scalar path (libm) */

static void scalar_exp(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

static void scalar_erf(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = erff(x[i]);
}

/* 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(-x/√2), in double: erfc keeps the x < 0 tail accurate in
 * relative terms (1 + erff(x/√2) cancels to 0 below x ≈ -5.9), and double makes the result the
 * float rounding of the exact GELU up to ~1 ulp. -inf gives -inf·0 = NaN, as the formula. */
static void scalar_gelu_erf(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
    }
}

/* e = exp(-|x|) never overflows: 1/(1+e) for x >= 0, e/(1+e) for x < 0 (so x < -88.7 gives
 * the denormal / small result instead of 1/(1+inf) = 0). */
static void scalar_sigmoid(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], e = expf(-fabsf(v));
        y[i] = (v >= 0.0f ? 1.0f : e) / (1.0f + e);
    }
}

/* Same algorithm as ReductionKernels.softmaxRow (stride 1, not log). */
static void scalar_softmax_row(const float *x, float *y, size_t n) {
    float m = -INFINITY;
    for (size_t j = 0; j < n; j++) if (x[j] > m) m = x[j];
    float s = 0.0f;
    for (size_t j = 0; j < n; j++) {
        float e = expf(x[j] - m);
        y[j] = e;
        s += e;
    }
    float inv = 1.0f / s;
    for (size_t j = 0; j < n; j++) y[j] *= inv;
}

/* MARK: - AVX2 + FMA path */

#if GRAFT_HAVE_AVX2
#include "vmath_avx2.h" /* AVX2, AVX2_INLINE, v_exp, hmax8, hsum8, tail_mask */

/* erf(a) = a (A0 + A1 u + ... + A6 u^6), u = a^2, a < 1; A0 = 2/sqrt(pi) = ERF_A0_HI + ERF_A0_LO. */
#define ERF_A0_HI 1.128379226e+00f
#define ERF_A0_LO -5.863538277e-08f
static const float ERF_A[7] = {
    0.0f /* A0: hi + lo above */, -3.761262298e-01f, 1.128353998e-01f, -2.685184777e-02f,
    5.184623413e-03f, -7.978219073e-04f, 7.750273653e-05f,
};
/* erfc(a) = exp(-a^2) (B0 + B1 t + ... + B8 t^8), t = min(a, 4) - 2.5, a >= 1. */
static const float ERFC_B[9] = {
    2.108076066e-01f, -7.434218377e-02f, 2.491462417e-02f, -8.132264018e-03f,
    2.302492037e-03f, -6.611178396e-04f, 5.433289916e-04f, 2.250675170e-04f,
    1.068440106e-04f,
};

/* For a = |x| (a >= 0 or NaN): *erf_a = erf(a); *erfc_a = erfc(a) where a >= 1 (unused below). */
AVX2_INLINE void v_erf_parts(__m256 a, __m256 *erf_small, __m256 *erfc_big, __m256 *big) {
    __m256 u = _mm256_mul_ps(a, a);
    __m256 q = _mm256_set1_ps(ERF_A[6]);
    for (int i = 5; i >= 1; i--) q = _mm256_fmadd_ps(q, u, _mm256_set1_ps(ERF_A[i]));
    /* a·A0_HI + a·(A0_LO + u·Q(u)): the leading product is exact inside the FMA. */
    __m256 lo = _mm256_fmadd_ps(q, u, _mm256_set1_ps(ERF_A0_LO));
    *erf_small = _mm256_fmadd_ps(a, _mm256_set1_ps(ERF_A0_HI), _mm256_mul_ps(a, lo));
    __m256 t = _mm256_sub_ps(_mm256_min_ps(_mm256_set1_ps(4.0f), a), _mm256_set1_ps(2.5f));
    __m256 g = _mm256_set1_ps(ERFC_B[8]);
    for (int i = 7; i >= 0; i--) g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(ERFC_B[i]));
    *erfc_big = _mm256_mul_ps(v_exp(_mm256_sub_ps(_mm256_setzero_ps(), u)), g);
    *big = _mm256_cmp_ps(a, _mm256_set1_ps(1.0f), _CMP_GE_OQ); /* false for NaN */
}

AVX2_INLINE __m256 v_erf(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a = _mm256_andnot_ps(sign, x);
    __m256 es, ecb, big;
    v_erf_parts(a, &es, &ecb, &big);
    __m256 e = _mm256_blendv_ps(es, _mm256_sub_ps(_mm256_set1_ps(1.0f), ecb), big);
    return _mm256_or_ps(e, _mm256_and_ps(x, sign));
}

/* GELU(x) = x·Φ(x) with Φ(x) = 1 - h for x >= 0 and h for x < 0, where
 *     h = ½·erfc(y/√2) = exp(-y²/2) · R(y),   y = |x|,   R(y) = ½·erfcx(y/√2) = P(y) / Q(y),
 * P of degree 4 and Q of degree 5 (Q0 = 1), all coefficients positive: a relative minimax fit on
 * [0, GELU_YMAX] (5.9e-9 before rounding to float, 2.4e-8 after). One erfc-shaped evaluation for
 * both signs, no erf polynomial and no blend of two approximations. Evaluated as
 *   - y clamped to GELU_YMAX = 14.5 (NaN passes): past it h < 2^-150 rounds to 0, so x·Φ is x
 *     for x > 0 and ±0 for x < 0 (and -inf gives -inf·0 = NaN, like the formula and PyTorch);
 *   - exp(-y²/2) = 2^k·e^r with y² split exactly (s + slo, one FMA) so that the relative error
 *     stays small in the tail: k = round(-s/(2 ln2)) through the 1.5·2^23 rounding constant, whose
 *     low bits are k + 191 so that a shift makes 2^(k+64) (normal down to k = -152) directly;
 *     q = s + 2k·ln2 + slo = -2r, |q| <= ln2, e^r = F(q) of degree 5 (F0 = 1, relative error 9e-8)
 *     in the Estrin form (a shorter dependency chain than Horner's, which measured slower:
 *     the kernel is bound by its chain's latency as much as by the FMA pipes);
 *   - P's coefficients carry a factor 2^-64 so that h = (F·2^(k+64))·(P/Q) rounds once, also
 *     where h is a denormal (x down to -14.4).
 * Coefficients: fit_coefficients.py (P, Q, F). */
#define GELU_YMAX 14.5f
static const float GELU_P[5] = {
    5.000000000e-01f, 4.382957816e-01f, 1.832355857e-01f, 4.063333198e-02f, 4.116313066e-03f,
};
static const float GELU_Q[6] = {
    1.000000000e+00f, 1.674476504e+00f, 1.202505350e+00f, 4.694717526e-01f, 1.018591076e-01f,
    1.031794678e-02f,
};
static const float GELU_F[6] = {
    1.000000000e+00f, -4.999998510e-01f, 1.249978617e-01f, -2.083455957e-02f, 2.618658124e-03f,
    -2.590574150e-04f,
};

AVX2_INLINE __m256 v_gelu_erf(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 y = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    y = _mm256_min_ps(_mm256_set1_ps(GELU_YMAX), y); /* NaN second: NaN passes */
    /* y² = s + slo exactly. */
    __m256 s = _mm256_mul_ps(y, y);
    __m256 slo = _mm256_fmsub_ps(y, y, s);
    /* m = 1.5·2^23 + 191 + k (k = round(-s·log2(e)/2) in [-152, 0]); kf = k as a float. */
    const __m256 magic = _mm256_set1_ps(12582912.0f + 191.0f);
    __m256 m = _mm256_fmadd_ps(s, _mm256_set1_ps(-0.72134752044448170368f), magic);
    __m256 kf = _mm256_sub_ps(m, magic);
    /* q = y² + 2k·ln2 (2·ln2 = 2·LN2_HI + 2·LN2_LO as in v_exp); -q/2 = r. */
    __m256 q = _mm256_fmadd_ps(kf, _mm256_set1_ps(2.0f * 0.693147182464599609375f), s);
    q = _mm256_add_ps(q, _mm256_fmadd_ps(kf, _mm256_set1_ps(2.0f * -1.904654299957768e-09f), slo));
    /* e^r = F(q) = (F0 + F1 q + F2 q²) + q³·(F3 + F4 q + F5 q²). */
    __m256 q2 = _mm256_mul_ps(q, q), q3 = _mm256_mul_ps(q2, q);
    __m256 lo = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(GELU_F[2]), q, _mm256_set1_ps(GELU_F[1])), q,
                                _mm256_set1_ps(GELU_F[0]));
    __m256 hi = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(GELU_F[5]), q, _mm256_set1_ps(GELU_F[4])), q,
                                _mm256_set1_ps(GELU_F[3]));
    __m256 e = _mm256_fmadd_ps(hi, q3, lo);
    /* 2^(k+64): the low bits of m shifted into the exponent field. */
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(m), 23));
    /* R·2^-64 = P(y)·2^-64 / Q(y) (the 2^-64 is exact in each coefficient). */
    __m256 p = _mm256_set1_ps(GELU_P[4] * 0x1p-64f);
    for (int i = 3; i >= 0; i--) p = _mm256_fmadd_ps(p, y, _mm256_set1_ps(GELU_P[i] * 0x1p-64f));
    __m256 qq = _mm256_set1_ps(GELU_Q[5]);
    for (int i = 4; i >= 0; i--) qq = _mm256_fmadd_ps(qq, y, _mm256_set1_ps(GELU_Q[i]));
    __m256 h = _mm256_mul_ps(_mm256_mul_ps(e, scale), _mm256_div_ps(p, qq));
    /* Φ: h where x's sign bit is set (x < 0, -0, negative NaN), else 1 - h. */
    __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(one, h), h, x);
    return _mm256_mul_ps(x, phi);
}

/* As scalar_sigmoid: e = exp(-|x|), (x >= 0 ? 1 : e) / (1 + e). NaN: e is NaN, so is y. */
AVX2_INLINE __m256 v_sigmoid(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = v_exp(_mm256_or_ps(x, _mm256_set1_ps(-0.0f)));
    __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
    return _mm256_div_ps(num, _mm256_add_ps(one, e));
}

/* Elementwise map: full vectors, then one masked vector (masked-off lanes read 0, not memory). */
#define DEFINE_AVX2_MAP(name, fn)                                                   \
    static AVX2 void name(const float *x, float *y, size_t n) {                     \
        size_t i = 0;                                                               \
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, fn(_mm256_loadu_ps(x + i))); \
        if (i < n) {                                                                \
            __m256i m = tail_mask(n - i);                                           \
            _mm256_maskstore_ps(y + i, m, fn(_mm256_maskload_ps(x + i, m)));        \
        }                                                                           \
    }

DEFINE_AVX2_MAP(avx2_exp, v_exp)
DEFINE_AVX2_MAP(avx2_erf, v_erf)
DEFINE_AVX2_MAP(avx2_sigmoid, v_sigmoid)

/* As DEFINE_AVX2_MAP, two vectors per step: GELU's evaluation is one long dependency chain per
 * vector, and two independent chains side by side keep both FMA pipes busier (~8% measured). */
static AVX2 void avx2_gelu_erf(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        _mm256_storeu_ps(y + i, v_gelu_erf(a));
        _mm256_storeu_ps(y + i + 8, v_gelu_erf(b));
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, v_gelu_erf(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, m, v_gelu_erf(_mm256_maskload_ps(x + i, m)));
    }
}

static AVX2 void avx2_softmax_row(const float *x, float *y, size_t n) {
    if (n == 0) return;
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    size_t full = n & ~(size_t)7, rem = n - full;
    __m256i mask = tail_mask(rem ? rem : 1);
    /* Max, NaN ignored like `if v > m`: max_ps(v, acc) returns acc when v is NaN. */
    __m256 vm = ninf;
    for (size_t i = 0; i < full; i += 8) vm = _mm256_max_ps(_mm256_loadu_ps(x + i), vm);
    if (rem) {
        __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + full, mask), _mm256_castsi256_ps(mask));
        vm = _mm256_max_ps(v, vm);
    }
    __m256 m = _mm256_set1_ps(hmax8(vm));
    /* exp(x - m), stored and summed. An all -inf row gives -inf - -inf = NaN, as in Swift. */
    __m256 vs = _mm256_setzero_ps();
    for (size_t i = 0; i < full; i += 8) {
        __m256 e = v_exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(y + i, e);
        vs = _mm256_add_ps(vs, e);
    }
    if (rem) {
        __m256 e = v_exp_nonpositive(_mm256_sub_ps(_mm256_maskload_ps(x + full, mask), m));
        _mm256_maskstore_ps(y + full, mask, e);
        vs = _mm256_add_ps(vs, _mm256_and_ps(e, _mm256_castsi256_ps(mask)));
    }
    __m256 inv = _mm256_set1_ps(1.0f / hsum8(vs));
    for (size_t i = 0; i < full; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    if (rem) _mm256_maskstore_ps(y + full, mask, _mm256_mul_ps(_mm256_maskload_ps(y + full, mask), inv));
}
#endif /* GRAFT_HAVE_AVX2 */

/* MARK: - Dispatch */

typedef void (*vmath_fn)(const float *, float *, size_t);

static const vmath_fn scalar_table[5] = {
    scalar_exp, scalar_erf, scalar_gelu_erf, scalar_sigmoid, scalar_softmax_row,
};
#if GRAFT_HAVE_AVX2
static const vmath_fn avx2_table[5] = {
    avx2_exp, avx2_erf, avx2_gelu_erf, avx2_sigmoid, avx2_softmax_row,
};
#endif

static int avx2_available(void) {
#if GRAFT_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* -1 until the first call decides; racing first calls compute the same value. */
static _Atomic int active_path = -1;

int vmath_path(void) {
    int p = active_path;
    if (p < 0) {
        const char *env = getenv("GRAFT_VMATH");
        p = (env && strcmp(env, "scalar") == 0) || !avx2_available() ? GRAFT_VMATH_SCALAR : GRAFT_VMATH_AVX2;
        active_path = p;
    }
    return p;
}

static const vmath_fn *table_for(int path) {
#if GRAFT_HAVE_AVX2
    if (path == GRAFT_VMATH_AVX2) return avx2_table;
#endif
    (void)path;
    return scalar_table;
}

int vmath_run(int op, int path, const float *x, float *y, size_t n) {
    if (op < 0 || op > GRAFT_VMATH_OP_SOFTMAX_ROW) return -1;
    if (path == GRAFT_VMATH_AVX2 && !avx2_available()) return -1;
    if (path != GRAFT_VMATH_AVX2 && path != GRAFT_VMATH_SCALAR) return -1;
    table_for(path)[op](x, y, n);
    return 0;
}

void vmath_exp(const float *x, float *y, size_t n) { table_for(vmath_path())[GRAFT_VMATH_OP_EXP](x, y, n); }
void vmath_erf(const float *x, float *y, size_t n) { table_for(vmath_path())[GRAFT_VMATH_OP_ERF](x, y, n); }
void vmath_gelu_erf(const float *x, float *y, size_t n) { table_for(vmath_path())[GRAFT_VMATH_OP_GELU_ERF](x, y, n); }
void vmath_sigmoid(const float *x, float *y, size_t n) { table_for(vmath_path())[GRAFT_VMATH_OP_SIGMOID](x, y, n); }
void vmath_softmax_row(const float *x, float *y, size_t n) { table_for(vmath_path())[GRAFT_VMATH_OP_SOFTMAX_ROW](x, y, n); }
