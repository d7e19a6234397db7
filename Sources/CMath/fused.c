/* fused.c: row kernels for the nodes GraftCore's fusion pass writes (vmath.h, "Fused rows").
 *
 * Each keeps the arithmetic of the ONNX chain it replaces, operation by operation in the same
 * order (one statement per operation, so the compiler does not contract them into an FMA): the
 * fused result is the unfused one without the intermediate tensors and their extra passes. */
#include "vmath.h"

/* Separate roundings, as the unfused nodes: no multiply-add contraction in this file. */
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define GRAFT_HAVE_AVX2 1
#else
#define GRAFT_HAVE_AVX2 0
#endif

/* v = x·s + m or (x + m)·s (or x / s ...), written to y. The loops are plain C; the AVX2 copy
 * below is the same source compiled for AVX2 so that it is vectorised 8 wide. */
#define SCALED_PREPASS_BODY                                                              \
    do {                                                                                 \
        const int first = flags & VMATH_SOFTMAX_MASK_FIRST;                              \
        const int divide = flags & VMATH_SOFTMAX_DIVIDE;                                 \
        if (!mask) {                                                                     \
            if (divide) for (size_t j = 0; j < n; j++) y[j] = x[j] / scale;              \
            else for (size_t j = 0; j < n; j++) y[j] = x[j] * scale;                     \
        } else if (mask_stride == 1 && !first) {                                         \
            if (divide) for (size_t j = 0; j < n; j++) { float t = x[j] / scale; y[j] = t + mask[j]; } \
            else for (size_t j = 0; j < n; j++) { float t = x[j] * scale; y[j] = t + mask[j]; }        \
        } else if (mask_stride == 1) {                                                   \
            if (divide) for (size_t j = 0; j < n; j++) { float t = x[j] + mask[j]; y[j] = t / scale; } \
            else for (size_t j = 0; j < n; j++) { float t = x[j] + mask[j]; y[j] = t * scale; }        \
        } else {                                                                         \
            for (size_t j = 0; j < n; j++) {                                             \
                const float m = mask[(ptrdiff_t)j * mask_stride];                        \
                float t;                                                                 \
                if (first) { t = x[j] + m; y[j] = divide ? t / scale : t * scale; }      \
                else { t = divide ? x[j] / scale : x[j] * scale; y[j] = t + m; }         \
            }                                                                            \
        }                                                                                \
    } while (0)

static void prepass_portable(const float *x, const float *mask, ptrdiff_t mask_stride, float scale, int flags,
                             float *y, size_t n) {
    SCALED_PREPASS_BODY;
}

#if GRAFT_HAVE_AVX2
__attribute__((target("avx2,fma")))
static void prepass_avx2(const float *x, const float *mask, ptrdiff_t mask_stride, float scale, int flags,
                         float *y, size_t n) {
    SCALED_PREPASS_BODY;
}
#endif

int vmath_softmax_scaled_row_on(int path, const float *x, const float *mask, ptrdiff_t mask_stride, float scale,
                                int flags, float *y, size_t n) {
    if (path == GRAFT_VMATH_AVX2) {
#if GRAFT_HAVE_AVX2
        if (vmath_run(GRAFT_VMATH_OP_SOFTMAX_ROW, path, y, y, 0) != 0) return -1; /* AVX2 unavailable */
        prepass_avx2(x, mask, mask_stride, scale, flags, y, n);
#else
        return -1;
#endif
    } else if (path == GRAFT_VMATH_SCALAR) {
        prepass_portable(x, mask, mask_stride, scale, flags, y, n);
    } else {
        return -1;
    }
    return vmath_run(GRAFT_VMATH_OP_SOFTMAX_ROW, path, y, y, n);
}

void vmath_softmax_scaled_row(const float *x, const float *mask, ptrdiff_t mask_stride, float scale, int flags,
                              float *y, size_t n) {
    (void)vmath_softmax_scaled_row_on(vmath_path(), x, mask, mask_stride, scale, flags, y, n);
}

/* MARK: - GELU, tanh approximation
 *
 * 0.5·x·(1 + tanh(u)) = x·sigmoid(2u), u = √(2/π)·(x + 0.044715·x³): the argument is computed
 * for a block of up to 256 elements into a stack buffer, vmath's sigmoid (AVX2 exp or libm on
 * the chosen path) runs over the block, and the product with x is written out. The sigmoid form
 * avoids the cancellation of 1 + tanh(u) for negative u. */
enum { GELU_TANH_BLOCK = 256 };

int vmath_gelu_tanh_on(int path, const float *x, float *y, size_t n) {
    float z[GELU_TANH_BLOCK];
    const float k2 = 1.5957691216057308f; /* 2·√(2/π) */
    for (size_t i = 0; i < n; i += GELU_TANH_BLOCK) {
        const size_t m = n - i < GELU_TANH_BLOCK ? n - i : GELU_TANH_BLOCK;
        for (size_t j = 0; j < m; j++) {
            const float v = x[i + j];
            const float cube = v * v * v;
            z[j] = k2 * (v + 0.044715f * cube);
        }
        if (vmath_run(GRAFT_VMATH_OP_SIGMOID, path, z, z, m) != 0) return -1;
        for (size_t j = 0; j < m; j++) y[i + j] = x[i + j] * z[j];
    }
    return 0;
}

void vmath_gelu_tanh(const float *x, float *y, size_t n) { (void)vmath_gelu_tanh_on(vmath_path(), x, y, n); }
