"""Theorem (ReLU networks, hence piecewise-affine and continuous units): impossible."""

from __future__ import annotations

import numpy as np

from fvtrust.proofs.base import Proof, Step, construction_steps, numeric_step
from fvtrust.theory.classes import ReLUNetworks
from fvtrust.theory.classes.relu_networks import canonical_network
from fvtrust.theory.domain import l1
from fvtrust.theory.milp import network_extreme

STATEMENT = r"""Let $F$ be the ReLU networks on $[0,1]^d$. For every network $f \in F$ with range
$R > 0$, every $\varepsilon \in (0, R/2)$ and every $z$ with $f_{\min} < f(z) < f_{\max}$ there are
$f_\pm \in F$ whose argmin and argmax sets on the continuous cube equal those of $f$ (so
$\Phi(f_+) = \Phi(f_-) = \Phi(f)$ under any tie-breaking rule) and $f_+(z) - f_-(z) \ge R - 2\varepsilon$;
so every decoder errs by $\ge R/2 - \varepsilon$ on one of them. The same holds for piecewise-affine
and for continuous units, which contain $F$. The paper's instance: $f_0(x) = 1 - \|x - \mathbf 1\|_1/d$."""

PROOF = r"""Let $lo \le \min f$ and $hi \ge \max f$ be certified bounds (MILP on the cube,
gap $\eta < \varepsilon$), and $B = B_1(z, r)$ a ball on which $f_{\min} < f < f_{\max}$
(certified by MILP over $B$; one exists since $f$ is continuous). Put
$f_+ = \max(f, lo + (hi - lo - \varepsilon)\tau_{z,r})$ and
$f_- = \min(f, hi - (hi - lo - \varepsilon)\tau_{z,r})$: ReLU networks by the tent and closure
lemmas. Off $B$, $\tau = 0$, so $f_+ = \max(f, lo) = f$ and $f_- = f$. On $B$,
$f_+ \le \max(f, hi - \varepsilon) < \max f$ (as $\eta < \varepsilon$) and
$f_+ \ge f > \min f$, so $f_+$ has no extreme point in $B$; likewise $f_-$. Hence the extreme
sets and values are those of $f$. At $z$, $\tau = 1$: $f_+(z) \ge hi - \varepsilon \ge
\max f - \varepsilon$ and $f_-(z) \le \min f + \varepsilon$. The machine-checked steps below
run on the constructed networks themselves, on the cube."""


def _steps_for(cls: ReLUNetworks, f, z, label: str, eps: float = 1e-3) -> list[Step]:
    phi = cls.visualize(f)
    pair = cls.counterexample_pair(f, z, eps)
    m = pair.meta
    steps = [numeric_step(f"{label}: MILP certificate eta < eps", phi.eta < eps,
                          f"eta = {phi.eta:.2e}, eps = {eps}"),
             numeric_step(f"{label}: f stays strictly inside (f_min, f_max) on the ball (MILP)",
                          m["ball_lo"] > phi.v_min and m["ball_hi"] < phi.v_max,
                          f"f on B(z, {m['radius']:.3g}) in [{m['ball_lo']:.4g}, {m['ball_hi']:.4g}], "
                          f"extremes {phi.v_min:.4g}, {phi.v_max:.4g}")]
    inside = []
    for name, g in (("f+", pair.f_plus), ("f-", pair.f_minus)):
        lo = network_extreme(g, "min", ball=(pair.z, m["radius"]))
        hi = network_extreme(g, "max", ball=(pair.z, m["radius"]))
        inside.append(lo.bound > phi.v_min and hi.bound < phi.v_max)
        steps.append(numeric_step(f"{label}: {name} has no extreme point in the ball (MILP on {name})",
                                  inside[-1], f"{name} on B in [{lo.bound:.4g}, {hi.bound:.4g}]"))
    cloud = np.random.default_rng(0).random((4000, f.d))
    off = cloud[l1(cloud, pair.z) > m["radius"]]
    change = max(float(np.max(np.abs(g(off) - f(off)))) for g in (pair.f_plus, pair.f_minus))
    steps.append(numeric_step(f"{label}: f+- = f off the ball ({len(off)} random points)",
                              change <= 1e-12, f"max |f+- - f| = {change:.1e}"))
    return steps + construction_steps(cls, pair, label)


def check() -> list[Step]:
    cls = ReLUNetworks()
    steps: list[Step] = []
    for d in (2, 3):
        phi0 = ReLUNetworks(d=d).visualize(canonical_network(d))
        ok = (np.allclose(phi0.x_min, 0, atol=1e-7) and np.allclose(phi0.x_max, 1, atol=1e-7)
              and abs(phi0.v_min) < 1e-9 and abs(phi0.v_max - 1) < 1e-9)
        where = f"x_min {phi0.x_min.round(6).tolist()}, x_max {phi0.x_max.round(6).tolist()}"
        steps.append(numeric_step(f"canonical f0, d = {d}: Phi = (0, 1, 0, 1) on the cube (MILP)",
                                  ok, where))
    steps += _steps_for(cls, canonical_network(2), np.array([0.5, 0.5]), "canonical f0")
    random_f = cls.sample(7)
    phi = cls.visualize(random_f)
    pts = cls.grid.points
    z = pts[np.argmin(np.abs(random_f(pts) - phi.midpoint))]
    steps += _steps_for(cls, random_f, z, "random network")
    return steps


PROOF_OBJECT = Proof("relu_networks", "Theorem", "ReLU networks: impossible", STATEMENT, PROOF,
                     "theory/classes/relu_networks.py", "tests/theory/test_relu_networks.py",
                     check)
