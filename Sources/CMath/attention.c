/* attention.c: the rows of one attention head, scores → scaled masked softmax → P·V, for
 * graft:FusedAttention (see include/attention.h for the contract and the two paths).
 *
 * Why not two cblas_sgemm calls: per head the products are tiny (128 × 128 × 32 for MiniLM at
 * sequence 128) and OpenBLAS packs both operands on every call; here K's head is packed once per
 * call into the layout the register tile reads, V is read in place (its rows are already Dv
 * contiguous floats), and a group of 6 score rows goes from the product through the softmax to
 * P·V while it is in L1, instead of a whole score block making three passes through L2. */
#include "attention.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GRAFT_HAVE_AVX2 1
#include <immintrin.h>
#else
#define GRAFT_HAVE_AVX2 0
#endif

/* Query rows per register tile, keys per packed panel (two ymm). */
enum { ATT_MR = 6, ATT_NR = 16 };

static size_t round_nr(size_t n) { return (n + ATT_NR - 1) / ATT_NR * ATT_NR; }

/* Packed K: round_nr(sk) · d floats; score rows: ATT_MR × round_nr(sk) (row stride round_nr(sk)).
 * The scalar path uses sk · d + sk of them. */
size_t vmath_attention_scratch_floats(size_t sk, size_t d) { return round_nr(sk) * d + ATT_MR * round_nr(sk); }

/* MARK: - Scalar path */

/* Plain C, vectorised by the compiler at the baseline target: K's head transposed once into
 * kt [d][sk] so that a score row is d passes of s[j] += q[t]·kt[t][j] over contiguous keys, and
 * P·V is sk passes of y[e] += p[j]·v[j][e] over contiguous values. scratch: kt, then s [sk]. */
static void rows_scalar(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                        const float *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_stride, float scale, int flags,
                        float *y, size_t ldy, size_t rows, size_t sk, size_t d, size_t dv, float *scratch) {
    float *kt = scratch, *s = scratch + sk * d;
    for (size_t j = 0; j < sk; j++)
        for (size_t t = 0; t < d; t++) kt[t * sk + j] = k[j * ldk + t];
    for (size_t i = 0; i < rows; i++) {
        const float *qi = q + i * ldq;
        float *yi = y + i * ldy;
        for (size_t j = 0; j < sk; j++) s[j] = 0;
        for (size_t t = 0; t < d; t++) {
            const float a = qi[t], *kr = kt + t * sk;
            for (size_t j = 0; j < sk; j++) s[j] += a * kr[j];
        }
        /* s: [sk] scores of row i, softmaxed in place. */
        const float *mi = mask ? mask + (ptrdiff_t)i * mask_row_stride : NULL;
        (void)vmath_softmax_scaled_row_on(GRAFT_VMATH_SCALAR, s, mi, mask_stride, scale, flags, s, sk);
        for (size_t e = 0; e < dv; e++) yi[e] = 0;
        for (size_t j = 0; j < sk; j++) {
            const float p = s[j], *vj = v + j * ldv;
            for (size_t e = 0; e < dv; e++) yi[e] += p * vj[e];
        }
    }
}

/* MARK: - AVX2+FMA path */

#if GRAFT_HAVE_AVX2
#include "vmath_avx2.h" /* AVX2, v_exp, hmax8, hsum8, tail_mask */
#define INLINE static inline __attribute__((always_inline))

/* kp[p][t][c] = k[(p·16 + c)·ldk + t] for panels p < round_nr(sk)/16, t < d, c < 16; zero for
 * keys p·16 + c ≥ sk. kp: [round_nr(sk) / 16][d][16]. Whole 8 × 8 blocks go through an
 * in-register transpose; the edges element by element. */
AVX2 static void pack_k(const float *k, size_t ldk, size_t sk, size_t d, float *kp) {
    const size_t np = round_nr(sk) / ATT_NR;
    for (size_t p = 0; p < np; p++) {
        float *dst = kp + p * d * ATT_NR;
        for (size_t c0 = 0; c0 < ATT_NR; c0 += 8) {
            const size_t j0 = p * ATT_NR + c0;
            size_t t = 0;
            if (j0 + 8 <= sk) {
                for (; t + 8 <= d; t += 8) {
                    /* rows r0..r7: keys j0..j0+7, elements t..t+7; out: 8 rows of [t][c0..c0+7]. */
                    const float *src = k + j0 * ldk + t;
                    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ldk);
                    __m256 r2 = _mm256_loadu_ps(src + 2 * ldk), r3 = _mm256_loadu_ps(src + 3 * ldk);
                    __m256 r4 = _mm256_loadu_ps(src + 4 * ldk), r5 = _mm256_loadu_ps(src + 5 * ldk);
                    __m256 r6 = _mm256_loadu_ps(src + 6 * ldk), r7 = _mm256_loadu_ps(src + 7 * ldk);
                    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                    float *o = dst + t * ATT_NR + c0;
                    _mm256_storeu_ps(o + 0 * ATT_NR, _mm256_permute2f128_ps(u0, u4, 0x20));
                    _mm256_storeu_ps(o + 1 * ATT_NR, _mm256_permute2f128_ps(u1, u5, 0x20));
                    _mm256_storeu_ps(o + 2 * ATT_NR, _mm256_permute2f128_ps(u2, u6, 0x20));
                    _mm256_storeu_ps(o + 3 * ATT_NR, _mm256_permute2f128_ps(u3, u7, 0x20));
                    _mm256_storeu_ps(o + 4 * ATT_NR, _mm256_permute2f128_ps(u0, u4, 0x31));
                    _mm256_storeu_ps(o + 5 * ATT_NR, _mm256_permute2f128_ps(u1, u5, 0x31));
                    _mm256_storeu_ps(o + 6 * ATT_NR, _mm256_permute2f128_ps(u2, u6, 0x31));
                    _mm256_storeu_ps(o + 7 * ATT_NR, _mm256_permute2f128_ps(u3, u7, 0x31));
                }
            }
            for (; t < d; t++)
                for (size_t c = c0; c < c0 + 8; c++) {
                    const size_t j = p * ATT_NR + c;
                    dst[t * ATT_NR + c] = j < sk ? k[j * ldk + t] : 0.0f;
                }
        }
    }
}

/* s[r][0..round_nr(sk)) = q rows r < MR against every packed panel. q: [MR][d] at ldq; kp as
 * pack_k; s: [MR][round_nr(sk)] at row stride lds (keys ≥ sk get 0·q = 0, never read later). */
INLINE AVX2 void scores_tile(const int mr, const float *q, size_t ldq, const float *kp, size_t np, size_t d,
                             float *s, size_t lds) {
    for (size_t p = 0; p < np; p++) {
        const float *b = kp + p * d * ATT_NR;
        __m256 acc[ATT_MR][2];
        for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        for (size_t t = 0; t < d; t++) {
            const __m256 b0 = _mm256_loadu_ps(b + t * ATT_NR), b1 = _mm256_loadu_ps(b + t * ATT_NR + 8);
            for (int r = 0; r < mr; r++) {
                const __m256 a = _mm256_broadcast_ss(q + r * ldq + t);
                acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
            }
        }
        for (int r = 0; r < mr; r++) {
            _mm256_storeu_ps(s + r * lds + p * ATT_NR, acc[r][0]);
            _mm256_storeu_ps(s + r * lds + p * ATT_NR + 8, acc[r][1]);
        }
    }
}

/* y rows r < mr, columns c..c+w (w = 16 or 8 unmasked, or < 8 masked by m) = Σ_j p[r][j]·v[j][c..].
 * p: [mr][sk] at lds; v: [sk][dv] at ldv; y at ldy. nv: ymm per row (2 for w = 16, else 1). */
INLINE AVX2 void pv_tile(const int mr, const int nv, const int masked, __m256i m, const float *p, size_t lds,
                         const float *inv, const float *v, size_t ldv, size_t sk, float *y, size_t ldy) {
    __m256 acc[ATT_MR][2];
    for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (size_t j = 0; j < sk; j++) {
        const float *vj = v + j * ldv;
        const __m256 v0 = masked ? _mm256_maskload_ps(vj, m) : _mm256_loadu_ps(vj);
        const __m256 v1 = nv == 2 ? _mm256_loadu_ps(vj + 8) : _mm256_setzero_ps();
        for (int r = 0; r < mr; r++) {
            const __m256 a = _mm256_broadcast_ss(p + r * lds + j);
            acc[r][0] = _mm256_fmadd_ps(a, v0, acc[r][0]);
            if (nv == 2) acc[r][1] = _mm256_fmadd_ps(a, v1, acc[r][1]);
        }
    }
    for (int r = 0; r < mr; r++) {
        const __m256 w = _mm256_set1_ps(inv[r]);
        acc[r][0] = _mm256_mul_ps(acc[r][0], w);
        acc[r][1] = _mm256_mul_ps(acc[r][1], w);
        if (masked) _mm256_maskstore_ps(y + r * ldy, m, acc[r][0]);
        else _mm256_storeu_ps(y + r * ldy, acc[r][0]);
        if (nv == 2) _mm256_storeu_ps(y + r * ldy + 8, acc[r][1]);
    }
}

/* Logits v = s·scale + m, (s + m)·scale, or with ÷scale (flags as vmath_softmax_scaled_row),
 * each operation rounded on its own (explicit intrinsics: never contracted into an FMA). */
INLINE AVX2 __m256 logits(__m256 x, __m256 m, __m256 sc, int first, int divide) {
    if (first) x = _mm256_add_ps(x, m);
    x = divide ? _mm256_div_ps(x, sc) : _mm256_mul_ps(x, sc);
    return first ? x : _mm256_add_ps(x, m);
}

/* Mask forms of one score row: contiguous, one value for the row (also "no mask", as + 0, which
 * changes no softmax: -0 and +0 give the same exp), or elements mask_stride apart. */
enum { MASK_ROW = 0, MASK_ONE = 1, MASK_STRIDED = 2 };

/* 8 mask values at key j (lanes ≥ n - j of a tail read 0, not memory). */
INLINE AVX2 __m256 mask8(const int kind, const float *mask, ptrdiff_t stride, __m256 one, size_t j, size_t n,
                         int tail, __m256i tm) {
    if (kind == MASK_ONE) return one;
    if (kind == MASK_ROW) return tail ? _mm256_maskload_ps(mask + j, tm) : _mm256_loadu_ps(mask + j);
    float g[8] = {0};
    for (size_t l = 0; l < 8 && j + l < n; l++) g[l] = mask[(ptrdiff_t)(j + l) * stride];
    return _mm256_loadu_ps(g);
}

/* Pass 1 of softmax_row_unnormalised, specialised on the mask form and the flags: logits in
 * place, returns their max (NaN ignored as avx2_softmax_row's max; tail lanes -inf). */
INLINE AVX2 float logits_max(const int kind, const int first, const int divide, float *s, size_t n,
                             const float *mask, ptrdiff_t stride, float one_value, float scale) {
    const __m256 sc = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY), one = _mm256_set1_ps(one_value);
    const size_t full = n & ~(size_t)7, rem = n - full;
    const __m256i tm = tail_mask(rem);
    __m256 vm = ninf;
    for (size_t j = 0; j < full; j += 8) {
        const __m256 v = logits(_mm256_loadu_ps(s + j), mask8(kind, mask, stride, one, j, n, 0, tm), sc, first, divide);
        _mm256_storeu_ps(s + j, v);
        vm = _mm256_max_ps(v, vm);
    }
    if (rem) {   /* s is padded to 16: a whole vector is readable and writable */
        __m256 v = logits(_mm256_loadu_ps(s + full), mask8(kind, mask, stride, one, full, n, 1, tm), sc, first, divide);
        v = _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(tm));
        _mm256_storeu_ps(s + full, v);
        vm = _mm256_max_ps(v, vm);
    }
    return hmax8(vm);
}

/* One score row s[0..n) in place → e[j] = exp(v[j] - max v) (the unnormalised softmax, as
 * avx2_softmax_row: NaN ignored by the max, an all -inf row gives NaN); returns 1 / Σ e.
 * mask: NULL, or n floats mask_stride apart. s is round_nr(n) long; past n it holds junk that
 * P·V never reads. */
AVX2 static float softmax_row_unnormalised(float *s, size_t n, const float *mask, ptrdiff_t mask_stride, float scale,
                                           int flags) {
    const int kind = !mask || mask_stride == 0 ? MASK_ONE : mask_stride == 1 ? MASK_ROW : MASK_STRIDED;
    const float one_value = mask ? mask[0] : 0.0f;
    float top;
#define LM(K, F, D) top = logits_max(K, F, D, s, n, mask, mask_stride, one_value, scale)
#define FLAGS(K)                                                                              \
    switch (flags & (VMATH_SOFTMAX_MASK_FIRST | VMATH_SOFTMAX_DIVIDE)) {                      \
    case 0: LM(K, 0, 0); break;                                                               \
    case VMATH_SOFTMAX_MASK_FIRST: LM(K, 1, 0); break;                                        \
    case VMATH_SOFTMAX_DIVIDE: LM(K, 0, 1); break;                                            \
    default: LM(K, 1, 1); break;                                                              \
    }
    if (kind == MASK_ONE) { FLAGS(MASK_ONE) } else if (kind == MASK_ROW) { FLAGS(MASK_ROW) } else { FLAGS(MASK_STRIDED) }
#undef FLAGS
#undef LM
    const size_t full = n & ~(size_t)7, rem = n - full;
    const __m256 mx = _mm256_set1_ps(top);
    __m256 vs = _mm256_setzero_ps();
    for (size_t j = 0; j < full; j += 8) {
        const __m256 e = v_exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(s + j), mx));
        _mm256_storeu_ps(s + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    if (rem) {
        const __m256 e = v_exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(s + full), mx));
        _mm256_storeu_ps(s + full, e);
        vs = _mm256_add_ps(vs, _mm256_and_ps(e, _mm256_castsi256_ps(tail_mask(rem))));
    }
    return 1.0f / hsum8(vs);
}

/* One group of mr ≤ MR query rows: scores, softmax rows, P·V. s: [MR][lds] scratch. */
INLINE AVX2 void group(const int mr, const float *q, size_t ldq, const float *kp, const float *v, size_t ldv,
                       const float *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_stride, float scale, int flags,
                       float *y, size_t ldy, size_t sk, size_t d, size_t dv, float *s) {
    const size_t lds = round_nr(sk);
    scores_tile(mr, q, ldq, kp, lds / ATT_NR, d, s, lds);
    float inv[ATT_MR];
    for (int r = 0; r < mr; r++) {
        const float *mrow = mask ? mask + (ptrdiff_t)r * mask_row_stride : NULL;
        inv[r] = softmax_row_unnormalised(s + r * lds, sk, mrow, mask_stride, scale, flags);
    }
    size_t c = 0;
    for (; c + 16 <= dv; c += 16) pv_tile(mr, 2, 0, _mm256_setzero_si256(), s, lds, inv, v + c, ldv, sk, y + c, ldy);
    if (c + 8 <= dv) {
        pv_tile(mr, 1, 0, _mm256_setzero_si256(), s, lds, inv, v + c, ldv, sk, y + c, ldy);
        c += 8;
    }
    if (c < dv) pv_tile(mr, 1, 1, tail_mask(dv - c), s, lds, inv, v + c, ldv, sk, y + c, ldy);
}

AVX2 static void rows_avx2(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                           const float *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_stride, float scale,
                           int flags, float *y, size_t ldy, size_t rows, size_t sk, size_t d, size_t dv,
                           float *scratch) {
    /* scratch: packed K [round_nr(sk)·d], then score rows [MR][round_nr(sk)]. */
    float *kp = scratch, *s = scratch + round_nr(sk) * d;
    pack_k(k, ldk, sk, d, kp);
    size_t i = 0;
#define GROUP(MR_) group(MR_, q + i * ldq, ldq, kp, v, ldv, mask ? mask + (ptrdiff_t)i * mask_row_stride : NULL, \
                         mask_row_stride, mask_stride, scale, flags, y + i * ldy, ldy, sk, d, dv, s)
    for (; i + ATT_MR <= rows; i += ATT_MR) GROUP(6);
    switch (rows - i) {
    case 5: GROUP(5); break;
    case 4: GROUP(4); break;
    case 3: GROUP(3); break;
    case 2: GROUP(2); break;
    case 1: GROUP(1); break;
    default: break;
    }
#undef GROUP
}
#endif /* GRAFT_HAVE_AVX2 */

/* MARK: - Dispatch */

int vmath_attention_rows_on(int path, const float *q, size_t ldq, const float *k, size_t ldk, const float *v,
                            size_t ldv, const float *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_stride,
                            float scale, int flags, float *y, size_t ldy, size_t rows, size_t sk, size_t d,
                            size_t dv, float *scratch) {
    if (path != GRAFT_VMATH_SCALAR && path != GRAFT_VMATH_AVX2) return -1;
    /* vmath_run with n = 0 does nothing and says whether the path runs on this CPU. */
    if (vmath_run(GRAFT_VMATH_OP_SOFTMAX_ROW, path, NULL, NULL, 0) != 0) return -1;
    if (sk == 0) { /* the empty sum; no softmax of an empty row */
        for (size_t i = 0; i < rows; i++) memset(y + i * ldy, 0, dv * sizeof(float));
        return 0;
    }
#if GRAFT_HAVE_AVX2
    if (path == GRAFT_VMATH_AVX2) {
        rows_avx2(q, ldq, k, ldk, v, ldv, mask, mask_row_stride, mask_stride, scale, flags, y, ldy, rows, sk, d, dv,
                  scratch);
        return 0;
    }
#endif
    rows_scalar(q, ldq, k, ldk, v, ldv, mask, mask_row_stride, mask_stride, scale, flags, y, ldy, rows, sk, d, dv,
                scratch);
    return 0;
}

void vmath_attention_rows(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                          const float *mask, ptrdiff_t mask_row_stride, ptrdiff_t mask_stride, float scale, int flags,
                          float *y, size_t ldy, size_t rows, size_t sk, size_t d, size_t dv, float *scratch) {
    (void)vmath_attention_rows_on(vmath_path(), q, ldq, k, ldk, v, ldv, mask, mask_row_stride, mask_stride, scale,
                                  flags, y, ldy, rows, sk, d, dv, scratch);
}
