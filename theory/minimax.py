"""Exact minimax verification on a grid by linear programming.

After Sec. 5 of *Don't trust your eyes*; method ours. On a finite grid G, the monotone,
convex, L-Lipschitz, affine and constant units (and all functions) are polyhedra in the
value vector (f(g))_{g∈G}; Φ-consistency is linear too:
f(a) = v_min, f(b) = v_max, v_min + δ ≤ f(g) ≤ v_max − δ elsewhere (δ: uniqueness margin).
So the range of f(z) over every consistent member is two LPs, and the best possible
decoder at z errs by exactly (max f(z) − min f(z))/2 in the worst case. No sampling luck:
the LP's optimal vectors are themselves the counterexample pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sps
from numpy.typing import ArrayLike
from scipy.optimize import linprog

from fvtrust.theory.decoders import Decoder
from fvtrust.theory.domain import Array, Grid
from fvtrust.theory.functions import GridFunction
from fvtrust.theory.visualization import Visualization


@dataclass
class LinearConstraints:
    """A polyhedron over x = (f(g)_{g∈G}, extra variables): A_ub x ≤ b_ub, A_eq x = b_eq.

    Extra variables (subgradients, affine weights) are free.
    """

    n_values: int
    n_extra: int = 0
    A_ub: sps.csr_matrix | None = None
    b_ub: Array | None = None
    A_eq: sps.csr_matrix | None = None
    b_eq: Array | None = None
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def n_vars(self) -> int:
        return self.n_values + self.n_extra


def difference_rows(i: np.ndarray, j: np.ndarray, n_vars: int, coef_i: float = 1.0,
                    coef_j: float = -1.0) -> sps.csr_matrix:
    """Rows with coef_i at column i[k] and coef_j at column j[k]."""
    k = np.arange(len(i))
    data = np.concatenate([np.full(len(i), coef_i), np.full(len(j), coef_j)])
    return sps.csr_matrix((data, (np.concatenate([k, k]), np.concatenate([i, j]))),
                          shape=(len(i), n_vars))


@dataclass(frozen=True)
class LPRange:
    """Range of a linear functional of f over all consistent members, with the optimizers."""

    low: float
    high: float
    f_low: GridFunction
    f_high: GridFunction

    @property
    def minimax_error(self) -> float:
        """(high − low)/2: the worst-case error of the best decoder."""
        return 0.5 * (self.high - self.low)


class InfeasibleVisualization(ValueError):
    """No member of the class on the grid has this visualization."""


def _solve(constraints: LinearConstraints, grid: Grid, phi: Visualization,
           objective: Array, delta: float) -> tuple[float, Array]:
    if phi.x_min is None or phi.v_min is None:
        raise ValueError("the LP needs both extremes (a full visualization)")
    n = constraints.n_values
    ia, ib = (int(i) for i in grid.index_of(np.stack([phi.x_min, phi.x_max])))
    R = phi.range
    delta = 0.0 if R == 0 else float(delta)
    if not 0 <= delta < R / 2 or (R == 0 and ia != ib and delta):
        raise ValueError(f"uniqueness margin delta must satisfy 0 <= delta < R/2, got {delta}")
    lo = np.full(constraints.n_vars, -np.inf)
    hi = np.full(constraints.n_vars, np.inf)
    lo[:n], hi[:n] = phi.v_min + delta, phi.v_max - delta
    lo[ia] = hi[ia] = phi.v_min
    lo[ib] = hi[ib] = phi.v_max
    c = np.zeros(constraints.n_vars)
    c[:n] = objective
    res = linprog(c, A_ub=constraints.A_ub, b_ub=constraints.b_ub, A_eq=constraints.A_eq,
                  b_eq=constraints.b_eq, bounds=np.stack([lo, hi], axis=1), method="highs")
    if res.status == 2:
        raise InfeasibleVisualization(
            f"no member on {grid} has Φ = (x_min={phi.x_min.tolist()}, "
            f"x_max={phi.x_max.tolist()}, v_min={phi.v_min}, v_max={phi.v_max})")
    if res.status != 0:
        raise RuntimeError(f"linear program failed: {res.message}")
    return float(res.fun), res.x[:n]


def functional_range(constraints: LinearConstraints, grid: Grid, phi: Visualization,
                     weights: ArrayLike, delta: float = 0.0) -> LPRange:
    """min and max of Σ_g weights[g]·f(g) over the class members consistent with Φ."""
    w = np.asarray(weights, dtype=np.float64)
    low, f_low = _solve(constraints, grid, phi, w, delta)
    neg_high, f_high = _solve(constraints, grid, phi, -w, delta)
    return LPRange(low, -neg_high, GridFunction(grid, f_low, "f-"), GridFunction(grid, f_high, "f+"))


def value_range(constraints: LinearConstraints, grid: Grid, phi: Visualization,
                z: ArrayLike, delta: float = 0.0) -> LPRange:
    """The range of f(z) over the members consistent with Φ (z a grid point)."""
    w = np.zeros(len(grid))
    w[grid.index_of(z)[0]] = 1.0
    return functional_range(constraints, grid, phi, w, delta)


def difference_range(constraints: LinearConstraints, grid: Grid, phi: Visualization,
                     z: ArrayLike, z2: ArrayLike, delta: float = 0.0) -> LPRange:
    """The range of f(z) − f(z′): both signs reachable ⇒ the 2-AFC between z, z′ is at chance."""
    w = np.zeros(len(grid))
    w[grid.index_of(z)[0]] += 1.0
    w[grid.index_of(z2)[0]] -= 1.0
    return functional_range(constraints, grid, phi, w, delta)


def minimax_errors(constraints: LinearConstraints, grid: Grid, phi: Visualization,
                   delta: float = 0.0) -> Array:
    """The best decoder's worst-case error at every grid point (2N LPs)."""
    return np.array([value_range(constraints, grid, phi, g, delta).minimax_error
                     for g in grid.points])


@dataclass(frozen=True)
class Refutation:
    """A concrete member on which a claimed decoder misses its claimed error bound."""

    member: GridFunction
    query: Array
    error: float
    claimed: float


def refute_decoder(constraints: LinearConstraints, grid: Grid, phi: Visualization,
                   decoder: Decoder, claimed_error: float, delta: float = 0.0) -> Refutation | None:
    """Look for a member f consistent with Φ and a grid query z where
    |D(Φ)(z) − f(z)| > claimed_error. Exact: at each z the extreme members are LP optima."""
    predictions = decoder(phi, grid.points)
    for k, z in enumerate(grid.points):
        rng = value_range(constraints, grid, phi, z, delta)
        for member, value in ((rng.f_low, rng.low), (rng.f_high, rng.high)):
            err = abs(predictions[k] - value)
            if err > claimed_error + 1e-9:
                return Refutation(member, z.copy(), float(err), float(claimed_error))
    return None
