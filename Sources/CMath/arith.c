/* arith.c: float32 add / sub / mul / div over one broadcast row (vmath_arith_row in vmath.h).
 *
 * Why in C: GraftCore's generic elementwise loop takes the operation as a Swift closure, and
 * once that loop is handed to another thread the closure is called per element through a
 * pointer (no inlining, no vectorisation). These four operations are the hot ones in
 * transformer graphs (bias, residual, attention mask, scale), so they get plain loops here
 * that the C compiler vectorises; the operation is chosen once per row, outside the loop.
 * IEEE semantics are those of Swift's operators (no fast-math). */
#include "vmath.h"

#define ARITH_LOOPS(OP)                                                       \
    do {                                                                      \
        if (sa == 1 && sb == 1) {                                             \
            for (size_t j = 0; j < n; j++) o[j] = a[j] OP b[j];              \
        } else if (sa == 1 && sb == 0) {                                      \
            const float y = b[0];                                             \
            for (size_t j = 0; j < n; j++) o[j] = a[j] OP y;                 \
        } else if (sa == 0 && sb == 1) {                                      \
            const float x = a[0];                                             \
            for (size_t j = 0; j < n; j++) o[j] = x OP b[j];                 \
        } else {                                                              \
            for (size_t j = 0; j < n; j++) o[j] = a[(ptrdiff_t)j * sa] OP b[(ptrdiff_t)j * sb]; \
        }                                                                     \
    } while (0)

void vmath_arith_row(int op, const float *a, ptrdiff_t sa, const float *b, ptrdiff_t sb, float *o, size_t n) {
    switch (op) {
    case VMATH_ARITH_ADD: ARITH_LOOPS(+); break;
    case VMATH_ARITH_SUB: ARITH_LOOPS(-); break;
    case VMATH_ARITH_MUL: ARITH_LOOPS(*); break;
    case VMATH_ARITH_DIV: ARITH_LOOPS(/); break;
    default: break;
    }
}
