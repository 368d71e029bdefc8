"""Exact LP verification (theory/minimax.py) against the closed forms."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.classes import AllFunctions, Convex, Lipschitz, Monotone
from fvtrust.theory.decoders import lipschitz_band
from fvtrust.theory.domain import Grid
from fvtrust.theory.minimax import InfeasibleVisualization, minimax_errors, value_range
from fvtrust.theory.visualization import from_extremes


@given(st.sampled_from([1.0, 1.2, 1.5, 2.0, 5.0, 20.0]), st.sampled_from([(0.0, 0.0), (0.2, 0.0)]))
def test_lp_reproduces_the_lipschitz_band(kappa, a):
    cls = Lipschitz(kappa, n=6)
    phi = from_extremes(list(a), [1.0, 1.0], 0.0, 1.0)
    if np.abs(np.array(a) - 1).sum() < cls.d / kappa:
        return  # no κ-Lipschitz unit has these extremes
    grid = cls.grid
    lp = minimax_errors(cls.grid_constraints(grid, phi), grid, phi)
    lower, upper = lipschitz_band(phi, grid.points, cls.lipschitz_constant(phi))
    assert np.allclose(lp, (upper - lower) / 2, atol=1e-8)


@pytest.mark.parametrize("cls", [AllFunctions(n=5), Monotone(n=5), Convex(n=5)])
def test_lp_returns_half_the_range_for_impossible_classes(cls):
    phi = cls.canonical_phi() if not isinstance(cls, Convex) else from_extremes(
        [0.25, 0.25], [1, 1], 0.0, 1.0)
    cons = cls.grid_constraints(cls.grid, phi)
    worst = max(value_range(cons, cls.grid, phi, z).minimax_error for z in cls.grid.points)
    assert worst == pytest.approx(0.5 * phi.range, abs=1e-8)


def test_inconsistent_visualization_is_reported():
    cls = Monotone(n=3)
    phi = from_extremes([1, 1], [0, 0], 0.0, 1.0)  # a monotone unit cannot peak at 0
    with pytest.raises(InfeasibleVisualization, match="no member"):
        value_range(cls.grid_constraints(cls.grid), cls.grid, phi, [0.5, 0.5])


def test_lp_optimizers_are_members():
    cls = Convex(n=5)
    phi = from_extremes([0.25, 0.25], [1, 1], 0.0, 1.0)
    rng = value_range(cls.grid_constraints(cls.grid), cls.grid, phi, [0.0, 0.0])
    assert cls._grid_convex(rng.f_high.values) and cls._grid_convex(rng.f_low.values)
    assert Grid(2, 5) == cls.grid
