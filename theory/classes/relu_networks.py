"""ReLU networks (hence piecewise-affine and continuous units): no decoder beats chance.

Theorem (ReLU networks; after Sec. 5 of *Don't trust your eyes*, formulation ours): let f
be a network with Φ(f) = (a, b, f_min, f_max) on the continuous cube, certified by MILP
(:mod:`theory.milp`: lo ≤ min f, hi ≥ max f, both within η of f(a), f(b)); let z be a query
with f_min < f(z) < f_max and B = B₁(z, r) a ball on which f stays strictly between its
extremes (certified by the MILP over B). For 0 < η < ε,

    f₊ = max(f, lo + (hi − lo − ε)·τ_{z,r}),   f₋ = min(f, hi − (hi − lo − ε)·τ_{z,r})

are ReLU networks equal to f off B, with the same argmin and argmax *sets* as f (so Φ agrees
under any tie-breaking rule), and f₊(z) − f₋(z) ≥ R − 2ε.
Extremes are taken on the cube, not on a grid: a grid minimum above the true one would clip
f everywhere. The paper's canonical instance is f₀(x) = 1 − ‖x − b‖₁/d with b = 1, a = 0.
Proof: ``proofs/relu_networks.py``; tests: ``tests/theory/test_relu_networks.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fvtrust.theory.classes.base import (
    CounterexamplePair,
    FunctionClass,
    Membership,
    check_eps,
    ensure_query,
)
from fvtrust.theory.domain import Array, l1
from fvtrust.theory.functions import ReLUNetwork, UnitFunction
from fvtrust.theory.milp import network_extreme, network_extremes
from fvtrust.theory.relu import affine_network, bump, maximum, minimum, random_relu_network
from fvtrust.theory.tasks import LOCAL_RADIUS, Task, Witness
from fvtrust.theory.visualization import Visualization


def network_visualization(f: ReLUNetwork, time_limit: float | None = 60.0) -> Visualization:
    """Φ(f) on the continuous cube [0, 1]^d by MILP: the incumbents' points and values, η the
    certified optimality gap, and the certified bounds lo ≤ min f, hi ≥ max f in ``meta``."""
    ext = network_extremes(f, time_limit=time_limit)
    return Visualization(ext.maximum.point.copy(), ext.maximum.value, ext.minimum.point.copy(),
                         ext.minimum.value, eta=ext.eta, method="milp", certified=True,
                         meta={"lo": ext.minimum.bound, "hi": ext.maximum.bound})


def shares_network_visualization(g: ReLUNetwork, phi: Visualization) -> bool:
    """On the continuous cube, by MILP: g(a) = f_min and g(b) = f_max (to 1e-9), and no point
    of the cube beats them beyond the two certificates (min g ≥ f_min − η, max g ≤ f_max + η
    with η = phi's and g's certified gaps): phi's extremes are g's extremes, with its values."""
    if not isinstance(g, ReLUNetwork) or phi.x_min is None or phi.v_min is None:
        return False
    ext = network_extremes(g)
    slack = phi.eta + ext.eta
    at_a, at_b = float(g(phi.x_min[None])[0]), float(g(phi.x_max[None])[0])
    return (abs(at_a - phi.v_min) <= 1e-9 and abs(at_b - phi.v_max) <= 1e-9
            and ext.minimum.bound >= phi.v_min - slack and ext.maximum.bound <= phi.v_max + slack)


def certified_ball(f: ReLUNetwork, phi: Visualization, z: Array, r: float,
                   halvings: int = 30) -> tuple[float, float, float]:
    """The largest r·2^−k (k ≤ `halvings`) such that, by MILP over B₁(z, r) ∩ cube,
    f(a) < min_B f and max_B f < f(b): no extreme point of f lies in the closed ball.
    Returns (r, lower bound of f on B, upper bound of f on B)."""
    for _ in range(halvings + 1):
        lo = network_extreme(f, "min", ball=(z, r))
        hi = network_extreme(f, "max", ball=(z, r))
        if lo.bound > phi.v_min and hi.bound < phi.v_max:
            return r, lo.bound, hi.bound
        r /= 2
    raise ValueError(f"no ball around z={z.tolist()} keeps f strictly between its extremes "
                     f"(f(z) = {float(f(z[None])[0]):.6g}, range [{phi.v_min:.6g}, {phi.v_max:.6g}])")


def tent_pair(f: ReLUNetwork, phi: Visualization, z: ArrayLike, eps: float,
              avoid: Array | None = None) -> CounterexamplePair:
    """The tent construction around z on the continuous cube (see the module docstring).

    r starts at half the ℓ1 distance from z to {a, b} ∪ `avoid` (so τ vanishes on those
    points, e.g. the training set) and is halved until the MILP certifies the ball.
    """
    z = ensure_query(z, f.d)
    if phi.method != "milp" or "lo" not in phi.meta:
        raise ValueError("the network pair needs Φ certified on the cube (network_visualization)")
    if phi.range <= 0:
        raise ValueError(f"f is constant on the cube (R = {phi.range}): a degenerate member has "
                         f"no pair; every decoder predicts it exactly")
    eps = check_eps(eps, phi.range)
    if phi.eta >= eps:
        raise ValueError(f"the MILP certificate eta={phi.eta:.2e} is not below eps={eps}: "
                         f"give a larger eps or a longer time limit")
    fz = float(f(z[None])[0])
    if not phi.v_min < fz < phi.v_max:
        raise ValueError(f"query z={z.tolist()} has f(z)={fz:.6g}, not strictly between the "
                         f"extremes {phi.v_min:.6g} and {phi.v_max:.6g}")
    keep_off = np.stack([phi.x_min, phi.x_max])
    if avoid is not None and len(avoid):
        keep_off = np.concatenate([keep_off, np.asarray(avoid, dtype=np.float64)])
    dist = float(np.min(l1(keep_off, z)))
    if dist <= 1e-12:
        raise ValueError(f"query z={z.tolist()} coincides with an extreme or a training "
                         f"point; the tent must avoid those")
    r, ball_lo, ball_hi = certified_ball(f, phi, z, dist / 2)
    lo, hi = float(phi.meta["lo"]), float(phi.meta["hi"])
    height = hi - lo - eps
    f_plus = maximum(f, bump(lo, height, z, r), name="f+")
    f_minus = minimum(f, bump(hi, -height, z, r), name="f-")
    return CounterexamplePair(f_plus, f_minus, phi, z, eps,
                              meta={"radius": r, "lo": lo, "hi": hi, "ball_lo": ball_lo,
                                    "ball_hi": ball_hi, "eta": phi.eta})


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


class CubeNetworkPhi:
    """Φ of network classes: computed and compared on the continuous cube by MILP."""

    #: Φ comes from MILPs on the cube: points and values agree to the solver's certificate.
    phi_tolerance = 1e-6

    def visualize(self, f: UnitFunction) -> Visualization:
        """Φ of f on the continuous cube, certified by MILP (η = the certified gap)."""
        if not isinstance(f, ReLUNetwork):
            raise ValueError(f"{type(f).__name__} is not a ReLU network: no MILP for its extremes")
        return network_visualization(f)

    def shares_visualization(self, g: UnitFunction, phi: Visualization) -> bool:
        return shares_network_visualization(g, phi)


class ReLUNetworks(CubeNetworkPhi, FunctionClass):
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
