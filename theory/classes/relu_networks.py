"""ReLU networks (hence piecewise-affine and continuous units): no decoder beats chance.

Theorem (ReLU networks; after Sec. 5 of *Don't trust your eyes*, formulation ours): for
a network f with Φ(f) = (a, b, f_min, f_max), a query z ∉ {a, b} and r below the ℓ1
distance from z to {a, b},

    f₊ = max(f, f_min + (R − ε)·τ_{z,r}),   f₋ = min(f, f_max − (R − ε)·τ_{z,r})

are ReLU networks with Φ(f₊) = Φ(f₋) = Φ(f) and f₊(z) − f₋(z) ≥ R − 2ε.
The paper's canonical instance is f₀(x) = 1 − ‖x − b‖₁/d with b = 1, a = 0.
Proof: ``proofs/relu_networks.py``; tests: ``tests/theory/test_relu_networks.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from theory.classes.base import (
    CounterexamplePair,
    FunctionClass,
    Membership,
    check_eps,
    ensure_query,
)
from theory.domain import Array, l1
from theory.functions import ReLUNetwork, UnitFunction
from theory.relu import affine_network, bump, maximum, minimum, random_relu_network
from theory.tasks import LOCAL_RADIUS, Task, Witness
from theory.visualization import Visualization, grid_visualization


def tent_pair(f: ReLUNetwork, phi: Visualization, z: ArrayLike, eps: float,
              avoid: Array | None = None) -> CounterexamplePair:
    """The tent construction around z, with the ball kept off {a, b} ∪ `avoid`.

    r = half the ℓ1 distance from z to the nearest point it must avoid, so τ vanishes there.
    """
    z = ensure_query(z, f.d)
    eps = check_eps(eps, phi.range)
    keep_off = np.stack([phi.x_min, phi.x_max])
    if avoid is not None and len(avoid):
        keep_off = np.concatenate([keep_off, np.asarray(avoid, dtype=np.float64)])
    dist = float(np.min(l1(keep_off, z)))
    if dist <= 1e-12:
        raise ValueError(f"query z={z.tolist()} coincides with an extreme or a training "
                         f"point; the tent must avoid those")
    r = dist / 2
    height = phi.range - eps
    f_plus = maximum(f, bump(phi.v_min, height, z, r), name="f+")
    f_minus = minimum(f, bump(phi.v_max, -height, z, r), name="f-")
    return CounterexamplePair(f_plus, f_minus, phi, z, eps, meta={"radius": r})


def tent_witness(cls: FunctionClass, f: ReLUNetwork, task: Task, eps: float,
                 avoid: Array | None = None) -> Witness:
    """Witnesses from the tent pair: a mid-range query (A, B), a query ρ from x_max (D),
    and for (C) a low query z against a point z′ where f is mid-range, outside the tent."""
    phi = cls.visualize(f)
    pts = cls.grid.points
    values = f(pts)
    far = np.min(l1(np.stack([phi.x_min, phi.x_max])[:, None, :], pts[None]), axis=0) > 0
    if avoid is not None and len(avoid):
        far &= np.min(l1(np.asarray(avoid)[:, None, :], pts[None]), axis=0) > 1e-9
    if task is Task.LOCAL:
        near = far & (l1(pts, phi.x_max) <= LOCAL_RADIUS + 1e-12)
        z = pts[np.flatnonzero(near)[0]]
        return tent_pair(f, phi, z, eps, avoid).witness(task)
    mid = far & (np.abs(values - phi.midpoint) <= phi.range / 4)
    if task is Task.AFC:
        low = np.flatnonzero(far & (values <= phi.v_min + phi.range / 4))
        z = pts[low[0]] if len(low) else pts[np.flatnonzero(far)[0]]
        pair = tent_pair(f, phi, z, eps, avoid)
        r = pair.meta["radius"]
        cand = np.flatnonzero(mid & (l1(pts, z) > r))
        z2 = pts[cand[np.argmin(np.abs(values[cand] - phi.midpoint))]]
        return Witness(task, pair.f_plus, pair.f_minus, phi, (pair.z, z2), "construction")
    z = pts[np.flatnonzero(mid)[0]] if np.any(mid) else pts[np.flatnonzero(far)[0]]
    return tent_pair(f, phi, z, eps, avoid).witness(task)


def canonical_network(d: int) -> ReLUNetwork:
    """f₀(x) = 1 − ‖x − 1‖₁/d = mean(x): argmin 0, argmax 1, range 1."""
    return affine_network(np.full(d, 1.0 / d), 0.0, name="f0")


class ReLUNetworks(FunctionClass):
    """Real ReLU networks d → … → 1 (Linear/ReLU ``torch.nn.Sequential``)."""

    key = "relu"
    title = "ReLU networks (piecewise affine, continuous)"
    paper = "impossible"

    def __init__(self, d: int = 2, grid_n: int = 21) -> None:
        super().__init__(d, grid_n)

    def build(self, params: Any) -> ReLUNetwork:
        widths, seed = params
        return random_relu_network(self.d, widths, np.random.default_rng(seed))

    def draw(self, rng: np.random.Generator) -> tuple[tuple[int, ...], int]:
        depth = int(rng.integers(1, 3))
        return tuple(int(w) for w in rng.integers(2, 9, size=depth)), int(rng.integers(2**31))

    def params_strategy(self) -> Any:
        from hypothesis import strategies as st

        return st.tuples(st.lists(st.integers(2, 8), min_size=1, max_size=2).map(tuple),
                         st.integers(0, 2**31 - 1))

    def membership(self, f: UnitFunction) -> Membership:
        if not isinstance(f, ReLUNetwork):
            return Membership(False, f"{type(f).__name__} is not a ReLU network")
        return Membership(True)

    def visualize(self, f: UnitFunction) -> Visualization:
        """Φ of f restricted to the class grid (exact there; the theorem holds on any domain)."""
        return grid_visualization(f, self.grid)

    def canonical_phi(self) -> Visualization:
        return self.visualize(canonical_network(self.d))

    def counterexample_pair(self, f: UnitFunction | Visualization, z: ArrayLike,
                            eps: float) -> CounterexamplePair:
        if isinstance(f, Visualization):
            raise ValueError("the ReLU pair is grafted onto a network f, not built from Φ")
        self.require_member(f)
        return tent_pair(f, self.visualize(f), z, eps)

    def explicit_witness(self, task: Task, eps: float) -> Witness:
        return tent_witness(self, canonical_network(self.d), task, eps)
