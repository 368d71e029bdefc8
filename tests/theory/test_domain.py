import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.domain import Grid, check_in_cube, l1, linf, vertices


@given(st.integers(1, 3), st.integers(2, 6))
def test_grid_points_and_indices_round_trip(d, n):
    g = Grid(d, n)
    assert g.points.shape == (n**d, d)
    assert np.array_equal(g.index_of(g.points), np.arange(len(g)))


@given(st.integers(1, 3), st.integers(2, 5))
def test_neighbour_edges_have_length_h(d, n):
    g = Grid(d, n)
    lo, hi = g.neighbour_pairs()
    assert len(lo) == d * (n - 1) * n ** (d - 1)
    assert np.allclose(l1(g.points[lo], g.points[hi]), g.step)


def test_norms_and_vertices():
    assert l1([0, 0], [1, 1]) == 2 and linf([0, 0], [1, 0.5]) == 1
    assert vertices(2).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


@pytest.mark.parametrize(("bad", "match"), [
    (lambda: Grid(0, 3), "dimension d must be an integer >= 1, got d=0"),
    (lambda: Grid(2, 1), "grid size n must be an integer >= 2"),
    (lambda: check_in_cube([0.5, 1.5], 2), r"query \[0.5, 1.5\] lies outside the cube"),
    (lambda: check_in_cube([0.5, np.nan], 2), "NaN"),
    (lambda: check_in_cube([0.5, 0.5, 0.5], 2), r"shape \(m, 2\)"),
    (lambda: Grid(2, 3).index_of([0.25, 0.5]), "not all points of the grid"),
])
def test_bad_input_names_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()
