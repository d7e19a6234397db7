/* vmath.h: vectorised exp / erf and the fused kernels built on them (GELU, sigmoid,
 * softmax row) for GraftCore's elementwise and reduction kernels. Internal to Graft (not part of
 * graft.h): the vmath_ prefix keeps these out of libgraft's exported graft_* namespace.
 *
 * Buffers: every function reads n contiguous floats from x and writes n contiguous floats to y.
 * x == y (in place) is allowed; other overlaps are not. n == 0 does nothing. No alignment is
 * required.
 *
 * Implementation: an AVX2+FMA path (8 floats per step, the tail through masked loads/stores so
 * an element's result never depends on its position) chosen once at run time with
 * __builtin_cpu_supports, and a portable fallback calling libm. GRAFT_VMATH=scalar in the
 * environment (read on first use) forces the fallback. Accuracy of the AVX2 path: exp within
 * ~2 ulp, erf within ~1.5e-7 absolute, GELU within 1.2e-7·max(1, |x|) absolute and 5.1e-7
 * relative (down to x = -13.04, where results become denormal); see vmath.c. */
#ifndef GRAFT_VMATH_H
#define GRAFT_VMATH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = exp(x[i]). Overflow gives +inf, underflow 0 (denormals in between), NaN stays NaN. */
void vmath_exp(const float *x, float *y, size_t n);
/* y[i] = erf(x[i]); saturates to ±1, erf(±0) = ±0, NaN stays NaN. */
void vmath_erf(const float *x, float *y, size_t n);
/* y[i] = 0.5·x·(1 + erf(x/√2)), exact GELU (ONNX Gelu approximate="none"). +inf gives +inf,
 * -inf gives NaN (-inf·0, as the formula and PyTorch), NaN stays NaN. */
void vmath_gelu_erf(const float *x, float *y, size_t n);
/* y[i] = 1 / (1 + exp(-x[i])). */
void vmath_sigmoid(const float *x, float *y, size_t n);
/* Softmax of one contiguous row of n floats: m = max (NaN ignored, as `v > m` does),
 * y = exp(x - m) / sum. A row that is all -inf (or holds +inf or NaN) gives NaN everywhere,
 * like the formula and GraftCore's Swift softmax. */
void vmath_softmax_row(const float *x, float *y, size_t n);

/* One row of a broadcast float32 binary operation: o[j] = a[j·sa] OP b[j·sb] for j < n
 * (strides in elements; 0 repeats one value). o may be a or b (in place); other overlaps are
 * not allowed. op: VMATH_ARITH_*. Plain C loops the compiler vectorises (arith.c). */
enum { VMATH_ARITH_ADD = 0, VMATH_ARITH_SUB = 1, VMATH_ARITH_MUL = 2, VMATH_ARITH_DIV = 3 };
void vmath_arith_row(int op, const float *a, ptrdiff_t sa, const float *b, ptrdiff_t sb, float *o, size_t n);

/* Fused rows (fused.c), for the nodes GraftCore's fusion pass writes.
 *
 * Softmax of one row of n attention logits after a scale and an additive mask:
 *     v[j] = x[j]·scale + mask[j·mask_stride]        (flags 0)
 *     v[j] = (x[j] + mask[j·mask_stride])·scale      (VMATH_SOFTMAX_MASK_FIRST)
 * with ÷scale for ·scale under VMATH_SOFTMAX_DIVIDE; mask NULL: no mask term; mask_stride 0
 * repeats one value. y = softmax(v) as vmath_softmax_row. x, mask: n floats (strided); y: n
 * floats, may be x. Each operation rounds as the unfused Mul/Div, Add and Softmax nodes do. */
enum { VMATH_SOFTMAX_MASK_FIRST = 1, VMATH_SOFTMAX_DIVIDE = 2 };
void vmath_softmax_scaled_row(const float *x, const float *mask, ptrdiff_t mask_stride, float scale, int flags,
                              float *y, size_t n);
/* The same on an explicit path (GRAFT_VMATH_SCALAR / _AVX2), for tests: 0, or -1 when the path
 * is not available on this CPU. */
int vmath_softmax_scaled_row_on(int path, const float *x, const float *mask, ptrdiff_t mask_stride, float scale,
                                int flags, float *y, size_t n);

/* y[i] = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), GELU's tanh approximation (ONNX Gelu
 * approximate="tanh"), computed as x·sigmoid(2u) with vmath_sigmoid; x == y allowed. The _on
 * form runs on an explicit path for tests (0, or -1 when the path is not available). */
void vmath_gelu_tanh(const float *x, float *y, size_t n);
int vmath_gelu_tanh_on(int path, const float *x, float *y, size_t n);

/* Which path the functions above use: GRAFT_VMATH_SCALAR or GRAFT_VMATH_AVX2. */
enum { GRAFT_VMATH_SCALAR = 0, GRAFT_VMATH_AVX2 = 1 };
int vmath_path(void);

/* For tests and benchmarks: run one op on an explicit path (GRAFT_VMATH_OP_*). Returns 0, or -1
 * when the path is not available on this CPU or op is unknown. */
enum {
    GRAFT_VMATH_OP_EXP = 0,
    GRAFT_VMATH_OP_ERF = 1,
    GRAFT_VMATH_OP_GELU_ERF = 2,
    GRAFT_VMATH_OP_SIGMOID = 3,
    GRAFT_VMATH_OP_SOFTMAX_ROW = 4,
};
int vmath_run(int op, int path, const float *x, float *y, size_t n);

#ifdef __cplusplus
}
#endif

#endif
