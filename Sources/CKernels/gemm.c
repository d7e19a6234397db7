/* Packed-weight float32 GEMM: packing, driver, AVX-512 / AVX2+FMA / portable micro-kernels.
 * Layouts are described in include/graft_kernels.h. Every buffer's shape is noted where it is
 * used; "panel" always means NR = 32 columns of packed B with K contiguous rows of 32 floats. */
#include "graft_kernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define GRAFT_X86 1
#include <immintrin.h>
#else
#define GRAFT_X86 0
#endif

#define NR GRAFT_GEMM_NR

/* What a tile prefetches while it computes (AVX2 6×16 tile only; the others ignore it):
 *   ahead: prefetch its own B rows PF_TILE rows ahead (the first tile of a thread's first
 *          panel, which nothing prefetched)
 *   next, lines: prefetch `lines` 64-byte lines from `next` (a share of the next panel's K block,
 *          [kc][NR] contiguous), spread evenly over its kc iterations; NULL/0: none */
typedef struct {
    int ahead;
    const float *next;
    size_t lines;
} tile_prefetch;

/* One tile: C[mr × nc] (=|+=) A[mr × kc] · Bpanel[kc × W] (+ bias[nc]), where W is the path's
 * tile width: NR (a whole panel) or NR/2 (AVX2: half a panel, one 64-byte line per k).
 *   a:     row 0 of the tile, row stride lda, kc floats used per row
 *   b:     [kc][W] at column 0 or 16 of packed panel rows (64-byte aligned, row stride NR)
 *   c:     tile origin in C, row stride ldc; only the first nc (<= W) columns are written
 *   bias:  [nc] or NULL (only on the first K block)
 *   accumulate: 0 overwrites C, 1 adds to it (later K blocks)
 *   pf:    what to prefetch meanwhile (see tile_prefetch) */
typedef void (*tile_fn)(size_t mr, size_t kc, const float *a, size_t lda, const float *b,
                        float *c, size_t ldc, size_t nc, const float *bias, int accumulate,
                        tile_prefetch pf);

/* ---------------------------------------------------------------- blocking */

/* K block: the AVX2 tile reads B[KC × 16] (KC*64 bytes) per pass, kept in L1/L2 while the row
 * tiles stream past. 512 measured 0–4% faster than 256 at 128 rows (fewer passes over C), and
 * faster at 512–1024 rows with K = 1536; the AVX-512 path was not re-measured (no such CPU here). */
static _Atomic size_t kc_block = 512;
/* Row block: A[MC × KC] should stay in L2 (512 KB here) next to the panels streaming past
 * (multiple of 12, 6, 4): 96 rows × KC 512 = 192 KB. MC 240 (480 KB) measured 2.5–8% slower on
 * MiniLM at 2×128 … 8×128 rows (2 threads, interleaved); calls of up to 128 rows run as one
 * block instead (the driver), since a second block streams every panel again. */
static _Atomic size_t mc_block = 96;

/* ---------------------------------------------------------------- portable */

#define MR_C 4
static void tile_portable(size_t mr, size_t kc, const float *a, size_t lda, const float *b,
                          float *c, size_t ldc, size_t nc, const float *bias, int accumulate, tile_prefetch pf) {
    (void)pf;
    float acc[MR_C][NR]; /* [mr][NR] accumulators */
    memset(acc, 0, sizeof acc);
    for (size_t k = 0; k < kc; k++) {
        const float *bk = b + k * NR; /* [NR] */
        for (size_t r = 0; r < mr; r++) {
            float av = a[r * lda + k];
            for (size_t j = 0; j < NR; j++) acc[r][j] += av * bk[j];
        }
    }
    for (size_t r = 0; r < mr; r++) {
        float *cr = c + r * ldc; /* [nc] */
        for (size_t j = 0; j < nc; j++) {
            float v = acc[r][j];
            if (bias) v += bias[j];
            if (accumulate) v += cr[j];
            cr[j] = v;
        }
    }
}

#if GRAFT_X86
/* ---------------------------------------------------------------- AVX2 + FMA */

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

/* Lane mask for the first `count` (0..8) of 8 lanes. */
AVX2_INLINE __m256i avx2_mask(size_t count) {
    static const int lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(lanes + 8 - (count > 8 ? 8 : count)));
}

/* Writes x (8 lanes) to p[0..cnt) with bias and accumulation; cnt in 0..8. */
AVX2_INLINE void avx2_put(float *p, __m256 x, const float *bias, int accumulate, size_t cnt) {
    if (cnt >= 8) {
        if (bias) x = _mm256_add_ps(x, _mm256_loadu_ps(bias));
        if (accumulate) x = _mm256_add_ps(x, _mm256_loadu_ps(p));
        _mm256_storeu_ps(p, x);
    } else if (cnt > 0) {
        __m256i m = avx2_mask(cnt);
        if (bias) x = _mm256_add_ps(x, _mm256_maskload_ps(bias, m));
        if (accumulate) x = _mm256_add_ps(x, _mm256_maskload_ps(p, m));
        _mm256_maskstore_ps(p, m, x);
    }
}

#define PF_TILE 32 /* prefetch distance in packed rows for the 6×16 tile (4 KB) */
/* MR × 16 tile over half a panel: b points at column 0 or 16 of the panel (row stride NR).
 * Accumulators: c0[r] columns 0..7, c1[r] columns 8..15 (2*MR ymm). */
AVX2_INLINE void avx2_6x16(const size_t MR, size_t kc, const float *a, size_t lda, const float *b,
                           float *c, size_t ldc, size_t nc, const float *bias, int accumulate, tile_prefetch pf) {
    __m256 c0[6], c1[6];
    for (size_t r = 0; r < MR; r++) c0[r] = c1[r] = _mm256_setzero_ps();
    size_t due = 0; /* next-panel lines: one whenever `due` passes kc (pf.lines ≤ kc per call) */
    /* Rows prefetched for this tile: PF_TILE ahead, or the row being read (a no-op: a branch in
     * the loop measured 1.6–1.9× slower). */
    const float *own = b + (pf.ahead ? PF_TILE : 0) * NR;
    /* Unrolled 4× (measured 1–4% faster than clang's default here). */
#if defined(__clang__)
#pragma clang loop unroll_count(4)
#endif
    for (size_t k = 0; k < kc; k++) {
        /* A thread's first tile reads B from memory: prefetch both lines of the packed row
         * PF_TILE rows ahead (this half's and the other half's, which the next half-panel pass
         * reads), so the stream overlaps the FMAs. Measured (single thread, weights rotated
         * through 96 MB): 16×384×384 from 1.44× OpenBLAS's time to 0.91×. */
        _mm_prefetch((const char *)(own + k * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(own + k * NR + 16), _MM_HINT_T0);
        /* Every tile of a panel fetches a share of the next panel, so memory is read all the
         * time rather than only while the first tile streams (see the driver). */
        if ((due += pf.lines) >= kc) {
            due -= kc;
            _mm_prefetch((const char *)pf.next, _MM_HINT_T0);
            pf.next += 16;
        }
        __m256 b0 = _mm256_load_ps(b + k * NR), b1 = _mm256_load_ps(b + k * NR + 8);
        for (size_t r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * lda + k);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
    }
    size_t n0 = nc < 8 ? nc : 8, n1 = nc > 8 ? nc - 8 : 0;
    for (size_t r = 0; r < MR; r++) {
        float *cr = c + r * ldc;
        avx2_put(cr, c0[r], bias, accumulate, n0);
        avx2_put(cr + 8, c1[r], bias ? bias + 8 : NULL, accumulate, n1);
    }
}

/* 1–2 rows × 16 columns (half a panel); K split into KS interleaved chains so that 8
 * independent FMA chains hide the FMA latency. Accumulators: acc[s][r][2] (KS*MR*2 = 8 ymm). */
AVX2_INLINE void avx2_small(const size_t MR, const size_t KS, size_t kc, const float *a, size_t lda,
                            const float *b, float *c, size_t ldc, size_t nc, const float *bias,
                            int accumulate) {
    __m256 acc[4][2][2];
    for (size_t s = 0; s < KS; s++)
        for (size_t r = 0; r < MR; r++) acc[s][r][0] = acc[s][r][1] = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + KS <= kc; k += KS) {
        for (size_t s = 0; s < KS; s++) {
            const float *bk = b + (k + s) * NR;
            _mm_prefetch((const char *)(bk + 16 * NR), _MM_HINT_T0); /* 2 KB ahead: B is streamed once */
            __m256 b0 = _mm256_load_ps(bk), b1 = _mm256_load_ps(bk + 8);
            for (size_t r = 0; r < MR; r++) {
                __m256 av = _mm256_broadcast_ss(a + r * lda + k + s);
                acc[s][r][0] = _mm256_fmadd_ps(av, b0, acc[s][r][0]);
                acc[s][r][1] = _mm256_fmadd_ps(av, b1, acc[s][r][1]);
            }
        }
    }
    for (; k < kc; k++) {
        const float *bk = b + k * NR;
        __m256 b0 = _mm256_load_ps(bk), b1 = _mm256_load_ps(bk + 8);
        for (size_t r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * lda + k);
            acc[0][r][0] = _mm256_fmadd_ps(av, b0, acc[0][r][0]);
            acc[0][r][1] = _mm256_fmadd_ps(av, b1, acc[0][r][1]);
        }
    }
    size_t n0 = nc < 8 ? nc : 8, n1 = nc > 8 ? nc - 8 : 0;
    for (size_t r = 0; r < MR; r++) {
        __m256 x0 = acc[0][r][0], x1 = acc[0][r][1];
        for (size_t s = 1; s < KS; s++) {
            x0 = _mm256_add_ps(x0, acc[s][r][0]);
            x1 = _mm256_add_ps(x1, acc[s][r][1]);
        }
        float *cr = c + r * ldc;
        avx2_put(cr, x0, bias, accumulate, n0);
        avx2_put(cr + 8, x1, bias ? bias + 8 : NULL, accumulate, n1);
    }
}

#ifndef PF_ROWS
#define PF_ROWS 64 /* prefetch distance in packed rows (128 B each) */
#endif
/* Whole-panel variant for calls with 1–2 rows in all (decode): 32 columns, B streamed in memory
 * order with a software prefetch. Accumulators: acc[s][r][4] (KS*MR*4 = 8 ymm). */
AVX2_INLINE void avx2_row32(const size_t MR, const size_t KS, size_t kc, const float *a, size_t lda,
                            const float *b, float *c, size_t ldc, size_t nc, const float *bias,
                            int accumulate) {
    __m256 acc[2][2][4];
    for (size_t s = 0; s < KS; s++)
        for (size_t r = 0; r < MR; r++)
            for (size_t q = 0; q < 4; q++) acc[s][r][q] = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + KS <= kc; k += KS) {
        for (size_t s = 0; s < KS; s++) {
            const float *bk = b + (k + s) * NR;
            _mm_prefetch((const char *)(bk + PF_ROWS * NR), _MM_HINT_T0);
            _mm_prefetch((const char *)(bk + PF_ROWS * NR + 16), _MM_HINT_T0);
            __m256 b0 = _mm256_load_ps(bk), b1 = _mm256_load_ps(bk + 8);
            __m256 b2 = _mm256_load_ps(bk + 16), b3 = _mm256_load_ps(bk + 24);
            for (size_t r = 0; r < MR; r++) {
                __m256 av = _mm256_broadcast_ss(a + r * lda + k + s);
                acc[s][r][0] = _mm256_fmadd_ps(av, b0, acc[s][r][0]);
                acc[s][r][1] = _mm256_fmadd_ps(av, b1, acc[s][r][1]);
                acc[s][r][2] = _mm256_fmadd_ps(av, b2, acc[s][r][2]);
                acc[s][r][3] = _mm256_fmadd_ps(av, b3, acc[s][r][3]);
            }
        }
    }
    for (; k < kc; k++) {
        const float *bk = b + k * NR;
        for (size_t r = 0; r < MR; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * lda + k);
            for (size_t q = 0; q < 4; q++) acc[0][r][q] = _mm256_fmadd_ps(av, _mm256_load_ps(bk + 8 * q), acc[0][r][q]);
        }
    }
    for (size_t r = 0; r < MR; r++) {
        float *cr = c + r * ldc;
        for (size_t q = 0; q < 4; q++) {
            __m256 x = acc[0][r][q];
            for (size_t s = 1; s < KS; s++) x = _mm256_add_ps(x, acc[s][r][q]);
            size_t lo = 8 * q, cnt = nc > lo ? (nc - lo < 8 ? nc - lo : 8) : 0;
            avx2_put(cr + lo, x, bias ? bias + lo : NULL, accumulate, cnt);
        }
    }
}

/* Whole-panel tile (W = NR) for 1–2 rows. */
AVX2 static void tile_avx2_rows(size_t mr, size_t kc, const float *a, size_t lda, const float *b,
                                float *c, size_t ldc, size_t nc, const float *bias, int accumulate, tile_prefetch pf) {
    (void)pf;
    if (mr == 2) avx2_row32(2, 1, kc, a, lda, b, c, ldc, nc, bias, accumulate);
    else avx2_row32(1, 2, kc, a, lda, b, c, ldc, nc, bias, accumulate);
}

#define MR_AVX2 6
/* Half-panel tile (W = 16): the driver calls it for columns 0..15 and 16..31 of each panel. */
AVX2 static void tile_avx2(size_t mr, size_t kc, const float *a, size_t lda, const float *b,
                           float *c, size_t ldc, size_t nc, const float *bias, int accumulate, tile_prefetch pf) {
    switch (mr) {
    case 6: avx2_6x16(6, kc, a, lda, b, c, ldc, nc, bias, accumulate, pf); break;
    case 5: avx2_6x16(5, kc, a, lda, b, c, ldc, nc, bias, accumulate, pf); break;
    case 4: avx2_6x16(4, kc, a, lda, b, c, ldc, nc, bias, accumulate, pf); break;
    case 3: avx2_6x16(3, kc, a, lda, b, c, ldc, nc, bias, accumulate, pf); break;
    case 2: avx2_small(2, 2, kc, a, lda, b, c, ldc, nc, bias, accumulate); break;
    default: avx2_small(1, 4, kc, a, lda, b, c, ldc, nc, bias, accumulate); break;
    }
}

/* ---------------------------------------------------------------- AVX-512F */

#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) static inline

AVX512_INLINE __mmask16 avx512_mask(size_t count) { /* first count (0..16) of 16 lanes */
    return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1u);
}

/* Writes x to p[0..cnt) (cnt 0..16) adding bias[0..cnt) and, when accumulating, p's values. */
AVX512_INLINE void avx512_put(float *p, __m512 x, const float *bias, int accumulate, size_t cnt) {
    __mmask16 m = avx512_mask(cnt);
    if (bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, bias));
    if (accumulate) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, p));
    _mm512_mask_storeu_ps(p, m, x);
}

/* MR × 32 tile over a whole panel, K split into KS interleaved chains (KS > 1 only for 1–2
 * rows, to keep >= 8 independent FMA chains). Accumulators: acc[s][r][0..1] (2*KS*MR zmm <= 24). */
AVX512_INLINE void avx512_tile_mr(const size_t MR, const size_t KS, size_t kc, const float *a, size_t lda,
                                  const float *b, float *c, size_t ldc, size_t nc, const float *bias,
                                  int accumulate) {
    __m512 acc[4][12][2];
    for (size_t s = 0; s < KS; s++)
        for (size_t r = 0; r < MR; r++) acc[s][r][0] = acc[s][r][1] = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + KS <= kc; k += KS) {
        for (size_t s = 0; s < KS; s++) {
            const float *bk = b + (k + s) * NR;
            __m512 b0 = _mm512_load_ps(bk), b1 = _mm512_load_ps(bk + 16);
            for (size_t r = 0; r < MR; r++) {
                __m512 av = _mm512_set1_ps(a[r * lda + k + s]);
                acc[s][r][0] = _mm512_fmadd_ps(av, b0, acc[s][r][0]);
                acc[s][r][1] = _mm512_fmadd_ps(av, b1, acc[s][r][1]);
            }
        }
    }
    for (; k < kc; k++) {
        const float *bk = b + k * NR;
        __m512 b0 = _mm512_load_ps(bk), b1 = _mm512_load_ps(bk + 16);
        for (size_t r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(a[r * lda + k]);
            acc[0][r][0] = _mm512_fmadd_ps(av, b0, acc[0][r][0]);
            acc[0][r][1] = _mm512_fmadd_ps(av, b1, acc[0][r][1]);
        }
    }
    size_t n0 = nc < 16 ? nc : 16, n1 = nc > 16 ? nc - 16 : 0;
    for (size_t r = 0; r < MR; r++) {
        __m512 x0 = acc[0][r][0], x1 = acc[0][r][1];
        for (size_t s = 1; s < KS; s++) {
            x0 = _mm512_add_ps(x0, acc[s][r][0]);
            x1 = _mm512_add_ps(x1, acc[s][r][1]);
        }
        float *cr = c + r * ldc;
        avx512_put(cr, x0, bias, accumulate, n0);
        avx512_put(cr + 16, x1, bias ? bias + 16 : NULL, accumulate, n1);
    }
}

#define MR_AVX512 12
AVX512 static void tile_avx512(size_t mr, size_t kc, const float *a, size_t lda, const float *b,
                               float *c, size_t ldc, size_t nc, const float *bias, int accumulate, tile_prefetch pf) {
    (void)pf;
#define T(R, S) avx512_tile_mr(R, S, kc, a, lda, b, c, ldc, nc, bias, accumulate); break
    switch (mr) {
    case 12: T(12, 1); case 11: T(11, 1); case 10: T(10, 1); case 9: T(9, 1);
    case 8: T(8, 1); case 7: T(7, 1); case 6: T(6, 1); case 5: T(5, 1);
    case 4: T(4, 1); case 3: T(3, 1); case 2: T(2, 2); default: T(1, 4);
    }
#undef T
}
#endif /* GRAFT_X86 */

/* ---------------------------------------------------------------- dispatch */

static int cpu_has(int path) {
#if GRAFT_X86
    __builtin_cpu_init();
    if (path == GRAFT_GEMM_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (path == GRAFT_GEMM_AVX512) return __builtin_cpu_supports("avx512f");
#endif
    return path == GRAFT_GEMM_PORTABLE || path == GRAFT_GEMM_AUTO;
}

int graft_gemm_path_supported(int path) { return cpu_has(path); }

static int resolve_once(void) {
    const char *kc = getenv("GRAFT_GEMM_KC"); /* tuning only: K block (multiple of 4, 16..4096) */
    if (kc) {
        long v = strtol(kc, NULL, 10);
        if (v >= 16 && v <= 4096 && v % 4 == 0) kc_block = (size_t)v;
    }
    const char *mc = getenv("GRAFT_GEMM_MC"); /* tuning only: row block (multiple of 12) */
    if (mc) {
        long v = strtol(mc, NULL, 10);
        if (v >= 12 && v <= 4096 && v % 12 == 0) mc_block = (size_t)v;
    }
    const char *env = getenv("GRAFT_GEMM_PATH");
    if (env) {
        int want = !strcmp(env, "portable") ? GRAFT_GEMM_PORTABLE
                 : !strcmp(env, "avx2")     ? GRAFT_GEMM_AVX2
                 : !strcmp(env, "avx512")   ? GRAFT_GEMM_AVX512 : 0;
        if (want && cpu_has(want)) return want;
    }
    if (cpu_has(GRAFT_GEMM_AVX512)) return GRAFT_GEMM_AVX512;
    if (cpu_has(GRAFT_GEMM_AVX2)) return GRAFT_GEMM_AVX2;
    return GRAFT_GEMM_PORTABLE;
}

/* Resolved once; racing first callers compute the same value, and the int store is atomic
 * on every target this runs on (C11 atomics would be the strict spelling). */
static _Atomic int resolved = 0;

int graft_gemm_resolved_path(void) {
    int p = resolved;
    if (!p) {
        p = resolve_once();
        resolved = p;
    }
    return p;
}

/* ---------------------------------------------------------------- packing */

size_t graft_gemm_packed_count(size_t k, size_t n) { return (n + NR - 1) / NR * k * NR; }

void graft_gemm_pack_b_panels(const float *b, size_t k, size_t n, int transposed, float *packed,
                              size_t panel_begin, size_t panel_end) {
    size_t panels = (n + NR - 1) / NR;
    if (panel_end > panels) panel_end = panels;
    for (size_t p = panel_begin; p < panel_end; p++) {
        float *dst = packed + p * k * NR; /* [k][NR] */
        size_t j0 = p * NR, w = n - j0 < NR ? n - j0 : NR;
        if (!transposed) {
            /* b: [k][n] row-major */
            for (size_t kk = 0; kk < k; kk++) {
                memcpy(dst + kk * NR, b + kk * n + j0, w * sizeof(float));
                if (w < NR) memset(dst + kk * NR + w, 0, (NR - w) * sizeof(float));
            }
        } else {
            /* b: [n][k] row-major: column j of the panel is row j0 + j of b */
            if (w < NR) memset(dst, 0, k * NR * sizeof(float));
            for (size_t j = 0; j < w; j++) {
                const float *src = b + (j0 + j) * k; /* [k] */
                for (size_t kk = 0; kk < k; kk++) dst[kk * NR + j] = src[kk];
            }
        }
    }
}

/* ---------------------------------------------------------------- driver */

void graft_gemm_packed(int path, size_t m, size_t n, size_t k,
                       const float *a, size_t lda, const float *packed, const float *bias,
                       float *c, size_t ldc,
                       size_t row_begin, size_t row_end, size_t panel_begin, size_t panel_end) {
    size_t panels = (n + NR - 1) / NR;
    if (row_end > m) row_end = m;
    if (panel_end > panels) panel_end = panels;
    if (row_begin >= row_end || panel_begin >= panel_end) return;
    if (k == 0) { /* C = bias (or 0) over the block */
        size_t j0 = panel_begin * NR, j1 = panel_end * NR < n ? panel_end * NR : n;
        for (size_t i = row_begin; i < row_end; i++)
            for (size_t j = j0; j < j1; j++) c[i * ldc + j] = bias ? bias[j] : 0.0f;
        return;
    }
    int resolvedPath = graft_gemm_resolved_path();
    if (path == GRAFT_GEMM_AUTO || !cpu_has(path)) path = resolvedPath;
    tile_fn tile = tile_portable;
    size_t mr = MR_C, width = NR; /* tile rows, tile columns (NR or NR/2) */
#if GRAFT_X86
    if (path == GRAFT_GEMM_AVX512) { tile = tile_avx512; mr = MR_AVX512; }
    else if (path == GRAFT_GEMM_AVX2 && row_end - row_begin <= 2) { tile = tile_avx2_rows; mr = 2; }
    else if (path == GRAFT_GEMM_AVX2) { tile = tile_avx2; mr = MR_AVX2; width = NR / 2; }
#endif
    size_t kcb = kc_block, mcb = mc_block;
    /* Up to four row tiles (A at most 4·MR rows × K, in L1/L2 anyway): K blocking buys nothing
     * and costs a second pass over C; stream each panel whole. Measured at 16 rows from memory:
     * 0.78–0.91× OpenBLAS's time unblocked vs 0.84–1.04× with K blocks of 256. */
    if (row_end - row_begin <= 4 * mr) kcb = k;
    /* Up to 128 rows (A[128 × 512] = 256 KB, half of L2) in one row block: splitting 128 rows
     * into 96 + 32 measured 0–1% slower on MiniLM 1×128. */
    if (row_end - row_begin <= 128) mcb = row_end - row_begin;
    /* Loop order: row block (A[MC × KC] in L2) → K block → panel → tile columns
     * (Bpanel[KC × width] in L1) → MR-row tiles. The first K block writes C (+ bias); later
     * ones add to it. */
    for (size_t i0 = row_begin; i0 < row_end; i0 += mcb) {
        size_t i1 = i0 + mcb < row_end ? i0 + mcb : row_end;
        for (size_t k0 = 0; k0 < k; k0 += kcb) {
            size_t kc = k - k0 < kcb ? k - k0 : kcb;
            for (size_t p = panel_begin; p < panel_end; p++) {
                for (size_t j0 = p * NR; j0 < p * NR + NR && j0 < n; j0 += width) {
                    const float *bp = packed + p * k * NR + k0 * NR + (j0 - p * NR); /* [kc][width], row stride NR */
                    size_t nc = n - j0 < width ? n - j0 : width;
                    const float *pb = (k0 == 0 && bias) ? bias + j0 : NULL;         /* [nc] */
                    /* Prefetch plan: the next panel's K block ([kc][NR], 2·kc lines) is split
                     * evenly over this panel's tile calls (both halves × row tiles), so the
                     * next panel is in cache when its first tile starts and memory is read
                     * throughout. Measured (single thread, weights rotated through 96 MB):
                     * 16 rows × K 384/1536 from ~51 to 65–74 GFLOP/s (OpenBLAS ~45–52); 128
                     * rows unchanged (~85). Only the thread's first panel streams cold. */
                    size_t tiles = (i1 - i0 + mr - 1) / mr, calls = tiles * (NR / width);
                    size_t first_call = (j0 - p * NR) / width * tiles;
                    const float *next = p + 1 < panel_end ? packed + (p + 1) * k * NR + k0 * NR : NULL;
                    for (size_t i = i0, t = 0; i < i1; i += mr, t++) {
                        size_t rows = i1 - i < mr ? i1 - i : mr, call = first_call + t;
                        size_t l0 = call * 2 * kc / calls, l1 = (call + 1) * 2 * kc / calls;
                        tile_prefetch pf = {p == panel_begin && j0 == p * NR && i == i0,
                                            next ? next + 16 * l0 : NULL, next ? l1 - l0 : 0};
                        tile(rows, kc, a + i * lda + k0, lda, bp, c + i * ldc + j0, ldc, nc, pb, k0 > 0, pf);
                    }
                }
            }
        }
    }
}
