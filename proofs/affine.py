"""Theorems (affine units): reliable in d = 1, impossible for d ≥ 2 except locally."""

from __future__ import annotations

import numpy as np
import sympy as sp

from fvtrust.proofs.base import Proof, Step, construction_steps, numeric_step, reals, z3_step
from fvtrust.theory.classes import Affine
from fvtrust.theory.decoders import AffineD1Decoder
from fvtrust.theory.functions import AffineFunction

STATEMENT = r"""(i) $d = 1$: for $f(x) = wx + c$ the decoder $D^*(\Phi)(x) = f_{\min} + R|x - x_{\min}|$
is exact. (ii) $d \ge 2$: $\Phi$ reveals only the sign pattern of $w$ and $\sum_i |w_i| = R$; at any
vertex $z \notin \{x_{\min}, x_{\max}\}$ the value $f(z)$ ranges over $(f_{\min}, f_{\max})$, so tasks
(A)–(C) are at chance. (iii) Locally, $|f(x) - f_{\max}| \le R\|x - x_{\max}\|_1$, so the band
decoder with $L = R$ errs at most $R\rho/2$ within $\ell_1$ distance $\rho$ of $x_{\max}$."""

PROOF = r"""(i) If $w > 0$ then $x_{\min} = 0$, $R = w$, $f(x) = c + wx = f_{\min} + R|x - 0|$; if $w < 0$
then $x_{\min} = 1$, $f_{\min} = c + w$, $R = -w$ and $f_{\min} + R|x - 1| = c + w + (-w)(1 - x) = c + wx$.
(ii) With $|w_i| = Rp_i$ and $t_i = z_i$ or $1 - z_i$ by the sign of $w_i$,
$f(z) = f_{\min} + R\sum_i p_i t_i$; a mixing vertex has $t_i = 1$, $t_j = 0$ for some $i, j$, and
moving the mass of $p$ between them (keeping every $p_k > 0$) moves $f(z)$ across
$(f_{\min} + R\delta, f_{\max} - R\delta)$ without changing $\Phi$. (iii) $|\langle w, x - y\rangle|
\le \max_i|w_i|\,\|x - y\|_1 \le R\|x - y\|_1$."""


def check() -> list[Step]:
    x, w, c = reals("x w c")
    pos, neg = c + w * x, c + w * x
    steps = [
        z3_step("d = 1, w > 0: f_min + R|x - 0| = f(x)", sp.Eq(c + w * sp.Abs(x), pos),
                [x, w, c], [w > 0, x >= 0, x <= 1]),
        z3_step("d = 1, w < 0: f_min + R|x - 1| = f(x)", sp.Eq(c + w - w * sp.Abs(x - 1), neg),
                [x, w, c], [w < 0, x >= 0, x <= 1]),
    ]
    # d = 2 on the implemented members: same sign pattern and Σ|w| (hence the same Φ), values
    # at (1, 0) near both ends of the range, and the 2-AFC (1, 0) vs (0, 1) flipped.
    cls2 = Affine(2)
    f = AffineFunction([0.6, 0.4], 0.1)
    pair = cls2.counterexample_pair(f, [1.0, 0.0], 1e-3)
    wp, wm = pair.f_plus.w, pair.f_minus.w
    steps.append(numeric_step("d = 2: f+- share the sign pattern and sum |w| of f",
                              all(np.array_equal(np.sign(w), np.sign(f.w))
                                  and np.isclose(np.abs(w).sum(), np.abs(f.w).sum()) for w in (wp, wm)),
                              f"w+ = {wp.round(4).tolist()}, w- = {wm.round(4).tolist()}"))
    e1, e2 = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    flip = (float(pair.f_plus(e1)[0] - pair.f_plus(e2)[0]), float(pair.f_minus(e2)[0] - pair.f_minus(e1)[0]))
    steps.append(numeric_step("d = 2: the 2-AFC (1,0) vs (0,1) flips between f+ and f- (by > R/4)",
                              min(flip) > 0.25 * pair.phi.range, f"{flip[0]:.4f}, {flip[1]:.4f}"))
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(50):
        f = AffineFunction(rng.normal(size=1), float(rng.normal()))
        cls1 = Affine(1)
        phi = cls1.visualize(f)
        pts = cls1.grid.points
        worst = max(worst, float(np.max(np.abs(AffineD1Decoder()(phi, pts) - f(pts)))))
    steps.append(numeric_step("AffineD1Decoder exact on 50 random affine units",
                              worst < 1e-12, f"max error {worst:.1e}"))
    cls = Affine(2)
    pair = cls.counterexample_pair(AffineFunction([0.3, -0.7], 0.2), [1.0, 1.0], 1e-3)
    return steps + construction_steps(cls, pair, "w = (0.3, -0.7), z = (1, 1)")


PROOF_OBJECT = Proof("affine", "Theorem", "Affine units: reliable iff d = 1", STATEMENT, PROOF,
                     "theory/classes/affine.py", "tests/theory/test_affine.py", check)
