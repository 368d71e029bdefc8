"""Theorem (monotone units): impossible, even in d = 1."""

from __future__ import annotations

import sympy as sp

from proofs.base import Proof, Step, construction_steps, reals, z3_step
from theory.classes import Monotone

STATEMENT = r"""Let $F$ be the coordinate-wise non-decreasing units on $[0,1]^d$. Every strictly
monotone $f$ has $x_{\min} = 0$, $x_{\max} = \mathbf 1$, so $\Phi$ carries only $f(0), f(\mathbf 1)$.
For $z \notin \{0, \mathbf 1\}$ and $\varepsilon \in (0, 1)$, with $s = \max_i x_i$,
$m = \min_i x_i$, $\bar x$ the mean,
$f_+ = (1-\varepsilon)\min(1, s(x)/s(z)) + \varepsilon\bar x$ and
$f_- = (1-\varepsilon)\max(0, (m(x) - m(z))/(1 - m(z))) + \varepsilon\bar x$ are strictly
monotone, $\Phi(f_\pm) = (0, \mathbf 1, 0, 1)$ and $f_+(z) - f_-(z) = 1 - \varepsilon$.
For $d \ge 2$ the 2-AFC between $e_1$ and $e_2$ is at chance too
($(1-\varepsilon)x_k + \varepsilon\bar x$, $k = 1, 2$)."""

PROOF = r"""$\max$, $\min$, $\min(1,\cdot)$, $\max(0,\cdot)$ and positive scalings preserve
monotonicity, and $\varepsilon\bar x$ makes it strict, so $0$ and $\mathbf 1$ are the unique
extremes with values $0$ and $(1-\varepsilon) + \varepsilon = 1$. At $z$,
$\min(1, s(z)/s(z)) = 1$ and $\max(0, 0) = 0$; the $\varepsilon\bar z$ terms cancel.
(z3 checks $d = 2$, $z = (\tfrac12, \tfrac13)$, all $\varepsilon \in (0, 1)$.)"""


def check() -> list[Step]:
    x0, x1, y0, y1, eps = reals("x0 x1 y0 y1 eps")
    z0, z1 = sp.Rational(1, 2), sp.Rational(1, 3)
    mean = lambda u, v: (u + v) / 2  # noqa: E731
    plus = lambda u, v: (1 - eps) * sp.Min(1, sp.Max(u, v) / z0) + eps * mean(u, v)  # noqa: E731
    minus = lambda u, v: ((1 - eps) * sp.Max(0, (sp.Min(u, v) - z1) / (1 - z1))  # noqa: E731
                          + eps * mean(u, v))
    box = [c for v in (x0, x1, y0, y1) for c in (v >= 0, v <= 1)] + [eps > 0, eps < 1]
    strictly_below = [x0 <= y0, x1 <= y1, sp.Or(x0 < y0, x1 < y1)]
    steps = []
    for name, g in (("f+", plus), ("f-", minus)):
        steps.append(z3_step(f"{name}: strictly monotone on the cube", g(x0, x1) < g(y0, y1),
                             [x0, x1, y0, y1, eps], box + strictly_below))
        steps.append(z3_step(f"{name}: f(0) = 0 and f(1) = 1",
                             sp.And(sp.Eq(g(0, 0), 0), sp.Eq(g(1, 1), 1)), [eps], box[-2:]))
    steps.append(z3_step("f+(z) - f-(z) = 1 - eps",
                         sp.Eq(plus(z0, z1) - minus(z0, z1), 1 - eps), [eps], box[-2:]))
    cls = Monotone()
    pair = cls.counterexample_pair(cls.canonical_phi(), [0.5, 0.3], 1e-3)
    return steps + construction_steps(cls, pair, "z = (0.5, 0.3)")


PROOF_OBJECT = Proof("monotone", "Theorem", "Monotone units: impossible", STATEMENT, PROOF,
                     "theory/classes/monotone.py", "tests/theory/test_monotone.py", check)
