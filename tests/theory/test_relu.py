"""Tent and closure lemmas: theory/relu.py, proofs/tent.py and proofs/closure.py."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.relu import affine_combination, maximum, minimum, random_relu_network, tent_network

widths = st.lists(st.integers(1, 6), min_size=0, max_size=3)
points = st.integers(0, 2**16).map(lambda s: np.random.default_rng(s).random((64, 3)))


@given(st.integers(0, 2**16), st.integers(1, 100))
def test_tent_is_a_bump_on_the_l1_ball(seed, r100):
    rng = np.random.default_rng(seed)
    z, r = rng.random(3), r100 / 100
    tau = tent_network(z, r)
    pts = rng.random((200, 3))
    values = tau(pts)
    dist = np.abs(pts - z).sum(1)
    assert tau(z)[0] == pytest.approx(1.0)
    assert np.all((values >= 0) & (values <= 1))
    assert np.all(values[dist >= r] == 0)
    assert np.allclose(values, np.maximum(0, 1 - dist / r), atol=1e-12)
    assert all(isinstance(m, torch.nn.Linear | torch.nn.ReLU) for m in tau.module)


@given(widths, widths, st.integers(0, 2**16), points)
def test_max_min_and_combinations_are_networks(wa, wb, seed, pts):
    rng = np.random.default_rng(seed)
    a, b = random_relu_network(3, wa, rng), random_relu_network(3, wb, rng)
    assert np.allclose(maximum(a, b)(pts), np.maximum(a(pts), b(pts)), atol=1e-10)
    assert np.allclose(minimum(a, b)(pts), np.minimum(a(pts), b(pts)), atol=1e-10)
    comb = affine_combination([a, b], [0.5, -2.0], 1.0)
    assert np.allclose(comb(pts), 0.5 * a(pts) - 2 * b(pts) + 1, atol=1e-10)


def test_bad_tent_radius():
    with pytest.raises(ValueError, match="r must be > 0, got r=0"):
        tent_network([0.5, 0.5], 0.0)
    with pytest.raises(ValueError, match="2 networks but 1 coefficients"):
        a = random_relu_network(2, [2], np.random.default_rng(0))
        affine_combination([a, a], [1.0])
