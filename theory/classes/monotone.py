"""Monotone (coordinate-wise non-decreasing) units: Φ is the same for all of them.

Theorem (monotone; after Sec. 5 of *Don't trust your eyes*, formulation ours): every
strictly monotone f has x_min = 0, x_max = 1. With s = max_i x_i, m = min_i x_i, x̄ the mean
and a query z ∉ {0, 1},
f₊ = (1 − ε)·min(1, s(x)/s(z)) + ε·x̄,  f₋ = (1 − ε)·max(0, (m(x) − m(z))/(1 − m(z))) + ε·x̄
(scaled to [f_min, f_max]) are strictly monotone, share Φ, and differ by R − ε at z; the
impossibility holds even for d = 1. Proof: ``proofs/monotone.py``; tests:
``tests/theory/test_monotone.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp
from numpy.typing import ArrayLike

from fvtrust.theory.classes.base import (
    CounterexamplePair,
    FunctionClass,
    Membership,
    check_eps,
    diagonal_phi,
    ensure_query,
    relative_tolerance,
)
from fvtrust.theory.classes.certify import certified_membership, monotone_certificate_of
from fvtrust.theory.classes.closed_form import grid_neighbour_slopes, random_pairs, rational
from fvtrust.theory.domain import Grid
from fvtrust.theory.functions import ExpressionFunction, GridFunction, UnitFunction, cube_symbols
from fvtrust.theory.minimax import LinearConstraints, difference_rows
from fvtrust.theory.tasks import Task, Witness
from fvtrust.theory.visualization import Visualization, from_extremes


class Monotone(FunctionClass):
    """Coordinate-wise non-decreasing units."""

    key = "monotone"
    title = "monotone"
    polyhedral = True
    paper = "impossible"

    # A member: Σ_k α_k·max(0, ⟨w_k, x⟩ − t_k) + β·x̄ with α_k, w_k ≥ 0 and β > 0.
    def build(self, params: Any) -> ExpressionFunction:
        beta, units = params
        xs = cube_symbols(self.d)
        expr = rational(beta) * sum(xs, sp.Integer(0)) / self.d
        for alpha, w, t in units:
            expr += rational(alpha) * sp.Max(0, sum((rational(wi) * x for wi, x in
                                                     zip(w, xs, strict=True)), -rational(t)))
        return ExpressionFunction(expr, self.d, "monotone")

    def draw(self, rng: np.random.Generator) -> Any:
        units = tuple((float(rng.uniform(0, 2)), tuple(rng.random(self.d).round(3)),
                       float(rng.uniform(0, 1))) for _ in range(3))
        return float(rng.uniform(0.05, 1)), units

    def params_strategy(self) -> Any:
        from hypothesis import strategies as st

        unit = st.integers(0, 100).map(lambda k: k / 100)
        relu = st.tuples(st.integers(0, 20).map(lambda k: k / 10), st.tuples(*[unit] * self.d), unit)
        return st.tuples(st.integers(1, 100).map(lambda k: k / 100),
                         st.lists(relu, max_size=3).map(tuple))

    def membership(self, f: UnitFunction) -> Membership:
        """Three answers. A closed form is judged on the whole cube by certified interval
        branch-and-bound on its partial derivatives (:func:`~theory.certified.
        monotone_certificate`), "undecided" when that does not separate. A tabulated unit:
        non-decreasing along every grid edge (exact). Any other unit: a decrease along a grid
        edge or between 2,000 seeded random comparable pairs x ≤ x ∨ y refutes it (values, to
        1e-9·R plus round-off); finding none decides nothing off the grid ("undecided")."""
        if f.expression is not None and not isinstance(f, GridFunction):
            return certified_membership(monotone_certificate_of, f)
        values = f(self.grid.points)
        tol = relative_tolerance(values)
        method = "representation" if isinstance(f, GridFunction) else "grid only"
        slopes = grid_neighbour_slopes(f, self.grid)
        if slopes.min(initial=0.0) * self.grid.step < -tol:
            return Membership(False, f"decreases along a grid edge (slope {slopes.min():.3g})", method)
        if isinstance(f, GridFunction):
            return Membership(True)  # a tabulated unit lives on the grid alone
        x, y = random_pairs(self.d)
        up = np.maximum(x, y)
        drop = f(x) - f(up)
        if drop.max() > tol:
            k = int(np.argmax(drop))
            return Membership(False, f"f({x[k].round(3).tolist()}) > f({up[k].round(3).tolist()})",
                              method)
        return Membership.undecided(f"non-decreasing on the {self.grid} and 2,000 random pairs; "
                                    f"without a closed form nothing is certified off them", method)

    def canonical_phi(self) -> Visualization:
        return diagonal_phi(self.d)

    def grid_constraints(self, grid: Grid, phi: Visualization | None = None) -> LinearConstraints:
        lo, hi = grid.neighbour_pairs()
        a = difference_rows(lo, hi, len(grid)).tocsr()  # f(g) − f(g + h e_k) ≤ 0
        return LinearConstraints(len(grid), A_ub=a, b_ub=np.zeros(a.shape[0]))

    def counterexample_pair(self, f: UnitFunction | Visualization, z: ArrayLike,
                            eps: float) -> CounterexamplePair:
        if isinstance(f, Visualization):
            v_min, v_max = f.v_min, f.v_max
        else:
            self.require_member(f)
            v_min, v_max = float(f(np.zeros(self.d))[0]), float(f(np.ones(self.d))[0])
        phi = from_extremes(np.zeros(self.d), np.ones(self.d), v_min, v_max, "monotone")
        z = ensure_query(z, self.d)
        if np.all(z == 0) or np.all(z == 1):
            raise ValueError(f"query z={z.tolist()} is an extreme (0 or 1); pick another")
        eps = check_eps(eps, phi.range)
        e = rational(eps / phi.range)
        xs = cube_symbols(self.d)
        s_z, m_z = rational(z.max()), rational(z.min())
        mean = sum(xs, sp.Integer(0)) / self.d
        g_plus = (1 - e) * sp.Min(1, sp.Max(*xs) / s_z) + e * mean
        g_minus = (1 - e) * sp.Max(0, (sp.Min(*xs) - m_z) / (1 - m_z)) + e * mean
        lo, R = rational(phi.v_min), rational(phi.range)
        return CounterexamplePair(ExpressionFunction(lo + R * g_plus, self.d, "f+"),
                                  ExpressionFunction(lo + R * g_minus, self.d, "f-"), phi, z, eps)

    def explicit_witness(self, task: Task, eps: float) -> Witness | None:
        phi = self.canonical_phi()
        if task is Task.AFC:
            if self.d < 2:
                return None  # in d = 1 the order of f(z), f(z′) is the order of z, z′
            # f_k = (1 − ε)·x_k + ε·x̄: z = e_0 beats z′ = e_1 for k = 0, loses for k = 1.
            xs = cube_symbols(self.d)
            e = rational(eps)
            mean = sum(xs, sp.Integer(0)) / self.d
            f0, f1 = ((1 - e) * xs[k] + e * mean for k in (0, 1))
            z, z2 = np.eye(self.d)[0], np.eye(self.d)[1]
            return Witness(task, ExpressionFunction(f0, self.d, "f+"),
                           ExpressionFunction(f1, self.d, "f-"), phi, (z, z2), "construction")
        z = np.full(self.d, 1 - 0.1 / self.d) if task is Task.LOCAL else np.full(self.d, 0.5)
        return self.counterexample_pair(phi, z, eps).witness(task)
