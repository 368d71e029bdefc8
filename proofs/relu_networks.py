"""Theorem (ReLU networks, hence piecewise-affine and continuous units): impossible."""

from __future__ import annotations

import numpy as np
import sympy as sp

from proofs.base import Proof, Step, construction_steps, numeric_step, reals, z3_step
from theory.classes import ReLUNetworks
from theory.classes.relu_networks import canonical_network

STATEMENT = r"""Let $F$ be the ReLU networks on $[0,1]^d$. For every decoder $D$, every
$\varepsilon \in (0, 1/2)$ and every $z \notin \{0, \mathbf 1\}$ there are $f_\pm \in F$ with
$\Phi(f_+) = \Phi(f_-) = (0, \mathbf 1, 0, 1)$ and $f_+(z) - f_-(z) = 1 - 2\varepsilon$; so some
$f \in F$ has $|D(\Phi f)(z) - f(z)| \ge 1/2 - \varepsilon$. Hence the same holds for
piecewise-affine and for continuous units. More generally, for any network $f$,
$f_+ = \max(f, f_{\min} + (R-\varepsilon)\tau_{z,r})$, $f_- = \min(f, f_{\max} - (R-\varepsilon)\tau_{z,r})$
with $r < \min(\|z - a\|_1, \|z - b\|_1)$ share $\Phi(f)$ and differ by $\ge R - 2\varepsilon$ at $z$."""

PROOF = r"""$f_0(x) = 1 - \|x - \mathbf 1\|_1/d = \bar x$ is affine, with unique argmin $0$ and
argmax $\mathbf 1$. By the tent and closure lemmas $f_\pm$ are ReLU networks. Since
$0 \le (1-\varepsilon)\tau \le 1 - \varepsilon$ and $\tau$ vanishes near $0$ and $\mathbf 1$,
$f_+ \ge f_0$ with $f_+ \le \max(f_0, 1 - \varepsilon)$, so $f_+$ keeps value $0$ only at $0$
and value $1$ only at $\mathbf 1$; symmetrically for $f_-$. At $z$, $\tau = 1$ gives
$f_+(z) = \max(\bar z, 1-\varepsilon)$ and $f_-(z) = \min(\bar z, \varepsilon)$.
(z3 checks $d = 2$, $z = (\tfrac12, \tfrac12)$, $r = \tfrac12$, for all $\varepsilon \in (0, \tfrac12)$.)"""


def check() -> list[Step]:
    x0, x1, eps = reals("x0 x1 eps")
    half = sp.Rational(1, 2)
    f0 = (x0 + x1) / 2
    tau = sp.Max(0, 1 - (sp.Abs(x0 - half) + sp.Abs(x1 - half)) / half)
    plus, minus = sp.Max(f0, (1 - eps) * tau), sp.Min(f0, 1 - (1 - eps) * tau)
    box = [x0 >= 0, x0 <= 1, x1 >= 0, x1 <= 1, eps > 0, eps < half]
    at_a, at_b = sp.And(sp.Eq(x0, 0), sp.Eq(x1, 0)), sp.And(sp.Eq(x0, 1), sp.Eq(x1, 1))
    steps = []
    for name, g in (("f+", plus), ("f-", minus)):
        steps.append(z3_step(f"{name}: 0 <= f <= 1 on the cube", sp.And(g >= 0, g <= 1),
                             [x0, x1, eps], box))
        steps.append(z3_step(f"{name}: value 0 only at a = 0 (unique argmin)",
                             sp.Or(g > 0, at_a), [x0, x1, eps], box))
        steps.append(z3_step(f"{name}: value 1 only at b = 1 (unique argmax)",
                             sp.Or(g < 1, at_b), [x0, x1, eps], box))
    gap = (plus - minus).subs({x0: half, x1: half})
    steps.append(z3_step("f+(z) - f-(z) = 1 - 2 eps", sp.Eq(gap, 1 - 2 * eps), [eps], box[4:]))
    cls = ReLUNetworks()
    pair = cls.counterexample_pair(canonical_network(2), [0.5, 0.5], 0.01)
    pts = cls.grid.points
    closed_p = sp.lambdify((x0, x1, eps), plus)(pts[:, 0], pts[:, 1], 0.01)
    closed_m = sp.lambdify((x0, x1, eps), minus)(pts[:, 0], pts[:, 1], 0.01)
    diff = max(np.max(np.abs(pair.f_plus(pts) - closed_p)),
               np.max(np.abs(pair.f_minus(pts) - closed_m)))
    steps.append(numeric_step("torch networks f+- equal the closed forms (21x21 grid)",
                              diff < 1e-12, f"max |difference| = {diff:.2e}"))
    steps += construction_steps(cls, pair, "canonical f0, z = (1/2, 1/2)")
    random_f = cls.sample(7)
    phi = cls.visualize(random_f)
    z = cls.grid.points[np.argmin(np.abs(random_f(pts) - phi.midpoint))]
    steps += construction_steps(cls, cls.counterexample_pair(random_f, z, 0.01),
                                "random network")
    return steps


PROOF_OBJECT = Proof("relu_networks", "Theorem", "ReLU networks: impossible", STATEMENT, PROOF,
                     "theory/classes/relu_networks.py", "tests/theory/test_relu_networks.py",
                     check)
