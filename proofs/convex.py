"""Theorem (convex units): impossible at the vertices."""

from __future__ import annotations

import sympy as sp

from proofs.base import Proof, Step, construction_steps, numeric_step, reals, z3_step
from theory.classes import Convex
from theory.classes.convex import convex_by_rules
from theory.functions import cube_symbols

STATEMENT = r"""Let $F$ be the convex units on $[0,1]^d$. For every vertex $z$, with
$b = \mathbf 1 - z$, $t(x) = \langle b - z, x - z\rangle/d$, $m = 3/10$, $a = z + m(b - z)$,
$\varepsilon' \in (0, 1/2)$, $c_+ = 1 - \varepsilon'/2$, $c_- = \varepsilon'/2$ and
$\mu = \varepsilon'/(2d(1-m)^2)$, the units
$g_\pm(x) = \max\big(\tfrac{t - m}{1 - m}, c_\pm\tfrac{m - t}{m}\big) + \mu\|x - a\|_2^2$
are convex with unique argmin $a$ (value 0) and unique argmax $b$ (value
$1 + \varepsilon'/2$), and $g_+(z) - g_-(z) = 1 - \varepsilon'$, i.e. at least
$R(1 - 2\varepsilon')$. Hence no decoder beats chance at the vertices."""

PROOF = r"""Each $g_\pm$ is a maximum of affine functions plus a positive multiple of a square
norm: convex. Both pieces of the maximum are $\ge 0$ and vanish together only where
$t = m$, and the quadratic vanishes only at $a$ (where $t = m$): unique argmin. A convex
function attains its maximum at a vertex; at $b$ the value is $1 + \mu d (1 - m)^2$ and at any
other vertex both pieces are $< 1$ and $\|v - a\|^2 < \|b - a\|^2$ because $m < 1/2$.
At $z$, $t = 0$: $g_\pm(z) = c_\pm + \mu\|z - a\|^2$, so the difference is $c_+ - c_-$.
(z3 checks $d = 2$, $z = 0$, all $\varepsilon' \in (0, 1/2)$.)"""


def check() -> list[Step]:
    x0, x1, eps = reals("x0 x1 eps")
    m = sp.Rational(3, 10)
    t = (x0 + x1) / 2
    mu = eps / (2 * 2 * (1 - m) ** 2)
    quad = mu * ((x0 - m) ** 2 + (x1 - m) ** 2)
    top = 1 + mu * 2 * (1 - m) ** 2
    box = [x0 >= 0, x0 <= 1, x1 >= 0, x1 <= 1, eps > 0, eps < sp.Rational(1, 2)]
    at_a = sp.And(sp.Eq(x0, m), sp.Eq(x1, m))
    at_b = sp.And(sp.Eq(x0, 1), sp.Eq(x1, 1))
    steps: list[Step] = []
    gs = {}
    for name, c in (("g+", 1 - eps / 2), ("g-", eps / 2)):
        g = sp.Max((t - m) / (1 - m), c * (m - t) / m) + quad
        gs[name] = g
        steps.append(z3_step(f"{name}: g >= 0, value 0 only at a", sp.And(g >= 0, sp.Or(g > 0, at_a)),
                             [x0, x1, eps], box))
        steps.append(z3_step(f"{name}: g <= g(b), equality only at b",
                             sp.And(g <= top, sp.Or(g < top, at_b)), [x0, x1, eps], box))
    steps.append(z3_step("g+(0) - g-(0) = 1 - eps",
                         sp.Eq((gs["g+"] - gs["g-"]).subs({x0: 0, x1: 0}), 1 - eps), [eps],
                         box[4:]))
    cls = Convex()
    pair = cls.counterexample_pair(cls.canonical_phi(), [0.0, 0.0], 1e-3)
    xs = cube_symbols(2)
    ok = all(convex_by_rules(p.expression, xs)
             for p in (pair.f_plus, pair.f_minus))
    steps.append(numeric_step("implemented pair is convex by the DCP rules (sympy)", ok,
                              "max of affine + nonnegative * square of affine"))
    return steps + construction_steps(cls, pair, "z = 0")


PROOF_OBJECT = Proof("convex", "Theorem", "Convex units: impossible", STATEMENT, PROOF,
                     "theory/classes/convex.py", "tests/theory/test_convex.py", check)
