/* vmath_avx2.h: the AVX2+FMA building blocks vmath.c's array functions and attention.c's fused
 * softmax share (private to CMath, not in include/): exp of 8 floats, horizontal max and sum,
 * tail masks. Include only where GRAFT_HAVE_AVX2 is 1 and <immintrin.h> is included; every
 * function is compiled for target("avx2,fma") and inlined into its (equally targeted) caller.
 * The approximation and its accuracy are described at the top of vmath.c. */
#ifndef GRAFT_VMATH_AVX2_H
#define GRAFT_VMATH_AVX2_H

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* exp coefficients E0..E4: e^r = 1 + r + r^2 (E0 + E1 r + E2 r^2 + E3 r^3 + E4 r^4). */
#define EXP_E0 4.999999404e-01f
#define EXP_E1 1.666652113e-01f
#define EXP_E2 4.166826233e-02f
#define EXP_E3 8.368669078e-03f
#define EXP_E4 1.382102375e-03f
/* The shared core of v_exp and v_exp_nonpositive for a clamped x: k = round(x / ln2) (returned
 * in *kf) and e^r for r = x - k·ln2 (ln2 = LN2_HI + LN2_LO, LN2_HI ln2 rounded to float,
 * 0x3f317218; each step one FMA). */
AVX2_INLINE __m256 v_exp_reduced(__m256 x, __m256 *kf) {
    *kf = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(*kf, _mm256_set1_ps(0.693147182464599609375f), x);
    r = _mm256_fnmadd_ps(*kf, _mm256_set1_ps(-1.904654299957768e-09f), r);
    __m256 p = _mm256_set1_ps(EXP_E4);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_E3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_E2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_E1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_E0));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    return _mm256_add_ps(p, _mm256_set1_ps(1.0f));
}

/* 2^k for integer k (a float holding it) in [-126, 127]: a normal float built from its bits. */
AVX2_INLINE __m256 v_pow2i(__m256i k) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

AVX2_INLINE __m256 v_exp(__m256 x) {
    /* min/max return their second operand when either is NaN: keep x second so NaN passes. */
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
    __m256 kf;
    const __m256 p = v_exp_reduced(x, &kf);
    /* k in [-150, 129]: 2^k = 2^k1 · 2^k2 with both exponents in the normal range. */
    __m256i k = _mm256_cvtps_epi32(kf);
    __m256i k1 = _mm256_srai_epi32(k, 1);
    return _mm256_mul_ps(_mm256_mul_ps(p, v_pow2i(k1)), v_pow2i(_mm256_sub_epi32(k, k1)));
}

/* v_exp for x <= 0 or NaN (a softmax logit minus its row's max), 4 vector ops cheaper: no upper
 * clamp, and one scaling by 2^k. Bitwise equal to v_exp for x >= -87.33 (k >= -126, where
 * p·2^(k/2)·2^(k-k/2) and p·2^k are the same exact product of normal floats); below, where
 * v_exp gives a denormal or 0, it gives 0 (a difference under 1.2e-38). NaN propagates (the
 * clamp keeps x second, and the underflow test is false for NaN); -inf gives 0.
 * Measured in the attention kernel (MiniLM S = 128, one thread): 0.44 → 0.42 ms per layer. */
AVX2_INLINE __m256 v_exp_nonpositive(__m256 x) {
    const __m256 low = _mm256_set1_ps(-87.33f);
    const __m256 underflow = _mm256_cmp_ps(x, low, _CMP_LT_OQ);
    __m256 kf;
    const __m256 p = v_exp_reduced(_mm256_max_ps(low, x), &kf);
    /* k in [-126, 0]: 2^k is a normal float. */
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, v_pow2i(_mm256_cvtps_epi32(kf))));
}

/* Lanes [0, rem) set, rem in 0...8. */
AVX2_INLINE __m256i tail_mask(size_t rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2_INLINE float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

AVX2_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

#endif
