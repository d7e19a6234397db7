"""How the polynomial coefficients in vmath.c were derived (numpy only; run with any Python 3).

Each fit is a weighted minimax approximation computed by Lawson's algorithm (iteratively
reweighted least squares) on 4000 Chebyshev nodes, in double precision. Coefficients are rounded
to float32 one at a time, lowest order first, and the higher ones refitted after each rounding so
that they absorb the rounding error of the lower ones (rounding all at once cost erf ~1 ulp).
erf's leading coefficient is fixed to 2/sqrt(pi), stored as a float hi + lo pair. The weight
makes the fitted error the one that matters in float:
  E  exp:  e^r = 1 + r + r^2 * (E0 + E1 r + ... + E4 r^4),  |r| <= ln2/2, relative error
           (max 3.1e-9 before rounding to float).
  A  erf, |x| < 1:  erf(x) = x * (2/sqrt(pi) + A1 u + ... + A6 u^6), u = x^2, absolute error
           of erf (max 5.7e-10).
  B  erfc, 1 <= x <= 4:  erfc(x) = exp(-x^2) * (B0 + B1 t + ... + B8 t^8), t = x - 2.5,
           absolute error of erfc (max 2.4e-9).
Prints the C initialisers.
"""
import math
import numpy as np


def fit(f, a, b, basis, weight, nodes=4000, iterations=30):
    k = np.arange(nodes)
    x = 0.5 * (a + b) + 0.5 * (b - a) * np.cos(np.pi * (k + 0.5) / nodes)
    A, y, w = basis(x), f(x), weight(x)
    lw = np.ones(nodes) / nodes
    for _ in range(iterations):
        sw = np.sqrt(lw) * w
        c = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)[0]
        e = np.abs((A @ c - y) * w)
        lw = lw * e
        lw /= lw.sum()
    return c, e.max()


erf = np.vectorize(math.erf)
erfc = np.vectorize(math.erfc)
h = math.log(2) / 2


def fit_rounded(f, a, b, columns, weight):
    """Fit, round the lowest coefficient to float32, refit the rest against what is left."""
    fixed = []
    for i in range(len(columns)):
        rest = columns[i:]
        g = (lambda x, fixed=tuple(fixed): f(x) - sum(c * col(x) for c, col in zip(fixed, columns)))
        c, err = fit(g, a, b, lambda x: np.stack([col(x) for col in rest], 1), weight)
        fixed.append(float(np.float32(c[0])))
    return np.array(fixed), err


two_over_sqrt_pi = 2 / math.sqrt(math.pi)
hi = float(np.float32(two_over_sqrt_pi))
print("A0 hi, lo: %.9ef, %.9ef" % (hi, np.float32(two_over_sqrt_pi - hi)))
fits = {
    "E": fit_rounded(lambda r: np.exp(r) - 1 - r, -h, h,
                     [lambda r, i=i: r ** (2 + i) for i in range(5)], lambda r: 1 / np.exp(r)),
    "A1..A6": fit_rounded(lambda x: erf(x) / x - two_over_sqrt_pi, 1e-6, 1.0,
                          [lambda x, i=i: x ** (2 * i) for i in range(1, 7)], lambda x: x),
    "B": fit_rounded(lambda x: erfc(x) * np.exp(x * x), 1.0, 4.0,
                     [lambda x, i=i: (x - 2.5) ** i for i in range(9)], lambda x: np.exp(-x * x)),
}
for name, (c, err) in fits.items():
    print(f"{name} (max weighted error {err:.2e}):", ", ".join("%.9ef" % np.float32(v) for v in c))
