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
GELU (v_gelu_erf), with y = |x| in [0, 14.5]:
  P, Q     1/2 erfcx(y/sqrt(2)) = P(y) / Q(y), P of degree 4, Q of degree 5 with Q0 = 1, relative
           error. A rational minimax fit: Sanathanan-Koerner iteration (linearised P - R Q = 0,
           reweighted by the previous Q) with Lawson weights; then Q is rounded to float, P is
           refitted against the rounded Q (linear) and rounded (max 5.9e-9 before rounding,
           2.4e-8 after).
  F        e^(-q/2) = F0 + F1 q + ... + F5 q^5, |q| <= ln2 (q = -2r, see vmath.c), F0 = 1 fixed,
           relative error (max 9.2e-8 with the float coefficients).
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


# GELU: R(y) = 1/2 erfcx(y/sqrt 2) = P(y) / Q(y) on [0, 14.5], relative error.
def fit_rational(y, g, m, n, q_fixed=None, iterations=150):
    """Relative minimax P/Q (Q0 = 1) by SK iteration + Lawson; with q_fixed, only P (linear)."""
    q_prev, lw, best = np.ones_like(y), np.ones_like(y) / len(y), (np.inf, None)
    powers = np.stack([y ** j for j in range(m + 1)], 1)
    for _ in range(iterations):
        if q_fixed is None:
            w = np.sqrt(lw) / (g * q_prev)
            A = np.concatenate([powers, -np.stack([g * y ** j for j in range(1, n + 1)], 1)], 1)
            c = np.linalg.lstsq(A * w[:, None], g * w, rcond=None)[0]
            p, q = c[:m + 1], np.concatenate([[1.0], c[m + 1:]])
        else:
            q = q_fixed
            w = np.sqrt(lw) / g
            A = powers / np.polyval(q[::-1], y)[:, None]
            p = np.linalg.lstsq(A * w[:, None], g * w, rcond=None)[0]
        Q = np.polyval(q[::-1], y)
        e = np.abs(np.polyval(p[::-1], y) / Q / g - 1)
        if e.max() < best[0]:
            best = (e.max(), (p.copy(), q.copy()))
        if q_fixed is None:
            q_prev = Q
        lw = lw * (e + 1e-30)
        lw /= lw.sum()
    return best


nodes = 4000
y = 7.25 + 7.25 * np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
g = 0.5 * erfc(y / math.sqrt(2)) * np.exp(y * y / 2)
err, (p, q) = fit_rational(y, g, 4, 5)
q32 = np.array([float(np.float32(v)) for v in q])
_, (p, _) = fit_rational(y, g, 4, 5, q_fixed=q32)
p32 = np.array([float(np.float32(v)) for v in p])
err32 = np.abs(np.polyval(p32[::-1], y) / np.polyval(q32[::-1], y) / g - 1).max()
print(f"GELU P (max relative error of P/Q {err:.2e}, {err32:.2e} with float coefficients):",
      ", ".join("%.9ef" % v for v in p32))
print("GELU Q:", ", ".join("%.9ef" % v for v in q32))

# GELU: e^(-q/2) on |q| <= ln2 (a little wider: k comes from the rounded y^2), F0 = 1.
ln2 = math.log(2)
F = fit_rounded(lambda q: np.exp(-q / 2) - 1, -1.001 * ln2, 1.001 * ln2,
                [lambda q, i=i: q ** i for i in range(1, 6)], lambda q: np.exp(q / 2))[0]
qs = np.linspace(-1.001 * ln2, 1.001 * ln2, 20001)
err = np.abs((1 + sum(c * qs ** (i + 1) for i, c in enumerate(F))) * np.exp(qs / 2) - 1).max()
print(f"GELU F (max relative error {err:.2e}): 1.000000000e+00f,", ", ".join("%.9ef" % np.float32(v) for v in F))
