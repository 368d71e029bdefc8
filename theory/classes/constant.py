"""Constant units: the trivial reliable class (Φ shows the value, R = 0)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fvtrust.theory.classes.base import MEMBERSHIP_TOL, FunctionClass, Membership, ProvenBound
from fvtrust.theory.decoders import ChanceDecoder, Decoder
from fvtrust.theory.domain import Grid
from fvtrust.theory.functions import AffineFunction, UnitFunction
from fvtrust.theory.minimax import LinearConstraints, difference_rows
from fvtrust.theory.tasks import Task
from fvtrust.theory.visualization import Visualization


class Constant(FunctionClass):
    """f ≡ c. Φ reveals c, so D0 (the midpoint c) is exact. Proof: ``proofs/constant.py``."""

    key = "constant"
    title = "constant"
    polyhedral = True
    paper = "reliable"

    def build(self, params: Any) -> AffineFunction:
        return AffineFunction(np.zeros(self.d), float(params), name="constant")

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.normal())

    def params_strategy(self) -> Any:
        from hypothesis import strategies as st

        return st.integers(-1000, 1000).map(lambda k: k / 100)

    def membership(self, f: UnitFunction) -> Membership:
        spread = float(np.ptp(f(self.grid.points)))
        if spread > MEMBERSHIP_TOL:
            return Membership(False, f"takes values {spread:.3g} apart on the grid")
        return Membership(True)

    def grid_constraints(self, grid: Grid, phi: Visualization | None = None) -> LinearConstraints:
        n = len(grid)
        rest = np.arange(1, n)
        a = difference_rows(rest, np.zeros(n - 1, dtype=np.int64), n).tocsr()
        return LinearConstraints(n, A_eq=a, b_eq=np.zeros(n - 1))

    def proven_worst_case(self, task: Task) -> ProvenBound:
        # Φ reveals c: the midpoint decoder is exact, error 0 and every 2-AFC answer right.
        return ProvenBound(1.0 if task is Task.AFC else 0.0, True, "proofs/constant.py")

    def decoder(self) -> Decoder:
        return ChanceDecoder()
