"""Constant units: the trivial reliable class (Φ shows the value, R = 0)."""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from fvtrust.theory.classes.base import FunctionClass, Membership, ProvenBound
from fvtrust.theory.decoders import ChanceDecoder, Decoder
from fvtrust.theory.domain import Grid
from fvtrust.theory.functions import AffineFunction, GridFunction, UnitFunction, cube_symbols
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
        """Three answers. A closed form is constant exactly when sympy finds no coordinate in
        it after simplification, and not constant when certified bounds show two values
        apart; an AffineFunction or a tabulated unit by its values (exact). Any other unit:
        values apart on the grid refute it; equal values decide nothing off the grid."""
        if f.expression is not None and not isinstance(f, GridFunction | AffineFunction):
            return self._closed_form_membership(f)
        values = f(self.grid.points)
        spread = float(np.ptp(values))
        exact = isinstance(f, GridFunction | AffineFunction)
        method = "representation" if exact else "grid only"
        if spread > 16 * np.finfo(np.float64).eps * float(np.max(np.abs(values))):
            return Membership(False, f"takes values {spread:.3g} apart on the grid", method)
        if exact:
            return Membership(True)
        return Membership.undecided(f"constant on the {self.grid}; without a closed form "
                                    f"nothing is certified off it", method)

    def _closed_form_membership(self, f: UnitFunction) -> Membership:
        from fvtrust.theory.certified import Unsupported, range_bounds

        if not sp.simplify(f.expression).free_symbols:
            return Membership(True, "no coordinate left after simplification (sympy)",
                              "symbolic rules")
        try:
            r = range_bounds(f.expression, cube_symbols(self.d))
        except Unsupported as exc:
            return Membership.undecided(str(exc), "certified bound")
        if r.lower > 0:
            return Membership(False, f"its range is ≥ {r.lower:.6g} on the cube (certified "
                                     f"interval values)", "certified bound")
        return Membership.undecided(f"its range lies in [0, {r.upper:.6g}] (certified), which "
                                    f"does not show it constant", "certified bound")

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
