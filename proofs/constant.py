"""Theorem (constant units): reliable."""

from __future__ import annotations

from fvtrust.proofs.base import Proof, Step, numeric_step
from fvtrust.theory.classes import Constant
from fvtrust.theory.decoders import ChanceDecoder

STATEMENT = r"""For constant units $f \equiv c$, $\Phi(f)$ shows $c$ and the decoder $D_0$ is exact."""

PROOF = r"""$f_{\min} = f_{\max} = c$, so $D_0 \equiv (c + c)/2 = c = f$."""


def check() -> list[Step]:
    cls = Constant()
    worst = 0.0
    for seed in range(50):
        f = cls.sample(seed)
        phi = cls.visualize(f)
        worst = max(worst, float(abs(ChanceDecoder()(phi, cls.grid.points) - f(cls.grid.points)).max()))
    return [numeric_step("ChanceDecoder is exact on 50 sampled constants (every grid point)",
                         worst == 0.0, f"max error {worst}")]


PROOF_OBJECT = Proof("constant", "Theorem", "Constant units: reliable", STATEMENT, PROOF,
                     "theory/classes/constant.py", "tests/theory/test_constant.py", check)
