"""Decoders (theory/decoders.py); Proposition 1 in proofs/proposition1_chance.py."""

import numpy as np
import pytest
from hypothesis import given

from fvtrust.theory.classes import AllFunctions
from fvtrust.theory.decoders import AffineD1Decoder, ChanceDecoder, LipschitzBandDecoder, standard_decoders
from fvtrust.theory.visualization import from_extremes

CLS = AllFunctions()


@given(CLS.strategy())
def test_chance_decoder_never_exceeds_half_the_range(f):
    phi = CLS.visualize(f)
    err = np.abs(ChanceDecoder()(phi, CLS.grid.points) - f(CLS.grid.points))
    assert np.all(err <= phi.range / 2 + 1e-12)
    assert err.max() == pytest.approx(phi.range / 2)


def test_every_decoder_has_one_signature():
    phi = from_extremes([0, 0], [1, 1], 0.0, 1.0)
    pts = CLS.grid.points
    for dec in standard_decoders():
        out = dec(phi, pts)
        assert out.shape == (len(pts),) and np.all(np.isfinite(out))


def test_decoders_reject_bad_input():
    phi = from_extremes([0, 0], [1, 1], 0.0, 1.0)
    with pytest.raises(ValueError, match="exact only for d = 1, got d=2"):
        AffineD1Decoder()(phi, [[0.5, 0.5]])
    with pytest.raises(ValueError, match="outside the cube"):
        ChanceDecoder()(phi, [[0.5, 2.0]])
    with pytest.raises(ValueError, match="max-only"):
        ChanceDecoder()(phi.max_only(), [[0.5, 0.5]])
    with pytest.raises(ValueError, match="exactly one of L and relative"):
        LipschitzBandDecoder()
