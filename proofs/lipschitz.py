"""Theorem (Lipschitz minimax): the band decoder is optimal; chance once L is large."""

from __future__ import annotations

import numpy as np
import sympy as sp

from proofs.base import Proof, Step, construction_steps, numeric_step, reals, z3_step
from theory.classes import KAPPA_LARGE, KAPPA_SMALL, Lipschitz
from theory.classes.lipschitz import band_pair
from theory.decoders import LipschitzBandDecoder, lipschitz_band
from theory.minimax import minimax_errors

STATEMENT = r"""Let $F_L$ be the $L$-Lipschitz units ($\ell_1$). Given $\Phi$, every consistent
$f$ satisfies $\ell \le f \le u$ with $\ell(x) = \max(f_{\min}, f_{\max} - L\|x - x_{\max}\|_1)$,
$u(x) = \min(f_{\max}, f_{\min} + L\|x - x_{\min}\|_1)$. The decoder $(\ell + u)/2$ is
minimax, with worst-case error $\sup_x (u - \ell)/2$. This equals $R/2$ (chance) iff some
$x$ has $\|x - x_{\min}\|_1, \|x - x_{\max}\|_1 \ge R/L$; writing $L = \kappa R / d$, it is
chance for large $\kappa$ (e.g. 20) and below chance for $\kappa < 2$ (e.g. 1.2)."""

PROOF = r"""The band is the Lipschitz condition applied between $x$ and the two extremes,
together with $f_{\min} \le f \le f_{\max}$. The midpoint of an interval containing $f(x)$
errs by at most half its width. Optimality: the tilted envelopes
$f_+ = \min(f_{\max} - \delta\|x - b\|_1, u)$ and $f_- = \max(f_{\min} + \delta\|x - a\|_1, \ell)$
are $L$-Lipschitz with the same $\Phi$ and approach $u$ and $\ell$ as $\delta \to 0$, so no
decoder beats half the width. The exact grid LP reproduces $(u - \ell)/2$ at every grid point."""


def check() -> list[Step]:
    x, y, a, b, lo, hi, L = reals("x y a b lo hi L")
    lower = sp.Max(lo, hi - L * sp.Abs(x - b))
    upper = sp.Min(hi, lo + L * sp.Abs(x - a))
    assume = [L > 0, lo <= hi, sp.Abs(y - lo) <= L * sp.Abs(x - a),
              sp.Abs(y - hi) <= L * sp.Abs(x - b), lo <= y, y <= hi]
    steps = [
        z3_step("every consistent value lies in the band (d = 1)",
                sp.And(lower <= y, y <= upper), [x, y, a, b, lo, hi, L], assume),
        z3_step("the band midpoint errs by at most half the width",
                sp.Abs((lower + upper) / 2 - y) <= (upper - lower) / 2,
                [x, y, a, b, lo, hi, L], assume),
        z3_step("far from both extremes (>= R/L) the band is the whole range",
                sp.Eq(upper - lower, hi - lo), [x, a, b, lo, hi, L],
                [L > 0, lo <= hi, L * sp.Abs(x - a) >= hi - lo, L * sp.Abs(x - b) >= hi - lo]),
    ]
    for kappa in (KAPPA_SMALL, KAPPA_LARGE):
        cls = Lipschitz(kappa)
        phi = cls.canonical_phi()
        L = cls.lipschitz_constant(phi)
        pts = cls.grid.points
        lo_b, hi_b = lipschitz_band(phi, pts, L)
        lp = minimax_errors(cls.grid_constraints(cls.grid, phi), cls.grid, phi)
        diff = float(np.max(np.abs(lp - (hi_b - lo_b) / 2)))
        steps.append(numeric_step(f"kappa = {kappa:g}: grid LP minimax = (u - l)/2 everywhere",
                                  diff < 1e-7, f"max |LP - closed form| = {diff:.2e}"))
        bound = LipschitzBandDecoder(L=L).bound(phi, pts)
        steps.append(numeric_step(f"kappa = {kappa:g}: band decoder worst error / R",
                                  (bound < 0.5) if kappa < 2 else (bound == 0.5),
                                  f"{bound:.4f} ({'below' if bound < 0.5 else 'at'} chance)"))
    big = Lipschitz(KAPPA_LARGE)
    pair = big.counterexample_pair(big.canonical_phi(), [1.0, 0.0], 1e-3)
    steps += construction_steps(big, pair, f"kappa = {KAPPA_LARGE:g}, z = (1, 0)")
    plus, _ = band_pair(big.canonical_phi(), 10.0, 1e-3)
    steps.append(numeric_step("envelope pair is written in closed form (sympy)",
                              plus.expression is not None, str(plus.expression)[:80]))
    return steps


PROOF_OBJECT = Proof("lipschitz", "Theorem", "Lipschitz units: minimax band", STATEMENT, PROOF,
                     "theory/classes/lipschitz.py", "tests/theory/test_lipschitz.py", check)
