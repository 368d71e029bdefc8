"""Theorem (ERM-fitted networks): the training data do not pin the visualization down."""

from __future__ import annotations

import numpy as np
import sympy as sp

from proofs.base import Proof, Step, construction_steps, numeric_step, reals, z3_step
from theory.classes import ERMNetworks
from theory.classes.erm import move_argmax
from theory.domain import l1

STATEMENT = r"""Let $\hat f$ be a ReLU network fitted to data $S$, and let $F_S$ be the networks
whose training loss on $S$ is at most $\hat f$'s. For every $\varepsilon \in (0, R/2)$ and every
$z \notin S \cup \{a, b\}$ there are $f_\pm \in F_S$ with $\Phi(f_\pm) = \Phi(\hat f)$ and
$f_+(z) - f_-(z) \ge R - 2\varepsilon$. Corollary: for any $x^* \notin S$,
$\max(\hat f, f_{\min} + (R + 1)\tau_{x^*, r})$ has the same loss and its unique argmax at $x^*$."""

PROOF = r"""Take $r$ below the $\ell_1$ distance from $z$ to $S \cup \{a, b\}$. Then $\tau_{z,r}$
vanishes on $S$, so $f_\pm = \hat f$ there and the training loss is unchanged; $\Phi$ and the
gap follow as for ReLU networks. For the corollary, the raised tent reaches
$f_{\max} + 1 > f_{\max}$ at $x^*$ only and equals $f_{\min} \le \hat f$ off $B(x^*, r)$."""


def check() -> list[Step]:
    y, lo, hi, h = reals("y lo hi h")
    steps = [
        z3_step("where tau = 0: max(f, lo + h*tau) = f for f >= lo",
                sp.Eq(sp.Max(y, lo + h * 0), y), [y, lo, h], [y >= lo]),
        z3_step("where tau = 0: min(f, hi - h*tau) = f for f <= hi",
                sp.Eq(sp.Min(y, hi - h * 0), y), [y, hi, h], [y <= hi]),
        z3_step("the raised tent tops every value at x*: max(y, lo + (hi - lo + 1)) > hi",
                sp.Max(y, lo + (hi - lo + 1)) > hi, [y, lo, hi], [y <= hi, lo <= hi]),
    ]
    cls = ERMNetworks()
    f_hat = cls.sample(0)
    phi = cls.visualize(f_hat)
    pts = cls.grid.points
    far = np.min(l1(f_hat.data_x[:, None, :], pts[None]), axis=0)
    far = np.minimum(far, np.minimum(l1(pts, phi.x_min), l1(pts, phi.x_max)))
    z = pts[int(np.argmax(far))]
    pair = cls.counterexample_pair(f_hat, z, 1e-3)
    change = max(abs(pair.f_plus.loss() - f_hat.loss()), abs(pair.f_minus.loss() - f_hat.loss()))
    steps.append(numeric_step("f+- have the fitted training loss (float64 round-off only)",
                              change <= 1e-12, f"loss = {f_hat.loss():.6e}, change = {change:.1e}"))
    steps += construction_steps(cls, pair, "fitted network")
    moved = move_argmax(f_hat, z, phi, avoid=f_hat.data_x)
    moved_phi = cls.visualize(moved)
    moved_on_s = float(np.max(np.abs(moved(f_hat.data_x) - f_hat(f_hat.data_x))))
    steps.append(numeric_step("move_argmax: new argmax is x*, predictions on S unchanged",
                              np.array_equal(moved_phi.x_max, z) and moved_on_s <= 1e-12,
                              f"x* = {z.round(3).tolist()}, argmax = "
                              f"{moved_phi.x_max.round(3).tolist()}, change on S {moved_on_s:.1e}"))
    return steps


PROOF_OBJECT = Proof("erm", "Theorem", "Networks fitted by ERM: impossible", STATEMENT, PROOF,
                     "theory/classes/erm.py", "tests/theory/test_erm.py", check)
