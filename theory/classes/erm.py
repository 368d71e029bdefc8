"""Networks fitted by empirical risk minimization: the training data do not pin Φ down.

Theorem (ERM; after Sec. 5 of *Don't trust your eyes*, formulation ours): for a network f̂
fitted to data S and a ball B(z, r) missing S ∪ {a, b}, the tent pair of
:mod:`theory.classes.relu_networks` has exactly f̂'s training loss (τ = 0 on S), the same
Φ, and gap R − 2ε at z. Corollary (:func:`move_argmax`, the theory twin of the fooling
circuit): max(f̂, f_min + (R + 1)·τ_{x*,r}) moves the argmax to any x* and leaves f̂
unchanged on S. Proof: ``proofs/erm.py``; tests: ``tests/theory/test_erm.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from fvtrust.theory.classes.base import CounterexamplePair, FunctionClass, Membership, ensure_query
from fvtrust.theory.classes.relu_networks import CubeNetworkPhi, tent_pair, tent_witness
from fvtrust.theory.domain import Array, check_in_cube, l1
from fvtrust.theory.functions import ReLUNetwork, UnitFunction
from fvtrust.theory.relu import bump, maximum, random_relu_network
from fvtrust.theory.tasks import Task, Witness
from fvtrust.theory.visualization import Visualization

#: Members may exceed the reference training loss by this much (float64 round-off).
LOSS_TOL = 1e-10


class FittedNetwork(ReLUNetwork):
    """A ReLU network with the data S = (X, y) it was fitted to and its training loss."""

    def __init__(self, net: ReLUNetwork, data_x: Array, data_y: Array,
                 reference_loss: float | None = None, name: str = "f_hat") -> None:
        super().__init__(net.module, name=name)
        self.data_x = check_in_cube(data_x, net.d, name="training inputs")
        self.data_y = np.asarray(data_y, dtype=np.float64).reshape(-1)
        if self.data_y.shape[0] != self.data_x.shape[0]:
            raise ValueError(f"{self.data_x.shape[0]} training inputs but "
                             f"{self.data_y.shape[0]} targets")
        self.reference_loss = self.loss() if reference_loss is None else float(reference_loss)

    def loss(self) -> float:
        """Mean squared error on S."""
        return float(np.mean((self(self.data_x) - self.data_y) ** 2))

    def carry(self, net: ReLUNetwork, name: str) -> FittedNetwork:
        """Another network judged against the same data and reference loss."""
        return FittedNetwork(net, self.data_x, self.data_y, self.reference_loss, name=name)


def fit_network(data_x: Array, data_y: Array, widths: tuple[int, ...], seed: int,
                steps: int = 300, lr: float = 0.02) -> FittedNetwork:
    """Full-batch Adam on the squared loss, float64, seeded: deterministic on CPU."""
    net = random_relu_network(data_x.shape[1], widths, np.random.default_rng(seed))
    x, y = torch.from_numpy(data_x), torch.from_numpy(data_y)
    opt = torch.optim.Adam(net.module.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.mean((net.torch_forward(x) - y) ** 2)
        loss.backward()
        opt.step()
    return FittedNetwork(net, data_x, data_y)


def move_argmax(f: ReLUNetwork, x_star: ArrayLike, phi: Visualization,
                avoid: Array | None = None, r: float | None = None) -> ReLUNetwork:
    """max(f, lo + (hi − lo + 1)·τ_{x*,r}): argmax moves to x* (value hi + 1 > max f) and f is
    unchanged off B(x*, r), since lo ≤ min f on the cube (Φ certified by MILP).

    r defaults to half the ℓ1 distance from x* to the points in `avoid` (e.g. the training
    set), so the network is unchanged there.
    """
    if phi.method != "milp" or "lo" not in phi.meta:
        raise ValueError("move_argmax needs Φ certified on the cube (network_visualization)")
    x_star = ensure_query(x_star, f.d)
    if r is None:
        if avoid is None or not len(avoid):
            raise ValueError("give a radius r or the points to avoid")
        r = float(np.min(l1(np.asarray(avoid, dtype=np.float64), x_star))) / 2
    if r <= 0:
        raise ValueError(f"radius must be > 0 (x* must not be a point to avoid), got r={r}")
    lo, hi = float(phi.meta["lo"]), float(phi.meta["hi"])
    moved = maximum(f, bump(lo, hi - lo + 1.0, x_star, r), name="moved")
    return f.carry(moved, "moved") if isinstance(f, FittedNetwork) else moved


class ERMNetworks(CubeNetworkPhi, FunctionClass):
    """F_S: the ReLU networks (``[Linear, ReLU]*k + [Linear]`` in float64, any depth and
    width) whose mean squared error on the data S is at most L_S(f̂) + LOSS_TOL, where f̂ is
    the network fitted to S (full-batch Adam, seeded; a near-minimiser, not a certified one):
    every network that fits S at least as well as training did. The pairs keep the loss
    exactly (τ = 0 on S), so they stay in F_S for any such f̂.

    Members are :class:`FittedNetwork` s; the sampler draws S (n points, targets from a
    smooth function plus noise) and fits f̂.
    """

    key = "erm"
    title = "networks fitted by ERM"
    paper = "impossible"

    def __init__(self, d: int = 2, n_data: int = 12, widths: tuple[int, ...] = (12, 12),
                 grid_n: int = 21) -> None:
        super().__init__(d, grid_n)
        self.n_data, self.widths = n_data, widths

    def build(self, params: Any) -> FittedNetwork:
        seed = int(params)
        rng = np.random.default_rng(seed)
        x = rng.random((self.n_data, self.d))
        y = np.sin(3 * x.sum(axis=1)) + 0.1 * rng.normal(size=self.n_data)
        return fit_network(x, y, self.widths, seed)

    def draw(self, rng: np.random.Generator) -> int:
        return int(rng.integers(2**31))

    def params_strategy(self) -> Any:
        from hypothesis import strategies as st

        return st.integers(0, 2**31 - 1)

    def membership(self, f: UnitFunction) -> Membership:
        if not isinstance(f, FittedNetwork):
            return Membership(False, f"{type(f).__name__} carries no training data")
        loss = f.loss()
        if loss > f.reference_loss + LOSS_TOL:
            return Membership(False, f"training loss {loss:.3e} exceeds the ERM value "
                                     f"{f.reference_loss:.3e}")
        return Membership(True)

    def counterexample_pair(self, f: UnitFunction | Visualization, z: ArrayLike,
                            eps: float) -> CounterexamplePair:
        if not isinstance(f, FittedNetwork):
            raise ValueError("the ERM pair needs the fitted network with its data S")
        self.require_member(f)
        pair = tent_pair(f, self.visualize(f), z, eps, avoid=f.data_x)
        return CounterexamplePair(f.carry(pair.f_plus, "f+"), f.carry(pair.f_minus, "f-"),
                                  pair.phi, pair.z, pair.eps, pair.meta)

    def explicit_witness(self, task: Task, eps: float) -> Witness:
        f = self.sample(0)
        w = tent_witness(self, f, task, eps, avoid=f.data_x)
        return Witness(w.task, f.carry(w.f_plus, "f+"), f.carry(w.f_minus, "f-"), w.phi,
                       w.queries, w.source)
