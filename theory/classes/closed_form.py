"""Helpers for classes whose members are closed forms (sympy) checked on a grid."""

from __future__ import annotations

import numpy as np
import sympy as sp

from fvtrust.theory.domain import Array, Grid
from fvtrust.theory.functions import UnitFunction, cube_symbols
from fvtrust.theory.symbolic import exact


def rational(v: float | sp.Rational) -> sp.Rational:
    """A float as an exact rational whose float is v (:func:`~theory.symbolic.exact`), so z3,
    sympy and the float code reason about the same number; a sympy rational as it is."""
    return v if isinstance(v, sp.Rational) else exact(v)


def l1_expr(point: Array) -> sp.Expr:
    """‖x − p‖₁ as a sympy expression."""
    xs = cube_symbols(len(point))
    return sum((sp.Abs(x - rational(p)) for x, p in zip(xs, point, strict=True)), sp.Integer(0))


def grid_neighbour_slopes(f: UnitFunction, grid: Grid) -> Array:
    """(f(g + h e_k) − f(g)) / h over all grid edges."""
    values = f(grid.points)
    lo, hi = grid.neighbour_pairs()
    return (values[hi] - values[lo]) / grid.step


def random_pairs(d: int, n: int = 2000, seed: int = 0) -> tuple[Array, Array]:
    """Seeded random point pairs in the cube, for the sampled part of membership checks."""
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), rng.random((n, d))
