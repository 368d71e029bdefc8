import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.classes import ReLUNetworks
from fvtrust.theory.classes.relu_networks import canonical_network
from fvtrust.theory.domain import Grid
from fvtrust.theory.functions import GridFunction
from fvtrust.theory.visualization import grid_visualization, numeric_visualization, symbolic_visualization


def test_ties_break_to_the_first_grid_point():
    g = Grid(2, 3)
    f = GridFunction(g, np.zeros(9))
    phi = grid_visualization(f, g)
    assert phi.x_max.tolist() == [0, 0] and phi.x_min.tolist() == [0, 0]


def test_symbolic_visualization_is_certified_by_z3():
    phi = symbolic_visualization(canonical_network(2))
    assert phi.certified
    assert phi.x_min.tolist() == [0, 0] and phi.x_max.tolist() == [1, 1]
    assert (phi.v_min, phi.v_max) == (0.0, 1.0)


@given(ReLUNetworks().strategy())
def test_numeric_visualization_is_within_its_certified_gap(f):
    phi = numeric_visualization(f, starts=2, budget=2000)
    dense = grid_visualization(f, Grid(2, 101))
    assert phi.certified and phi.eta >= 0
    # the numeric optimum is at least the dense-grid optimum up to the certified gap
    assert phi.v_max >= dense.v_max - phi.eta - 1e-12
    assert phi.v_min <= dense.v_min + phi.eta + 1e-12


def test_max_only_variant_has_no_range():
    phi = grid_visualization(canonical_network(2), Grid(2, 5), max_only=True)
    assert phi.x_min is None
    with pytest.raises(ValueError, match="max-only"):
        _ = phi.range


@given(st.integers(0, 1000))
def test_same_as_is_reflexive(seed):
    f = ReLUNetworks().sample(seed)
    phi = grid_visualization(f, Grid(2, 5))
    assert phi.same_as(phi, 0)
