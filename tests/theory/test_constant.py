"""Constant units: theorem in theory/classes/constant.py, proof in proofs/constant.py."""

import numpy as np
from hypothesis import given

from fvtrust.theory.classes import Constant
from fvtrust.theory.functions import AffineFunction

CLS = Constant()


@given(CLS.strategy())
def test_chance_decoder_is_exact(f):
    phi = CLS.visualize(f)
    assert phi.range == 0
    assert np.array_equal(CLS.decoder()(phi, CLS.grid.points), f(CLS.grid.points))


def test_non_constant_is_rejected():
    assert not CLS.membership(AffineFunction([0.0, 1e-3], 0.0))
