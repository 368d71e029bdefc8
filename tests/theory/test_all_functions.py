"""All functions on a grid: theorem in theory/classes/all_functions.py, proof in proofs/all_functions.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.classes import AllFunctions
from tests.theory.nogo import arbitrary_predictions, assert_nogo, eps_fractions, interior_grid_point

CLS = AllFunctions()


@given(CLS.strategy(), st.integers(0, 10_000), eps_fractions, st.lists(arbitrary_predictions, max_size=3))
def test_pair_defeats_every_decoder(f, index, frac, predictions):
    phi = CLS.visualize(f)
    if phi.range == 0:
        return  # a constant table has no pair to build; covered by the constant class
    z = interior_grid_point(CLS, phi, index)
    assert_nogo(CLS, CLS.counterexample_pair(f, z, frac * phi.range / 2), predictions)


def test_query_at_an_extreme_is_rejected():
    f = CLS.sample(0)
    phi = CLS.visualize(f)
    with pytest.raises(ValueError, match="extreme"):
        CLS.counterexample_pair(f, phi.x_max, 1e-3)


def test_sampler_is_seeded():
    assert np.array_equal(CLS.sample(4).values, CLS.sample(4).values)
    assert not np.array_equal(CLS.sample(4).values, CLS.sample(5).values)
