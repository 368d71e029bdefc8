"""Theorem (ERM-fitted networks): the training data do not pin the visualization down."""

from __future__ import annotations

import numpy as np

from fvtrust.proofs.base import Proof, Step, construction_steps, numeric_step
from fvtrust.theory.classes import ERMNetworks
from fvtrust.theory.classes.erm import LOSS_TOL, move_argmax
from fvtrust.theory.domain import l1

STATEMENT = r"""Let $\hat f$ be a ReLU network fitted to data $S$ (full-batch Adam on the squared loss),
and let $F_S$ be the ReLU networks (any depth and width) whose training loss on $S$ is at most
$\hat f$'s plus $10^{-10}$. For every $\varepsilon \in (0, R/2)$ and every $z \notin S$ with
$f_{\min} < \hat f(z) < f_{\max}$ there are $f_\pm \in F_S$ with the same extreme sets as $\hat f$ on the
cube (so $\Phi(f_\pm) = \Phi(\hat f)$) and $f_+(z) - f_-(z) \ge R - 2\varepsilon$. Corollary: for any
$x^* \notin S$, $\max(\hat f, lo + (hi - lo + 1)\tau_{x^*, r})$ has the same training loss and its
argmax at $x^*$."""

PROOF = r"""Take the ReLU-network pair with the tent radius also below half the $\ell_1$ distance
from $z$ to $S$. Then $\tau_{z,r} = 0$ on $S$, so $f_\pm = \hat f$ on $S$: the training loss is
exactly unchanged (float64 round-off aside) and $f_\pm \in F_S$; $\Phi$ and the gap follow as for
ReLU networks. For the corollary, the raised tent reaches $hi + 1 > \max \hat f$ at $x^*$ only,
and equals $lo \le \hat f$ off $B(x^*, r)$, in particular on $S$."""


def check() -> list[Step]:
    cls = ERMNetworks()
    f_hat = cls.sample(0)
    phi = cls.visualize(f_hat)
    pts = cls.grid.points
    values = f_hat(pts)
    far = np.min(l1(f_hat.data_x[:, None, :], pts[None]), axis=0)
    far = np.minimum(far, np.minimum(l1(pts, phi.x_min), l1(pts, phi.x_max)))
    far[(values <= phi.v_min + phi.range / 8) | (values >= phi.v_max - phi.range / 8)] = -1
    z = pts[int(np.argmax(far))]
    pair = cls.counterexample_pair(f_hat, z, 1e-3)
    on_s = max(float(np.max(np.abs(g(f_hat.data_x) - f_hat(f_hat.data_x))))
               for g in (pair.f_plus, pair.f_minus))
    steps = [numeric_step("f+- equal f_hat on every training point", on_s <= 1e-12,
                          f"{len(f_hat.data_x)} points, max |change| = {on_s:.1e}")]
    change = max(abs(pair.f_plus.loss() - f_hat.loss()), abs(pair.f_minus.loss() - f_hat.loss()))
    steps.append(numeric_step("f+- have the fitted training loss (within the class tolerance)",
                              change <= LOSS_TOL, f"loss = {f_hat.loss():.6e}, change = {change:.1e}"))
    steps += construction_steps(cls, pair, "fitted network")
    moved = move_argmax(f_hat, z, phi, avoid=f_hat.data_x)
    moved_phi = cls.visualize(moved)
    moved_on_s = float(np.max(np.abs(moved(f_hat.data_x) - f_hat(f_hat.data_x))))
    steps.append(numeric_step("move_argmax: the argmax on the cube is x* (MILP)",
                              bool(np.allclose(moved_phi.x_max, z, atol=1e-6))
                              and moved_phi.v_max > phi.v_max + 1 - 1e-6,
                              f"x* = {z.round(3).tolist()}, argmax = {moved_phi.x_max.round(6).tolist()}, "
                              f"max = {moved_phi.v_max:.4f} vs {phi.v_max:.4f}"))
    steps.append(numeric_step("move_argmax: predictions on S unchanged, still in F_S",
                              moved_on_s <= 1e-12 and bool(cls.membership(moved)),
                              f"change on S {moved_on_s:.1e}"))
    return steps


PROOF_OBJECT = Proof("erm", "Theorem", "Networks fitted by ERM: impossible", STATEMENT, PROOF,
                     "theory/classes/erm.py", "tests/theory/test_erm.py", check)
