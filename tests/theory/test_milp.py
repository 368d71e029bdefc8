"""Exact network extremes on the cube (theory/milp.py), against dense evaluation."""

import numpy as np
import pytest

from fvtrust.theory.milp import interval_bounds, network_extreme
from fvtrust.theory.relu import random_relu_network

DENSE = np.stack(np.meshgrid(np.linspace(0, 1, 201), np.linspace(0, 1, 201)), -1).reshape(-1, 2)


@pytest.mark.parametrize("seed", range(6))
def test_extremes_bound_every_point_and_are_attained(seed):
    net = random_relu_network(2, (8, 6), np.random.default_rng(seed))
    values = net(DENSE)
    hi, lo = network_extreme(net, "max"), network_extreme(net, "min")
    # Attained: the incumbent's value is the network's own value there, and no dense point
    # beats it beyond the certificate; the certificate is tight.
    assert hi.value == pytest.approx(float(net(hi.point[None])[0]), abs=1e-12)
    assert values.max() <= hi.value + hi.eta and values.min() >= lo.value - lo.eta
    assert hi.value >= values.max() - 1e-3 and lo.value <= values.min() + 1e-3
    assert hi.eta < 1e-4 and lo.eta < 1e-4


def test_ball_restricted_extremes_stay_in_the_ball():
    net = random_relu_network(2, (8, 8), np.random.default_rng(11))
    z, r = np.array([0.4, 0.6]), 0.25
    inside = DENSE[np.abs(DENSE - z).sum(1) <= r]
    for sense in ("max", "min"):
        ext = network_extreme(net, sense, ball=(z, r))
        assert np.abs(ext.point - z).sum() <= r + 1e-9
        v = net(inside)
        assert (v.max() <= ext.bound if sense == "max" else v.min() >= ext.bound)
        assert abs(float(net(ext.point[None])[0]) - (v.max() if sense == "max" else v.min())) < 5e-3


def test_interval_bounds_contain_every_pre_activation():
    import torch

    net = random_relu_network(2, (5, 4), np.random.default_rng(3))
    bounds = interval_bounds(net, np.zeros(2), np.ones(2))
    h = torch.from_numpy(DENSE)
    for k, layer in enumerate(net.linears):
        pre = layer(h).detach().numpy()
        assert (pre >= bounds[k][0] - 1e-12).all() and (pre <= bounds[k][1] + 1e-12).all()
        h = torch.relu(layer(h))


def test_bad_arguments_are_named():
    net = random_relu_network(2, (3,), np.random.default_rng(0))
    with pytest.raises(ValueError, match="sense must be"):
        network_extreme(net, "argmax")
    with pytest.raises(ValueError, match="r > 0"):
        network_extreme(net, "max", ball=([0.5, 0.5], 0.0))
