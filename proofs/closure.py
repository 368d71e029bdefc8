"""The closure lemma: ReLU networks are closed under affine combinations, max and min."""

from __future__ import annotations

import numpy as np
import sympy as sp

from fvtrust.proofs.base import Proof, Step, numeric_step, reals, z3_step
from fvtrust.theory.relu import affine_combination, maximum, minimum, random_relu_network

STATEMENT = r"""If $u, v$ are ReLU networks then so are $\sum_k c_k f_k + c_0$,
$\max(u, v)$ and $\min(u, v)$; in particular
$\max(u,v) = \mathrm{ReLU}(u - v) + \mathrm{ReLU}(v) - \mathrm{ReLU}(-v)$ and
$\min(u,v) = \mathrm{ReLU}(u) - \mathrm{ReLU}(-u) - \mathrm{ReLU}(u - v)$."""

PROOF = r"""Stack the networks side by side (block-diagonal weights; a shallower one is
padded with identities $y = \mathrm{ReLU}(y) - \mathrm{ReLU}(-y)$). An affine combination
is one more linear map of the stacked outputs. For the maximum,
$v + \mathrm{ReLU}(u - v) = \max(u, v)$ and $v = \mathrm{ReLU}(v) - \mathrm{ReLU}(-v)$;
the minimum is $u - \mathrm{ReLU}(u - v)$. Each adds one hidden layer of width 3."""


def check() -> list[Step]:
    u, v = reals("u v")
    relu = lambda t: sp.Max(0, t)  # noqa: E731
    steps = [
        z3_step("v + ReLU(u - v) = max(u, v)", sp.Eq(v + relu(u - v), sp.Max(u, v)), [u, v]),
        z3_step("ReLU(u-v) + ReLU(v) - ReLU(-v) = max(u, v)",
                sp.Eq(relu(u - v) + relu(v) - relu(-v), sp.Max(u, v)), [u, v]),
        z3_step("ReLU(u) - ReLU(-u) - ReLU(u-v) = min(u, v)",
                sp.Eq(relu(u) - relu(-u) - relu(u - v), sp.Min(u, v)), [u, v]),
    ]
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(10):
        a = random_relu_network(3, list(rng.integers(1, 6, size=rng.integers(1, 4))), rng)
        b = random_relu_network(3, list(rng.integers(1, 6, size=rng.integers(1, 4))), rng)
        pts = rng.random((400, 3))
        worst = max(worst,
                    float(np.max(np.abs(maximum(a, b)(pts) - np.maximum(a(pts), b(pts))))),
                    float(np.max(np.abs(minimum(a, b)(pts) - np.minimum(a(pts), b(pts))))),
                    float(np.max(np.abs(affine_combination([a, b], [2.0, -3.0], 0.5)(pts)
                                        - (2 * a(pts) - 3 * b(pts) + 0.5)))))
    steps.append(numeric_step("torch max/min/affine networks match on 10 random pairs "
                              "of different depths", worst < 1e-10,
                              f"max |difference| = {worst:.2e}"))
    return steps


PROOF_OBJECT = Proof("closure", "Lemma", "Closure (network) lemma", STATEMENT, PROOF,
                     "theory/relu.py (maximum, minimum, affine_combination)",
                     "tests/theory/test_relu.py", check)
