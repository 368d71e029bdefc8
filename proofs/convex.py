"""Theorem (convex units): impossible at the vertices."""

from __future__ import annotations

import sympy as sp

from fvtrust.proofs.base import Proof, Step, construction_steps, numeric_step, witness_steps, z3_step
from fvtrust.theory.classes import Convex
from fvtrust.theory.classes.convex import convex_by_rules
from fvtrust.theory.functions import cube_symbols
from fvtrust.theory.tasks import Task

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
(z3 checks the implemented $g_\pm$ in $d = 2$ at two vertices.)"""


def _implemented_steps(z: list[float], eps: float) -> list[Step]:
    """z3 and the DCP rules on the expressions the implementation returns."""
    cls = Convex()
    pair = cls.counterexample_pair(cls.canonical_phi(), z, eps)
    xs = cube_symbols(2)
    box = [c for x in xs for c in (x >= 0, x <= 1)]
    phi = pair.phi
    at_a = sp.And(*(sp.Eq(x, sp.Rational(str(v))) for x, v in zip(xs, phi.x_min, strict=True)))
    at_b = sp.And(*(sp.Eq(x, sp.Rational(str(v))) for x, v in zip(xs, phi.x_max, strict=True)))
    lo, hi = sp.Rational(str(phi.v_min)), sp.Rational(str(phi.v_max))
    steps: list[Step] = []
    for name, g in (("f+", pair.f_plus.expression), ("f-", pair.f_minus.expression)):
        steps.append(z3_step(f"z = {z}: implemented {name} >= f_min, equal only at x_min",
                             sp.And(g >= lo, sp.Or(g > lo, at_a)), list(xs), box, kind="implementation"))
        steps.append(z3_step(f"z = {z}: implemented {name} <= f_max, equal only at x_max",
                             sp.And(g <= hi, sp.Or(g < hi, at_b)), list(xs), box, kind="implementation"))
    ok = all(convex_by_rules(p.expression, xs) for p in (pair.f_plus, pair.f_minus))
    steps.append(numeric_step(f"z = {z}: implemented pair is convex by the DCP rules (sympy)", ok,
                              "max of affine + nonnegative * square of affine"))
    return steps + construction_steps(cls, pair, f"z = {z}")


def check() -> list[Step]:
    cls = Convex()
    local = cls.explicit_witness(Task.LOCAL, 1e-3)
    return (_implemented_steps([0.0, 0.0], 1e-3) + _implemented_steps([1.0, 0.0], 1e-3)
            + witness_steps(cls, local, f"task D, z = {local.queries[0].tolist()} near x_max"))


PROOF_OBJECT = Proof("convex", "Theorem", "Convex units: impossible", STATEMENT, PROOF,
                     "theory/classes/convex.py", "tests/theory/test_convex.py", check)
