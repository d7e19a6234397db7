"""How the polynomial coefficients in vmath.c were derived (numpy only; run with any Python 3).

Each fit is a weighted minimax approximation computed by Lawson's algorithm (iteratively
reweighted least squares) on 4000 Chebyshev nodes, in double precision; the coefficients are
then rounded to float32. The weight makes the fitted error the one that matters in float:
  E  exp:  e^r = 1 + r + r^2 * (E0 + E1 r + ... + E4 r^4),  |r| <= ln2/2, relative error
           (max 3.1e-9 before rounding to float).
  A  erf, |x| < 1:  erf(x) = x * (A0 + A1 u + ... + A6 u^6), u = x^2, absolute error of erf
           (max 5.7e-10).
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
fits = {
    "E": fit(lambda r: np.exp(r) - 1 - r, -h, h,
             lambda r: np.stack([r ** (2 + i) for i in range(5)], 1), lambda r: 1 / np.exp(r)),
    "A": fit(lambda x: erf(x) / x, 1e-6, 1.0,
             lambda x: np.stack([x ** (2 * i) for i in range(7)], 1), lambda x: x),
    "B": fit(lambda x: erfc(x) * np.exp(x * x), 1.0, 4.0,
             lambda x: np.stack([(x - 2.5) ** i for i in range(9)], 1), lambda x: np.exp(-x * x)),
}
for name, (c, err) in fits.items():
    print(f"{name} (max weighted error {err:.2e}):", ", ".join("%.9ef" % np.float32(v) for v in c))
