"""Theorem (Φ variants): max-only and approximate extremes — what carries over, what changes."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import sympy as sp

from fvtrust.proofs.base import Proof, Step, follows_step, numeric_step, reals, z3_step
from fvtrust.theory.classes import KAPPA_SMALL, Affine, Lipschitz
from fvtrust.theory.classes.lipschitz import afc_margins
from fvtrust.theory.tasks import Task
from fvtrust.theory.variants import (
    TABLE_ETA,
    ApproxBandDecoder,
    SecantDecoder,
    Variant,
    max_only_afc_pair,
    sampled_score,
    scale_pair,
)

STATEMENT = r"""Max-only $\Phi_{\max}(f) = (x_{\max}, f(x_{\max}))$ and approximate extremes
$\Phi_\eta$ (any $\hat x$ with $f(\hat x_{\max}) \ge \max f - \eta R$,
$f(\hat x_{\min}) \le \min f + \eta R$). (i) Every impossible cell of the table stays impossible
under both. (ii) Max-only, affine units and $L$-Lipschitz units: predicting $f$ far from
$x_{\max}$ is impossible (normalized error $\to 1$); near $x_{\max}$ the decoder $f(x_{\max})$ errs
by at most $\rho$ (affine) or $\kappa\rho/d$ (Lipschitz). (iii) $\Phi_\eta$, affine units in
$d = 1$: exact. (iv) $\Phi_\eta$, $L d \le \kappa R$, $d \ge 2$: the band decoder from the shown
points errs by at most $\kappa/(1 - 2\eta) - 1$ (normalized); near $x_{\max}$, $f(\hat x_{\max})$
errs by at most $\max(\eta, \rho)$ (affine) or $\max(\eta, \kappa\rho/d)$ (Lipschitz).
(v) Max-only, $\kappa = 1.2$, $d = 2$: 2-AFC is at chance. (vi) $\Phi_\eta$, $\kappa = 1.2$,
$\eta = 0.01$, $d = 2$: the band decoder of (iv) answers every 2-AFC trial correctly."""

PROOF = r"""(i) $\Phi_{\max}$ is a function of $\Phi$, and the exact extremes are an admissible
$\Phi_\eta$ answer, so a pair with equal $\Phi$ is shown identically. (ii) $f_s = f_{\max} -
s\|x - b\|_1/d$ ($b = x_{\max}$ a vertex) has range $s$, Lipschitz constant $s/d$ and the same
$\Phi_{\max}$ for all $s > 0$; for any $p$,
$\max(|p - a_1|/R_1, |p - a_2|/R_2) \ge |a_1 - a_2|/(R_1 + R_2)$, which at $z = 1 - b$ with
$s = 1, \varepsilon$ is $(1 - \varepsilon)/(1 + \varepsilon)$. Near $b$:
$f_{\max} - f(z) \le L\|z - b\|_1$, and for affine $f$,
$\sum_i |w_i||z_i - b_i| \le (\sum_i |w_i|)\max_i|z_i - b_i|$. (iii) $f(\hat x_{\max}) -
f(\hat x_{\min}) \ge (1 - 2\eta)R > 0$, so two distinct points of the line are shown.
(iv) $\hat R \ge (1 - 2\eta)R$ gives $L \le \hat L = \kappa\hat R/((1 - 2\eta)d)$ and
$|f_{\max} - f(\hat x_{\max})|, |f_{\min} - f(\hat x_{\min})| \le \hat\eta\hat R$; the band from the
shown points contains $f$ and, since
$\|\hat x_{\min} - \hat x_{\max}\|_1 \ge \hat R/L \ge (1 - 2\eta)d/\kappa$, its half-width over
$\hat R \le R$ is at most $\kappa' - 1$ as in the Lipschitz theorem. Near $x_{\max}$,
$f(\hat x_{\max}) - f(z) = (f(\hat x_{\max}) - f_{\max}) + (f_{\max} - f(z)) \in
[-\eta R, f_{\max} - f(z)]$ and (ii) bounds the last term. (v) Without $x_{\min}$, two members may
put their minima at different points $a_1, a_2$; z3 maximizes
$\min(u_{a_1}(z) - \ell_b(z'), u_{a_2}(z') - \ell_b(z), L\|z - z'\|_1)$ exactly (2/5, e.g. at
$b = (1, 1)$, $a_1 = (0, \tfrac13)$, $a_2 = (\tfrac13, 0)$, $z = (1, 0)$, $z' = (0, 1)$), and the tilted upper
envelopes from $a_1$ and $a_2$ realize it up to $2\varepsilon$. (vi) With $\hat R = 1$:
$f(z) - f(z') \le \min(\hat u(z) - \hat\ell(z'), \hat L\|z - z'\|_1)$ for the band of (iv), and z3
maximizes this over every shown view and pair with $\hat m(z) \le \hat m(z')$ exactly: $11/49 < 1/4$,
while a trial needs a gap of $R/4 \ge \hat R/4$."""


def check() -> list[Step]:
    p, a1, a2, r1, r2 = reals("p a1 a2 r1 r2")
    w1, w2, t1, t2 = reals("w1 w2 t1 t2")
    eta, R, Rh, kappa, d, fmax, Mh = reals("eta R Rh kappa d fmax Mh")
    proper = [eta >= 0, eta < sp.Rational(1, 2), R > 0, Rh >= (1 - 2 * eta) * R]
    steps = [
        z3_step("(ii) one prediction, two ranges: max(|p-a1|/R1, |p-a2|/R2) >= |a1-a2|/(R1+R2)",
                sp.Max(sp.Abs(p - a1) * r2, sp.Abs(p - a2) * r1) * (r1 + r2)
                >= sp.Abs(a1 - a2) * r1 * r2, [p, a1, a2, r1, r2], [r1 > 0, r2 > 0]),
        z3_step("(ii) affine near x_max: |w1|t1 + |w2|t2 <= (|w1| + |w2|) max(t1, t2)",
                w1 * t1 + w2 * t2 <= (w1 + w2) * sp.Max(t1, t2), [w1, w2, t1, t2],
                [w1 >= 0, w2 >= 0, t1 >= 0, t2 >= 0]),
        z3_step("(iv) L = kappa R/d <= L_hat = kappa R_hat/((1 - 2 eta) d)",
                kappa * R / d <= kappa * Rh / ((1 - 2 * eta) * d), [kappa, R, Rh, eta, d],
                [kappa >= 1, d >= 1, *proper]),
        z3_step("(iv) f_max <= f(x_max_hat) + eta_hat R_hat, eta_hat = eta/(1 - 2 eta)",
                fmax <= Mh + eta / (1 - 2 * eta) * Rh, [fmax, Mh, eta, R, Rh],
                [fmax >= Mh, fmax - Mh <= eta * R, *proper]),
    ]
    # (ii) the scale pair, as implemented, in both classes (z3 on the cube inside verify)
    for cls in (Lipschitz(KAPPA_SMALL), Affine(d=1)):
        pair = scale_pair(cls.d, np.zeros(cls.d), 1e-3)
        for claim, ok in pair.verify(cls).items():
            steps.append(numeric_step(f"{cls.key}: scale pair {claim}", ok, "checked on the implementation"))
        bound = pair.lower_bound()
        # lemma (ii) applied to the pair's shared Φ and its two ranges
        steps.append(follows_step(
            f"{cls.key}: the scale pair forces normalized error >= 1/2", bound >= 0.5,
            f"(1 - eps)/(1 + eps) = {bound:.6f}",
            after=(steps[0].name, f"{cls.key}: scale pair same max-only visualization (on the cube: z3)")))
    # (v) max-only 2-AFC, small L: the z3-optimal flip, as implemented members
    pair = max_only_afc_pair(Lipschitz(KAPPA_SMALL))
    if pair is None:
        steps.append(Step("(v) max-only 2-AFC flip pair (kappa = 1.2)", False, "no pair"))
    else:
        for claim, ok in pair.verify(Lipschitz(KAPPA_SMALL)).items():
            steps.append(numeric_step(f"(v) max-only 2-AFC pair: {claim}", ok,
                                      "checked on the implementation"))
        steps.append(numeric_step("(v) each member orders (z, z') its own way by >= R/4",
                                  pair.flip() >= 0.25, f"flip {pair.flip():.6f} (z3 optimum 2/5, "
                                  f"less the tilt); z={pair.z.tolist()}, z'={pair.z2.tolist()}"))
    # (vi) 2-AFC from approximate extremes: z3's exact largest misordered gap (R_hat = 1)
    eta_hat = TABLE_ETA / (1 - 2 * TABLE_ETA)
    margins = afc_margins(KAPPA_SMALL / (1 - 2 * TABLE_ETA), 2, slack=eta_hat)
    steps.append(numeric_step(
        "(vi) approximate extremes, 2-AFC (kappa = 1.2, eta = 0.01): the band from the shown "
        "points misorders no gap of R/4",
        margins is not None and margins.band_decoder_wrong < Fraction(1, 4),
        "z3 undecided" if margins is None else
        f"largest misordered gap {margins.band_decoder_wrong} R_hat < 1/4 <= R/(4 R_hat)"))
    # (iii), (iv) on the implemented decoders: sampled members, random admissible answers
    cls = Lipschitz(KAPPA_SMALL)
    worst = sampled_score(cls, Task.SUP, Variant.APPROX, ApproxBandDecoder(KAPPA_SMALL, TABLE_ETA), 20)
    bound = KAPPA_SMALL / (1 - 2 * TABLE_ETA) - 1
    steps.append(numeric_step("(iv) implemented band decoder within kappa' - 1 on 20 members",
                              worst <= bound + 1e-9, f"worst {worst:.4f} <= {bound:.4f}"))
    exact = sampled_score(Affine(d=1), Task.SUP, Variant.APPROX, SecantDecoder(), 20)
    steps.append(numeric_step("(iii) implemented secant decoder exact on 20 affine members (d = 1)",
                              exact <= 1e-9, f"worst normalized error {exact:.2e}"))
    return steps


PROOF_OBJECT = Proof("variants", "Theorem", "Φ variants: max-only and approximate extremes",
                     STATEMENT, PROOF, "theory/variants.py", "tests/theory/test_variants.py", check)
