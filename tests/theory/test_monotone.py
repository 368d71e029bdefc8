"""Monotone units: theorem in theory/classes/monotone.py, proof in proofs/monotone.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.classes import Monotone
from fvtrust.theory.functions import AffineFunction
from fvtrust.theory.tasks import Task
from tests.theory.nogo import arbitrary_predictions, assert_nogo, eps_fractions

CLS = Monotone()
interior = st.tuples(st.integers(1, 9), st.integers(0, 10)).map(lambda t: np.array(t) / 10)


@given(CLS.strategy(), interior, eps_fractions, st.lists(arbitrary_predictions, max_size=3))
def test_pair_defeats_every_decoder(f, z, frac, predictions):
    assert CLS.membership(f)
    phi = CLS.visualize(f)
    assert np.array_equal(phi.x_min, [0, 0]) and np.array_equal(phi.x_max, [1, 1])
    assert_nogo(CLS, CLS.counterexample_pair(f, z, frac * phi.range / 2), predictions)


def test_afc_witness_flips_order():
    w = CLS.witness(Task.AFC, 1e-3)
    assert w.lower_bound() == 0.5
    assert CLS.membership(w.f_plus) and CLS.membership(w.f_minus)


def test_decreasing_unit_is_rejected():
    verdict = CLS.membership(AffineFunction([1.0, -0.5], 0.0))
    assert not verdict and "decreases" in verdict.reason
    with pytest.raises(ValueError, match="not in class 'monotone'"):
        CLS.counterexample_pair(AffineFunction([1.0, -0.5], 0.0), [0.5, 0.5], 0.1)
