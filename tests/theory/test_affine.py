"""Affine units: theorems in theory/classes/affine.py, proofs in proofs/affine.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.classes import Affine
from fvtrust.theory.functions import AffineFunction
from fvtrust.theory.tasks import LOCAL_RADIUS, local_error
from tests.theory.nogo import arbitrary_predictions, assert_nogo, eps_fractions

D1, D2 = Affine(1), Affine(2)


@given(D1.strategy())
def test_d1_decoder_is_exact(f):
    phi = D1.visualize(f)
    pts = D1.grid.points
    assert np.allclose(D1.decoder()(phi, pts), f(pts), atol=1e-12)


@given(D2.strategy(), st.sampled_from([(1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (1.0, 1.0)]),
       eps_fractions, st.lists(arbitrary_predictions, max_size=3))
def test_d2_pair_defeats_every_decoder(f, z, frac, predictions):
    R = float(np.abs(f.w).sum())
    z = np.array(z)
    if R == 0:  # a constant member has no pair (and no R to invent)
        with pytest.raises(ValueError, match="constant"):
            D2.counterexample_pair(f, z, 0.1)
        return
    signs = np.where(f.w < 0, -1.0, 1.0)
    t = np.where(signs > 0, z, 1 - z)
    if not (t.max() == 1 and t.min() == 0):
        with pytest.raises(ValueError, match="not a vertex mixing"):
            D2.counterexample_pair(f, z, frac * R / 2)
        return
    assert_nogo(D2, D2.counterexample_pair(f, z, frac * R / 2), predictions)


@given(D2.strategy())
def test_d2_local_task_is_within_its_bound(f):
    phi = D2.visualize(f)
    if phi.range == 0:
        return
    err = local_error(D2.decoder(), f, phi, D2.grid.points)
    assert err <= LOCAL_RADIUS / 2 + 1e-12


def test_d1_has_no_pair():
    with pytest.raises(NotImplementedError, match="reliable"):
        D1.counterexample_pair(AffineFunction([2.0], 1.0), [0.5], 0.1)
