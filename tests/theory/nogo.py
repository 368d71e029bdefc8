"""Shared assertions for the no-go property tests (imported by the per-class tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from fvtrust.theory.classes.base import CounterexamplePair, FunctionClass
from fvtrust.theory.decoders import TableDecoder, standard_decoders

#: ε as a fraction of R/2, drawn shrinkably.
eps_fractions = st.integers(1, 99).map(lambda k: k / 100)

#: Arbitrary decoders: any prediction at the query (and any decoder is one on one query).
arbitrary_predictions = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


def assert_nogo(cls: FunctionClass, pair: CounterexamplePair,
                extra_predictions: list[float] = ()) -> None:
    """The pair is in the class, shares Φ, has the gap, and defeats every decoder."""
    checks = pair.verify(cls)
    assert all(checks.values()), checks
    floor = pair.phi.range / 2 - pair.eps - 1e-9
    z = pair.z
    decoders = [*standard_decoders(), *(TableDecoder((float(p),)) for p in extra_predictions)]
    for dec in decoders:
        worst = max(abs(float(dec(pair.phi, z)[0] - f(z)[0])) for f in (pair.f_plus, pair.f_minus))
        assert worst >= floor, (dec, worst, floor)


def strictly_inside_point(cls: FunctionClass, f, phi, index: int) -> np.ndarray | None:
    """A grid point where f lies strictly between its extremes (plateaus at an extreme are
    common in ReLU networks), chosen by a drawn index; None if there is none."""
    pts = cls.grid.points
    v = f(pts)
    margin = 1e-6 * max(phi.range, 1e-12)
    inside = pts[(v > phi.v_min + margin) & (v < phi.v_max - margin)]
    return inside[index % len(inside)] if len(inside) else None


def interior_grid_point(cls: FunctionClass, phi, index: int) -> np.ndarray:
    """A grid point that is neither extreme, chosen by a drawn index."""
    pts = [p for p in cls.grid.points
           if not (np.array_equal(p, phi.x_min) or np.array_equal(p, phi.x_max))]
    return pts[index % len(pts)]
