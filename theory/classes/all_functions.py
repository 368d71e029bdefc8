"""All functions on a finite grid: the class where Φ says nothing off the extremes.

Theorem (all functions; after Theorem 1 of *Don't trust your eyes*, formulation ours):
for f₀ with argmin a, argmax b and any z ∉ {a, b}, the functions f₊ = f₀ except
f₊(z) = f_max − ε and f₋ = f₀ except f₋(z) = f_min + ε share Φ and differ by R − 2ε at z.
Proof: ``proofs/all_functions.py``; tests: ``tests/theory/test_all_functions.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fvtrust.theory.classes.base import (
    CounterexamplePair,
    FunctionClass,
    Membership,
    check_eps,
    ensure_query,
)
from fvtrust.theory.domain import Grid
from fvtrust.theory.functions import GridFunction, UnitFunction
from fvtrust.theory.minimax import LinearConstraints
from fvtrust.theory.tasks import LOCAL_RADIUS, Task, Witness
from fvtrust.theory.visualization import Visualization, grid_visualization


class AllFunctions(FunctionClass):
    """Every real function on the grid G (tabulated values)."""

    key = "all"
    title = "all functions"
    polyhedral = True
    paper = "impossible"

    def build(self, params: Any) -> GridFunction:
        return GridFunction(self.grid, np.asarray(params, dtype=np.float64), name="table")

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        return rng.random(len(self.grid))

    def params_strategy(self) -> Any:
        from hypothesis import strategies as st

        n = len(self.grid)
        return st.lists(st.integers(0, 1000), min_size=n, max_size=n).map(
            lambda v: np.asarray(v, dtype=np.float64) / 1000)

    def membership(self, f: UnitFunction) -> Membership:
        if not isinstance(f, GridFunction) or f.grid != self.grid:
            return Membership(False, f"not a function tabulated on {self.grid}")
        return Membership(True)

    def grid_constraints(self, grid: Grid,
                         phi: Visualization | None = None) -> LinearConstraints:
        return LinearConstraints(len(grid))

    def counterexample_pair(self, f: UnitFunction | Visualization, z: ArrayLike,
                            eps: float) -> CounterexamplePair:
        if isinstance(f, Visualization):
            raise ValueError("the all-functions pair is built from a member f, not from Φ alone")
        self.require_member(f)
        phi = grid_visualization(f, self.grid)
        z = ensure_query(z, self.d)
        k = int(self.grid.index_of(z)[0])
        if np.array_equal(z, phi.x_min) or np.array_equal(z, phi.x_max):
            raise ValueError(f"query z={z.tolist()} is an extreme of f; pick z ∉ {{x_min, x_max}}")
        eps = check_eps(eps, phi.range)
        plus, minus = f.values.copy(), f.values.copy()
        plus[k], minus[k] = phi.v_max - eps, phi.v_min + eps
        return CounterexamplePair(GridFunction(self.grid, plus, "f+"),
                                  GridFunction(self.grid, minus, "f-"), phi, z, eps)

    def explicit_witness(self, task: Task, eps: float) -> Witness | None:
        f = self.sample(0)
        phi = grid_visualization(f, self.grid)
        pts = [p for p in self.grid.points
               if not (np.array_equal(p, phi.x_min) or np.array_equal(p, phi.x_max))]
        if task is Task.LOCAL:
            near = [p for p in pts if np.abs(p - phi.x_max).sum() <= LOCAL_RADIUS + 1e-12]
            return self.counterexample_pair(f, near[0], eps).witness(task)
        if task is Task.AFC:
            z, z2 = pts[0], pts[-1]
            pair = self.counterexample_pair(f, z, eps)
            k2 = int(self.grid.index_of(z2)[0])
            plus, minus = pair.f_plus.values.copy(), pair.f_minus.values.copy()
            plus[k2], minus[k2] = phi.v_min + eps, phi.v_max - eps
            return Witness(task, GridFunction(self.grid, plus, "f+"),
                           GridFunction(self.grid, minus, "f-"), phi, (z, z2), "construction")
        return self.counterexample_pair(f, pts[len(pts) // 2], eps).witness(task)
