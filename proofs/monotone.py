"""Theorem (monotone units): impossible, even in d = 1."""

from __future__ import annotations

import sympy as sp

from fvtrust.proofs.base import Proof, Step, construction_steps, numeric_step, z3_step
from fvtrust.theory.classes import Monotone
from fvtrust.theory.functions import cube_symbols

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
(z3 checks the implemented $f_\pm$ for $d = 1, 2$.)"""


def _implemented_steps(d: int, z: list[float], eps: float) -> list[Step]:
    """z3 on the expressions the implementation returns (not on a copy of the formulas)."""
    cls = Monotone(d=d)
    pair = cls.counterexample_pair(cls.canonical_phi(), z, eps)
    xs = cube_symbols(d)
    ys = sp.symbols(f"y0:{d}", real=True)
    box = [c for v in (*xs, *ys) for c in (v >= 0, v <= 1)]
    below = [*(x <= y for x, y in zip(xs, ys, strict=True)),
             sp.Or(*(x < y for x, y in zip(xs, ys, strict=True)))]
    steps = []
    for name, g in (("f+", pair.f_plus.expression), ("f-", pair.f_minus.expression)):
        at_y = g.subs(dict(zip(xs, ys, strict=True)), simultaneous=True)
        steps.append(z3_step(f"d = {d}: implemented {name} is strictly monotone on the cube",
                             g < at_y, [*xs, *ys], box + below, kind="implementation"))
        ends = (g.subs(dict.fromkeys(xs, 0)), g.subs(dict.fromkeys(xs, 1)))
        steps.append(numeric_step(f"d = {d}: implemented {name} has f(0) = 0, f(1) = 1 (exact)",
                                  ends == (0, 1), f"f(0) = {ends[0]}, f(1) = {ends[1]}"))
    gap = (pair.f_plus.expression - pair.f_minus.expression).subs(
        dict(zip(xs, [sp.Rational(str(v)) for v in z], strict=True)))
    steps.append(numeric_step(f"d = {d}: f+(z) - f-(z) >= 1 - 2 eps (exact arithmetic)",
                              bool(gap >= 1 - 2 * sp.Rational(str(eps))), f"gap = {gap}"))
    return steps + construction_steps(cls, pair, f"d = {d}, z = {z}")


def check() -> list[Step]:
    return _implemented_steps(2, [0.5, 0.3], 1e-3) + _implemented_steps(1, [0.4], 1e-3)


PROOF_OBJECT = Proof("monotone", "Theorem", "Monotone units: impossible", STATEMENT, PROOF,
                     "theory/classes/monotone.py", "tests/theory/test_monotone.py", check)
