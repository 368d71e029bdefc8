"""The network no-go pairs, checked on members the package did not sample itself.

Members are plain ``torch.nn.Sequential`` networks with torch's own initialization (not the
package's He-normal sampler), of random depth, width and input dimension; ERM members are
fitted here with torch's SGD, not with ``fit_network``. Queries are random points of the
continuous cube, not grid points. Every claim is checked on the cube: Φ equality by MILP,
and independently by dense sampling (no sampled point may beat the certified extremes).
"""

import numpy as np
import pytest
import torch

from fvtrust.theory.classes import ERMNetworks, ReLUNetworks
from fvtrust.theory.classes.erm import FittedNetwork
from fvtrust.theory.functions import ReLUNetwork

TRIALS = 200


def _random_sequential(rng: np.random.Generator, d: int) -> torch.nn.Sequential:
    torch.manual_seed(int(rng.integers(2**31)))
    widths = [d, *rng.integers(2, 11, size=int(rng.integers(1, 4))).tolist(), 1]
    layers: list[torch.nn.Module] = []
    for k in range(len(widths) - 1):
        if k:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(widths[k], widths[k + 1]))
    return torch.nn.Sequential(*layers).double()


def _query(f, phi, rng: np.random.Generator) -> np.ndarray | None:
    """A random cube point where f is strictly inside its range (None: not found)."""
    pts = rng.random((256, f.d))
    v = f(pts)
    ok = np.flatnonzero((v > phi.v_min + 1e-3 * phi.range) & (v < phi.v_max - 1e-3 * phi.range))
    return pts[ok[0]] if len(ok) else None


def _dense_check(f, pair, rng: np.random.Generator) -> bool:
    """Independent of the MILP: no sampled point beats the pair's extremes."""
    pts = np.concatenate([rng.random((4000, f.d)), pair.z + 0.1 * (rng.random((1000, f.d)) - 0.5)])
    pts = np.clip(pts, 0, 1)
    slack = 1e-9 + pair.phi.eta
    return all(float(g(pts).max()) <= pair.phi.v_max + slack and float(g(pts).min()) >= pair.phi.v_min - slack
               for g in (pair.f_plus, pair.f_minus))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_relu_pairs_hold_on_the_cube_for_independent_networks(d):
    cls = ReLUNetworks(d=d)
    rng = np.random.default_rng(100 + d)
    done, degenerate, failures = 0, 0, []
    while done < TRIALS // 3 + (d == 1) * (TRIALS % 3):
        f = ReLUNetwork(_random_sequential(rng, d))
        phi = cls.visualize(f)
        if phi.range < 1e-6:
            degenerate += 1
            with pytest.raises(ValueError, match="constant on the cube"):
                cls.counterexample_pair(f, np.full(d, 0.5), 1e-3)
            continue
        z = _query(f, phi, rng)
        if z is None:
            degenerate += 1
            continue
        eps = float(rng.uniform(1e-3, 0.2)) * phi.range
        pair = cls.counterexample_pair(f, z, eps)
        checks = pair.verify(cls)
        checks["dense sampling agrees"] = _dense_check(f, pair, rng)
        if not all(checks.values()):
            failures.append((done, checks))
        done += 1
    assert not failures, failures[:3]
    assert degenerate < done  # most random networks are non-degenerate


def test_erm_pairs_hold_for_networks_fitted_outside_the_package():
    cls = ERMNetworks()
    rng = np.random.default_rng(7)
    done, failures = 0, []
    while done < TRIALS:
        n = int(rng.integers(4, 16))
        x = rng.random((n, 2))
        y = rng.normal(size=n)
        net = _random_sequential(rng, 2)
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(30):
            opt.zero_grad()
            loss = torch.mean((net(xt).squeeze(-1) - yt) ** 2)
            loss.backward()
            opt.step()
        f = FittedNetwork(ReLUNetwork(net), x, y)
        phi = cls.visualize(f)
        z = _query(f, phi, rng) if phi.range > 1e-6 else None
        if z is None or np.min(np.abs(x - z).sum(1)) < 1e-6:
            continue
        pair = cls.counterexample_pair(f, z, 1e-3 * phi.range + 1e-4)
        checks = pair.verify(cls)
        checks["loss unchanged"] = max(abs(g.loss() - f.loss()) for g in (pair.f_plus, pair.f_minus)) <= 1e-10
        checks["dense sampling agrees"] = _dense_check(f, pair, rng)
        if not all(checks.values()):
            failures.append((done, checks))
        done += 1
    assert not failures, failures[:3]
