"""The tent lemma: a 2-hidden-layer ReLU network that is a bump on an ℓ1 ball."""

from __future__ import annotations

import numpy as np
import sympy as sp

from fvtrust.proofs.base import Proof, Step, numeric_step, reals, z3_step
from fvtrust.theory.relu import tent_network

STATEMENT = r"""For $z \in [0,1]^d$ and $r > 0$ the network
$\tau_{z,r}(x) = \mathrm{ReLU}\big(1 - \tfrac1r\sum_i [\mathrm{ReLU}(x_i - z_i) +
\mathrm{ReLU}(z_i - x_i)]\big)$ satisfies $0 \le \tau \le 1$, $\tau(z) = 1$, $\tau(x) = 0$
whenever $\|x - z\|_1 \ge r$, and $|\tau(x) - \tau(y)| \le \|x - y\|_1 / r$."""

PROOF = r"""The inner sum is $\|x - z\|_1$ because $\mathrm{ReLU}(t) + \mathrm{ReLU}(-t) = |t|$.
So $\tau = \max(0, 1 - \|x-z\|_1/r)$: it is $1$ at $z$, at most $1$ everywhere, $0$ once
$\|x-z\|_1 \ge r$, and a composition of the $1/r$-Lipschitz map $x \mapsto 1 - \|x-z\|_1/r$
with the 1-Lipschitz ReLU. (Checked by z3 for $d = 2$ with $z$ and $r$ symbolic.)"""


def _tau(x: tuple[sp.Symbol, ...], z: tuple[sp.Symbol, ...], r: sp.Symbol) -> sp.Expr:
    inner = sum(sp.Max(0, xi - zi) + sp.Max(0, zi - xi) for xi, zi in zip(x, z, strict=True))
    return sp.Max(0, 1 - inner / r)


def check() -> list[Step]:
    x0, x1, y0, y1, z0, z1, r = reals("x0 x1 y0 y1 z0 z1 r")
    x, y, z = (x0, x1), (y0, y1), (z0, z1)
    tau_x, tau_y = _tau(x, z, r), _tau(y, z, r)
    box = [c for v in (*x, *y, *z) for c in (v >= 0, v <= 1)] + [r > 0]
    dist = sp.Abs(x0 - z0) + sp.Abs(x1 - z1)
    steps = [
        z3_step("0 <= tau <= 1", sp.And(tau_x >= 0, tau_x <= 1), [*x, *z, r], box[:4] + box[8:]),
        z3_step("tau(z) = 1", sp.Eq(_tau(z, z, r), 1), [*z, r], box[8:]),
        z3_step("||x - z||_1 >= r implies tau(x) = 0", sp.Eq(tau_x, 0), [*x, *z, r],
                [*box[:4], *box[8:], dist >= r]),
        z3_step("|tau(x) - tau(y)| <= ||x - y||_1 / r",
                sp.Abs(tau_x - tau_y) * r <= sp.Abs(x0 - y0) + sp.Abs(x1 - y1),
                [*x, *y, *z, r], box),
    ]
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(10):
        zc, rc = rng.random(3), float(rng.uniform(0.1, 1.0))
        pts = rng.random((500, 3))
        closed = np.maximum(0, 1 - np.abs(pts - zc).sum(1) / rc)
        worst = max(worst, float(np.max(np.abs(tent_network(zc, rc)(pts) - closed))))
    steps.append(numeric_step("tent_network (torch) equals the closed form (d = 3)",
                              worst < 1e-12, f"max |difference| = {worst:.2e}"))
    return steps


PROOF_OBJECT = Proof("tent", "Lemma", "Tent (simple ReLU) lemma", STATEMENT, PROOF,
                     "theory/relu.py (tent_network)", "tests/theory/test_relu.py", check)
