"""ReLU networks: theorem in theory/classes/relu_networks.py, proof in proofs/relu_networks.py."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.theory.nogo import arbitrary_predictions, assert_nogo, eps_fractions, interior_grid_point
from theory.classes import ReLUNetworks
from theory.classes.relu_networks import canonical_network
from theory.functions import ReLUNetwork

CLS = ReLUNetworks()


@given(CLS.strategy(), st.integers(0, 10_000), eps_fractions, st.lists(arbitrary_predictions, max_size=3))
def test_pair_defeats_every_decoder(f, index, frac, predictions):
    phi = CLS.visualize(f)
    z = interior_grid_point(CLS, phi, index)
    pair = CLS.counterexample_pair(f, z, frac * phi.range / 2)
    assert isinstance(pair.f_plus.module, torch.nn.Sequential)
    assert_nogo(CLS, pair, predictions)


def test_pair_is_unchanged_outside_the_tent():
    f = CLS.sample(3)
    phi = CLS.visualize(f)
    pair = CLS.counterexample_pair(f, [0.5, 0.5], 0.01)
    pts = CLS.grid.points
    outside = np.abs(pts - 0.5).sum(1) >= pair.meta["radius"]
    assert np.allclose(pair.f_plus(pts[outside]), f(pts[outside]), atol=1e-12)
    assert np.allclose(pair.f_minus(pts[outside]), f(pts[outside]), atol=1e-12)
    assert pair.gap >= phi.range - 0.02 - 1e-12


def test_canonical_network_is_the_papers_f0():
    f0 = canonical_network(3)
    pts = np.random.default_rng(0).random((50, 3))
    assert np.allclose(f0(pts), 1 - np.abs(pts - 1).sum(1) / 3)


def test_non_network_is_rejected():
    from theory.functions import AffineFunction

    with pytest.raises(ValueError, match="not a ReLU network"):
        CLS.counterexample_pair(AffineFunction([1.0, 0.0], 0.0), [0.5, 0.5], 0.1)
    assert isinstance(CLS.sample(0), ReLUNetwork)
