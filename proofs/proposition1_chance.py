"""Proposition 1 (chance level): the constant decoder D0 errs by at most R/2."""

from __future__ import annotations

import numpy as np
import sympy as sp

from fvtrust.proofs.base import Proof, Step, numeric_step, reals, z3_step
from fvtrust.theory.classes import AllFunctions
from fvtrust.theory.decoders import ChanceDecoder
from fvtrust.theory.visualization import grid_visualization

STATEMENT = r"""For every $f : X \to \mathbb{R}$ with visualization
$\Phi(f) = (x_{\min}, x_{\max}, f_{\min}, f_{\max})$, the decoder
$D_0(\Phi)(x) \equiv (f_{\min} + f_{\max})/2$ satisfies
$\|D_0(\Phi(f)) - f\|_\infty \le R/2$, $R = f_{\max} - f_{\min}$, with equality at $x_{\max}$."""

PROOF = r"""Every value satisfies $f_{\min} \le f(x) \le f_{\max}$, so
$|f(x) - (f_{\min}+f_{\max})/2| \le (f_{\max}-f_{\min})/2$. At $x = x_{\max}$ the
difference is exactly $R/2$. Hence $R/2$ is the chance level: a decoder is informative
only if its worst-case error is below $R/2$ uniformly over the class."""


def check() -> list[Step]:
    lo, hi, y = reals("lo hi y")
    mid = (lo + hi) / 2
    steps = [
        z3_step("|y - (lo+hi)/2| <= (hi-lo)/2 for lo <= y <= hi",
                sp.Abs(y - mid) <= (hi - lo) / 2, [lo, hi, y], [lo <= y, y <= hi]),
    ]
    cls = AllFunctions()
    worst = 0.0
    for seed in range(20):
        f = cls.sample(seed)
        phi = grid_visualization(f, cls.grid)
        err = np.max(np.abs(ChanceDecoder()(phi, cls.grid.points) - f(cls.grid.points)))
        worst = max(worst, err / phi.range)
    steps.append(numeric_step("ChanceDecoder on 20 sampled functions: error/R <= 1/2",
                              worst <= 0.5 + 1e-12, f"max error/R = {worst:.6f}"))
    ends = np.stack([phi.x_min, phi.x_max])
    at_ends = float(np.abs(ChanceDecoder()(phi, ends) - f(ends)).max()) / phi.range
    steps.append(numeric_step("the bound is attained: error exactly R/2 at x_min and x_max",
                              abs(at_ends - 0.5) < 1e-12, f"error/R at the extremes = {at_ends:.6f}"))
    return steps


PROOF_OBJECT = Proof("proposition1_chance", "Proposition", "Chance level of the constant decoder",
                     STATEMENT, PROOF, "theory/decoders.py (ChanceDecoder)",
                     "tests/theory/test_decoders.py", check)
