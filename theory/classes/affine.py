"""Affine units f(x) = ⟨w, x⟩ + c: reliable in d = 1, impossible for d ≥ 2 (except locally).

Theorem (affine, d ≥ 2; after Sec. 5 of *Don't trust your eyes*, formulation ours): Φ
reveals only the sign pattern of w and Σ|w_i| = R. Writing |w_i| = R·p_i (p in the open
simplex) and t_i = z_i or 1 − z_i by the sign of w_i, f(z) = f_min + R·Σ p_i t_i; at a
vertex z ∉ {x_min, x_max} some t_i = 1 and some t_j = 0, so f(z) ranges over (f_min, f_max).
Theorem (affine, d = 1): D*(Φ)(x) = f_min + R·|x − x_min| is exact.
Local (D): f is R-Lipschitz in ℓ1, so the band decoder errs ≤ Rρ/2 within ρ of x_max.
Proof: ``proofs/affine.py``; tests: ``tests/theory/test_affine.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sps
import sympy as sp
from numpy.typing import ArrayLike

from fvtrust.theory.classes.base import (
    CounterexamplePair,
    FunctionClass,
    Membership,
    ProvenBound,
    check_eps,
    ensure_query,
    relative_tolerance,
)
from fvtrust.theory.classes.lipschitz import worst_case_error
from fvtrust.theory.decoders import AffineD1Decoder, Decoder, LipschitzBandDecoder
from fvtrust.theory.domain import Grid
from fvtrust.theory.functions import AffineFunction, GridFunction, UnitFunction, cube_symbols
from fvtrust.theory.minimax import LinearConstraints
from fvtrust.theory.tasks import Task, Witness
from fvtrust.theory.visualization import Visualization, grid_visualization


def affine_visualization(f: AffineFunction) -> Visualization:
    """Exact Φ: x_max_i = 1 iff w_i > 0, x_min = its complement where w_i ≠ 0
    (w_i = 0 ties break to 0, the first grid point in lexicographic order)."""
    w = f.w
    x_max = (w > 0).astype(np.float64)
    x_min = (w < 0).astype(np.float64)
    return Visualization(x_max, float(f(x_max)[0]), x_min, float(f(x_min)[0]), method="affine")


class Affine(FunctionClass):
    """f(x) = ⟨w, x⟩ + c on [0, 1]^d."""

    polyhedral = True

    def __init__(self, d: int = 2, n: int = 11) -> None:
        super().__init__(d, n)
        self.key = "affine_d1" if d == 1 else "affine"
        self.title = "affine (d = 1)" if d == 1 else f"affine (d = {d})"
        self.paper = "reliable" if d == 1 else "impossible"

    def build(self, params: Any) -> AffineFunction:
        w, c = params
        return AffineFunction(np.asarray(w, dtype=np.float64), float(c), name="affine")

    def draw(self, rng: np.random.Generator) -> Any:
        return rng.normal(size=self.d), float(rng.normal())

    def params_strategy(self) -> Any:
        from hypothesis import strategies as st

        coef = st.integers(-100, 100).map(lambda k: k / 10)
        return st.tuples(st.lists(coef, min_size=self.d, max_size=self.d), coef)

    def membership(self, f: UnitFunction) -> Membership:
        """Three answers. Exact for :class:`AffineFunction`; a closed form that is a
        polynomial is affine exactly when its degree is ≤ 1 (a non-zero polynomial does not
        vanish on an open set), decided by sympy; other closed forms get "undecided" unless
        their values refute it. Any unit: a least-squares affine fit on the grid leaving a
        residual above 1e-9·R plus round-off refutes it (values); a tabulated unit is judged
        on its grid (exact), anything else without a closed form is "undecided" when it fits."""
        if isinstance(f, AffineFunction):
            return Membership(f.d == self.d, "" if f.d == self.d else f"d={f.d}")
        if f.expression is not None and not isinstance(f, GridFunction):
            xs = cube_symbols(self.d)
            expr = sp.expand(f.expression)
            if expr.is_polynomial(*xs):
                degree = sp.Poly(expr, *xs).total_degree() if expr.free_symbols else 0
                if degree <= 1:
                    return Membership(True, "a polynomial of degree ≤ 1 (sympy)", "symbolic rules")
                return Membership(False, f"a polynomial of degree {degree} (sympy)", "symbolic rules")
            verdict = self._midpoint_affine(expr, xs)
            if verdict is not None:
                return verdict
        pts = self.grid.points
        design = np.hstack([pts, np.ones((len(pts), 1))])
        values = f(pts)
        coef, *_ = np.linalg.lstsq(design, values, rcond=None)
        resid = float(np.max(np.abs(design @ coef - values)))
        exact = isinstance(f, GridFunction)
        method = "representation" if exact else "grid only"
        if resid > relative_tolerance(values):
            return Membership(False, f"no affine function fits the grid values (residual {resid:.3g})",
                              method)
        if exact:
            return Membership(True)
        return Membership.undecided(f"an affine fit on the {self.grid} leaves residual "
                                    f"{resid:.3g}; off the grid nothing is certified", method)

    @staticmethod
    def _midpoint_affine(expr: sp.Expr, xs: tuple[sp.Symbol, ...]) -> Membership | None:
        """z3 on a piecewise-linear form with rational coefficients: f(x) + f(y) = 2f((x + y)/2)
        for all x, y in the cube, which for a continuous f is affinity; None when z3 cannot
        take the form or does not decide."""
        from fvtrust.theory.symbolic import (
            has_rational_coefficients,
            is_piecewise_linear,
            midpoint_affine,
        )

        if not (is_piecewise_linear(expr, xs) and has_rational_coefficients(expr)):
            return None
        verdict = midpoint_affine(expr, xs)
        if verdict.proved:
            return Membership(True, "z3: f(x) + f(y) = 2f((x + y)/2) on the cube", "z3 exact")
        if verdict.counterexample is not None:
            return Membership(False, f"z3: not midpoint-affine at {verdict.counterexample}",
                              "z3 exact")
        return None

    def visualize(self, f: UnitFunction) -> Visualization:
        if isinstance(f, AffineFunction):
            return affine_visualization(f)
        return grid_visualization(f, self.grid)  # e.g. the LP's tabulated members

    def canonical_phi(self) -> Visualization:
        return affine_visualization(AffineFunction(np.full(self.d, 1.0 / self.d), 0.0))

    def grid_constraints(self, grid: Grid, phi: Visualization | None = None) -> LinearConstraints:
        n, d = len(grid), grid.d
        # f(g) − ⟨w, g⟩ − c = 0 with free extra variables (w, c).
        a = sps.hstack([sps.identity(n), sps.csr_matrix(-grid.points),
                        sps.csr_matrix(-np.ones((n, 1)))]).tocsr()
        return LinearConstraints(n, n_extra=d + 1, A_eq=a, b_eq=np.zeros(n))

    def counterexample_pair(self, f: UnitFunction | Visualization, z: ArrayLike,
                            eps: float) -> CounterexamplePair:
        if self.d == 1:
            raise NotImplementedError("affine units in d = 1 are reliable: AffineD1Decoder is exact")
        if isinstance(f, Visualization):
            raise ValueError("the affine pair is built from a member f (its sign pattern)")
        self.require_member(f)
        z = ensure_query(z, self.d)
        R = float(np.abs(f.w).sum())
        if R == 0:
            raise ValueError("f is constant (w = 0, R = 0): a degenerate member has no pair; "
                             "every decoder predicts it exactly")
        signs = np.where(f.w < 0, -1.0, 1.0)  # w_i = 0 is tilted positive: sign pattern
        t = np.where(signs > 0, z, 1 - z)
        if not (np.any(np.isclose(t, 1)) and np.any(np.isclose(t, 0))):
            raise ValueError(f"query z={z.tolist()} is not a vertex mixing the extremes' "
                             f"coordinates; there Σ p_i t_i cannot reach both ends")
        eps = check_eps(eps, R)
        v_min = f.c + float(np.minimum(f.w, 0).sum())
        delta = eps / R

        def member(k: int, name: str) -> AffineFunction:
            p = np.full(self.d, delta / (self.d - 1))
            p[k] = 1 - delta
            w = signs * R * p
            return AffineFunction(w, v_min - float(np.minimum(w, 0).sum()), name=name)

        f_plus = member(int(np.argmax(np.isclose(t, 1))), "f+")
        f_minus = member(int(np.argmax(np.isclose(t, 0))), "f-")
        return CounterexamplePair(f_plus, f_minus, affine_visualization(f_plus), z, eps)

    def explicit_witness(self, task: Task, eps: float) -> Witness | None:
        if self.d == 1 or task is Task.LOCAL:
            return None
        f = AffineFunction(np.full(self.d, 1.0 / self.d), 0.0)
        z = np.eye(self.d)[0]
        pair = self.counterexample_pair(f, z, eps)
        if task is Task.AFC:
            return Witness(task, pair.f_plus, pair.f_minus, pair.phi, (z, np.eye(self.d)[1]),
                           "construction")
        return pair.witness(task)

    def proven_worst_case(self, task: Task) -> ProvenBound | None:
        if self.d == 1:  # the decoder reconstructs f exactly
            return ProvenBound(1.0 if task is Task.AFC else 0.0, True, "proofs/affine.py")
        if task is Task.LOCAL:
            # Affine units are ℓ1-Lipschitz with L = max|w_i| ≤ Σ|w_i| = R, i.e. κ = d: the
            # Lipschitz band bound near x_max, κρ/(2d) = ρ/2 (an upper bound for this subclass).
            return ProvenBound(worst_case_error(float(self.d), self.d, task)[0], False,
                               "proofs/lipschitz.py")
        return None

    def decoder(self) -> Decoder:
        return AffineD1Decoder() if self.d == 1 else LipschitzBandDecoder(relative=1.0)
