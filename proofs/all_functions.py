"""Theorem (all functions): Φ determines nothing away from the extremes."""

from __future__ import annotations

import sympy as sp

from fvtrust.proofs.base import Proof, Step, construction_steps, reals, z3_step
from fvtrust.theory.classes import AllFunctions

STATEMENT = r"""Let $F$ be all functions on a finite $G \subset [0,1]^d$ with $|G| \ge 3$. For
every decoder $D$, every $\varepsilon \in (0, R/2)$ and every $z \in G$ that is not an
extreme of some $f_0 \in F$, there is $f \in F$ with $|D(\Phi f)(z) - f(z)| \ge R/2 - \varepsilon$."""

PROOF = r"""Let $f_\pm = f_0$ except $f_+(z) = f_{\max} - \varepsilon$ and
$f_-(z) = f_{\min} + \varepsilon$. The new values lie strictly inside $(f_{\min}, f_{\max})$,
so the extremes and their first-in-order positions are unchanged: $\Phi(f_+) = \Phi(f_-)
= \Phi(f_0)$. The gap at $z$ is $R - 2\varepsilon$; apply the indistinguishability lemma.
(z3 checks the three-point instance $G = \{a, z, b\}$ for all $\varepsilon \in (0, 1/2)$.)"""


def check() -> list[Step]:
    eps, p = reals("eps p")
    plus_z, minus_z = 1 - eps, eps  # f_min = 0 at a, f_max = 1 at b
    assume = [eps > 0, eps < sp.Rational(1, 2)]
    steps = [
        z3_step("no prediction p at z is within 1/2 - eps of both members",
                sp.Max(sp.Abs(p - plus_z), sp.Abs(p - minus_z)) >= sp.Rational(1, 2) - eps,
                [eps, p], assume),
    ]
    cls = AllFunctions()
    f = cls.sample(3)
    pair = cls.counterexample_pair(f, cls.grid.points[len(cls.grid) // 3], 1e-3)
    return steps + construction_steps(cls, pair, "sampled f on an 11x11 grid")


PROOF_OBJECT = Proof("all_functions", "Theorem", "All functions: impossible", STATEMENT, PROOF,
                     "theory/classes/all_functions.py", "tests/theory/test_all_functions.py",
                     check)
