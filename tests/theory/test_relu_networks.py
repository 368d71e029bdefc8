"""ReLU networks: theorem in theory/classes/relu_networks.py, proof in proofs/relu_networks.py."""

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from fvtrust.theory.classes import ReLUNetworks
from fvtrust.theory.classes.relu_networks import canonical_network
from fvtrust.theory.functions import ReLUNetwork
from tests.theory.nogo import arbitrary_predictions, assert_nogo, eps_fractions, strictly_inside_point

CLS = ReLUNetworks()


@given(CLS.strategy(), st.integers(0, 10_000), eps_fractions, st.lists(arbitrary_predictions, max_size=3))
def test_pair_defeats_every_decoder(f, index, frac, predictions):
    phi = CLS.visualize(f)
    assume(phi.range > 1e-6)  # constant networks have no pair (tested below)
    z = strictly_inside_point(CLS, f, phi, index)
    assume(z is not None)
    pair = CLS.counterexample_pair(f, z, frac * phi.range / 2)
    assert isinstance(pair.f_plus.module, torch.nn.Sequential)
    assert_nogo(CLS, pair, predictions)


def test_pair_is_unchanged_outside_the_tent():
    f = CLS.sample(3)
    phi = CLS.visualize(f)
    z = strictly_inside_point(CLS, f, phi, 7)
    pair = CLS.counterexample_pair(f, z, 0.01)
    pts = CLS.grid.points
    outside = np.abs(pts - z).sum(1) >= pair.meta["radius"]
    assert np.allclose(pair.f_plus(pts[outside]), f(pts[outside]), atol=1e-12)
    assert np.allclose(pair.f_minus(pts[outside]), f(pts[outside]), atol=1e-12)
    assert pair.gap >= phi.range - 0.02 - 1e-12


def test_degenerate_and_extreme_queries_are_refused_by_name():
    from fvtrust.theory.relu import constant_network

    with pytest.raises(ValueError, match=r"constant on the cube \(R = 0.0\)"):
        CLS.counterexample_pair(constant_network(2, 0.3), [0.5, 0.5], 0.1)
    f = canonical_network(2)
    with pytest.raises(ValueError, match="not strictly between the extremes"):
        CLS.counterexample_pair(f, [1.0, 1.0], 0.01)


def test_grid_extremes_would_clip_but_cube_extremes_do_not():
    # The reproducer: f = |x0 - .33| + |x1 - .33| has its true minimum 0 at (.33, .33),
    # between the 21-point grid's nodes. Built from the grid minimum the pair clipped f there.
    from fvtrust.theory.relu import affine_combination, affine_network, maximum

    def absolute(w):
        lin = affine_network(w, -0.33)
        return maximum(lin, affine_combination([lin], [-1.0]))
    f = affine_combination([absolute([1.0, 0.0]), absolute([0.0, 1.0])], [1.0, 1.0])
    phi = CLS.visualize(f)
    assert phi.v_min == pytest.approx(0.0, abs=1e-9) and np.allclose(phi.x_min, [0.33, 0.33], atol=1e-6)
    assert CLS.grid.points is not None and f(CLS.grid.points).min() > 0.009  # the grid misses it
    pair = CLS.counterexample_pair(f, [0.8, 0.2], 1e-3)
    assert_nogo(CLS, pair)
    for g in (pair.f_plus, pair.f_minus):
        assert CLS.visualize(g).v_min == pytest.approx(0.0, abs=1e-6)


def test_canonical_network_is_the_papers_f0():
    f0 = canonical_network(3)
    pts = np.random.default_rng(0).random((50, 3))
    assert np.allclose(f0(pts), 1 - np.abs(pts - 1).sum(1) / 3)


def test_non_network_is_rejected():
    from fvtrust.theory.functions import AffineFunction

    with pytest.raises(ValueError, match="not a ReLU network"):
        CLS.counterexample_pair(AffineFunction([1.0, 0.0], 0.0), [0.5, 0.5], 0.1)
    assert isinstance(CLS.sample(0), ReLUNetwork)


def test_shares_visualization_rejects_a_network_with_another_extreme():
    from fvtrust.theory.relu import affine_network

    f = canonical_network(2)
    phi = CLS.visualize(f)
    assert CLS.shares_visualization(f, phi)
    higher = affine_network([0.5, 0.6], 0.0)  # same argmin and argmax, larger maximum
    assert not CLS.shares_visualization(higher, phi)
    assert not CLS.shares_visualization(affine_network([-0.5, -0.5], 1.0), phi)  # extremes swapped


def test_pair_keeps_a_plateau_of_maximizers_intact():
    # f = min(1, x0 + x1) has a whole plateau of maximizers; a tent ball reaching into it would
    # remove maximizers (Φ could then differ under another tie-breaking rule). The MILP
    # certificate shrinks the ball until f stays strictly inside its range on it.
    from fvtrust.theory.relu import affine_network, constant_network, minimum

    f = minimum(affine_network([1.0, 1.0], 0.0), constant_network(2, 1.0))
    phi = CLS.visualize(f)
    pair = CLS.counterexample_pair(f, [0.1, 0.8], 1e-3)  # f(z) = 0.9: the first ball reaches the plateau
    pts = np.random.default_rng(0).random((5000, 2))
    extreme = (np.abs(f(pts) - phi.v_max) < 1e-12) | (np.abs(f(pts) - phi.v_min) < 1e-12)
    assert extreme.sum() > 100
    for g in (pair.f_plus, pair.f_minus):
        assert np.allclose(g(pts[extreme]), f(pts[extreme]), atol=1e-12)


def test_shares_visualization_needs_the_certificate_not_just_the_values_at_a_and_b():
    from fvtrust.theory.relu import bump, maximum

    f = canonical_network(2)
    phi = CLS.visualize(f)
    spike = maximum(f, bump(0.0, 2.0, [0.2, 0.8], 0.1))  # same values at a and b, max 2 elsewhere
    assert spike(phi.x_max[None])[0] == pytest.approx(phi.v_max)
    assert not CLS.shares_visualization(spike, phi)
