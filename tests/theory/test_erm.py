"""ERM-fitted networks: theorem in theory/classes/erm.py, proof in proofs/erm.py."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fvtrust.theory.classes import ERMNetworks
from fvtrust.theory.classes.erm import move_argmax
from fvtrust.theory.domain import l1
from tests.theory.nogo import assert_nogo, eps_fractions

CLS = ERMNetworks()
FITTED = [CLS.sample(seed) for seed in range(3)]  # fitting is the slow part: share it


def far_query(f, index):
    phi = CLS.visualize(f)
    pts = CLS.grid.points
    keep = np.min(l1(np.concatenate([f.data_x, np.stack([phi.x_min, phi.x_max])])[:, None],
                     pts[None]), axis=0) > 0.05
    cand = pts[keep]
    return cand[index % len(cand)]


@settings(max_examples=10)
@given(st.sampled_from(FITTED), st.integers(0, 10_000), eps_fractions)
def test_pair_keeps_training_loss_and_defeats_decoders(f, index, frac):
    phi = CLS.visualize(f)
    pair = CLS.counterexample_pair(f, far_query(f, index), frac * phi.range / 2)
    assert abs(pair.f_plus.loss() - f.loss()) <= 1e-12
    assert abs(pair.f_minus.loss() - f.loss()) <= 1e-12
    assert_nogo(CLS, pair)


@given(st.sampled_from(FITTED), st.integers(0, 10_000))
def test_move_argmax_moves_the_argmax_and_keeps_the_data(f, index):
    phi = CLS.visualize(f)
    x_star = far_query(f, index)
    moved = move_argmax(f, x_star, phi, avoid=f.data_x)
    assert np.allclose(CLS.visualize(moved).x_max, x_star, atol=1e-6)  # MILP point, solver precision
    assert np.allclose(moved(f.data_x), f(f.data_x), atol=1e-12)
    assert CLS.membership(moved)


def test_a_query_on_a_training_point_is_rejected():
    f = FITTED[0]
    with pytest.raises(ValueError, match="training point"):
        CLS.counterexample_pair(f, f.data_x[0], 1e-3)


def test_a_worse_fit_is_not_a_member():
    f = FITTED[0]
    worse = f.carry(move_argmax(f, f.data_x[0], CLS.visualize(f), r=0.3), "worse")
    verdict = CLS.membership(worse)
    assert not verdict and "exceeds" in verdict.reason


def test_a_slightly_worse_fit_is_not_a_member():
    import copy

    import torch

    from fvtrust.theory.functions import ReLUNetwork

    f = FITTED[0]
    candidates = []
    for shift in (1e-3, -1e-3):  # shift every prediction; one direction fits worse
        net = copy.deepcopy(f.module)
        with torch.no_grad():
            net[-1].bias += shift
        candidates.append(f.carry(ReLUNetwork(net), "shifted"))
    worse = max(candidates, key=lambda g: g.loss())
    assert 0 < worse.loss() - f.loss() < 1e-3
    assert not CLS.membership(worse)
