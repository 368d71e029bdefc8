"""Theorem (constant units): reliable."""

from __future__ import annotations

import sympy as sp

from proofs.base import Proof, Step, reals, z3_step
from theory.classes import Constant
from theory.decoders import ChanceDecoder

STATEMENT = r"""For constant units $f \equiv c$, $\Phi(f)$ shows $c$ and the decoder $D_0$ is exact."""

PROOF = r"""$f_{\min} = f_{\max} = c$, so $D_0 \equiv (c + c)/2 = c = f$."""


def check() -> list[Step]:
    c, x = reals("c x")
    steps = [z3_step("D0 = (c + c)/2 = c", sp.Eq((c + c) / 2, c), [c, x])]
    cls = Constant()
    f = cls.sample(5)
    phi = cls.visualize(f)
    err = float(abs(ChanceDecoder()(phi, cls.grid.points) - f(cls.grid.points)).max())
    steps.append(Step("ChanceDecoder exact on a sampled constant", err == 0.0, f"error {err}"))
    return steps


PROOF_OBJECT = Proof("constant", "Theorem", "Constant units: reliable", STATEMENT, PROOF,
                     "theory/classes/constant.py", "tests/theory/test_constant.py", check)
