"""Decoders D: visualizations → predictions of the unit, all with one call signature.

After Sec. 5 of *Don't trust your eyes*; formulation ours. ``decoder(phi, x)`` returns the
predicted values f̂(x) of shape (m,) for points x of shape (m, d); 2-AFC answers and local
predictions are derived from these values (see :mod:`theory.tasks`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from fvtrust.theory.domain import Array, check_in_cube, l1
from fvtrust.theory.visualization import Visualization


def _require_full(phi: Visualization, who: str) -> None:
    if phi.x_min is None or phi.v_min is None:
        raise ValueError(f"{who} needs both extremes; got a max-only visualization")


class Decoder(ABC):
    """D(Φ(f)) as a function of the query point."""

    name: str = "decoder"

    def __call__(self, phi: Visualization, x: ArrayLike) -> Array:
        pts = check_in_cube(x, phi.d, name="query")
        return np.asarray(self.predict(phi, pts), dtype=np.float64).reshape(-1)

    @abstractmethod
    def predict(self, phi: Visualization, pts: Array) -> Array:
        """Predicted f(x) for validated points (m, d)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ChanceDecoder(Decoder):
    """D0 ≡ (f(x_min) + f(x_max)) / 2: error ≤ R/2 for every f (Proposition 1)."""

    name = "chance (D0)"

    def predict(self, phi: Visualization, pts: Array) -> Array:
        _require_full(phi, self.name)
        return np.full(pts.shape[0], phi.midpoint)


class AffineD1Decoder(Decoder):
    """D*(Φ)(x) = v_min + R·|x − x_min|: exact for affine units on [0, 1] (d = 1)."""

    name = "affine (d=1)"

    def predict(self, phi: Visualization, pts: Array) -> Array:
        _require_full(phi, self.name)
        if phi.d != 1:
            raise ValueError(f"the affine decoder is exact only for d = 1, got d={phi.d}")
        return phi.v_min + phi.range * np.abs(pts[:, 0] - phi.x_min[0])


def lipschitz_band(phi: Visualization, pts: Array, L: float) -> tuple[Array, Array]:
    """The band ℓ ≤ f ≤ u that Φ and an ℓ1-Lipschitz constant L allow.

    ℓ(x) = max(f_min, f_max − L‖x − x_max‖₁),  u(x) = min(f_max, f_min + L‖x − x_min‖₁).
    """
    _require_full(phi, "the Lipschitz band")
    if not np.isfinite(L) or L <= 0:
        raise ValueError(f"Lipschitz constant L must be > 0, got L={L!r}")
    lower = np.maximum(phi.v_min, phi.v_max - L * l1(pts, phi.x_max))
    upper = np.minimum(phi.v_max, phi.v_min + L * l1(pts, phi.x_min))
    return lower, upper


@dataclass(frozen=True)
class LipschitzBandDecoder(Decoder):
    """(ℓ + u)/2: minimax for L-Lipschitz units, error sup_x (u − ℓ)/2.

    Give the constant ``L`` directly, or ``relative`` to use L = relative·R per visualization.
    """

    L: float | None = None
    relative: float | None = None

    def __post_init__(self) -> None:
        if (self.L is None) == (self.relative is None):
            raise ValueError("give exactly one of L and relative")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"Lipschitz band (L={self.L})" if self.L else f"Lipschitz band (L={self.relative}R)"

    def constant(self, phi: Visualization) -> float:
        return float(self.L) if self.L is not None else float(self.relative) * phi.range

    def predict(self, phi: Visualization, pts: Array) -> Array:
        if phi.range == 0:
            return np.full(pts.shape[0], phi.v_max)
        lower, upper = lipschitz_band(phi, pts, self.constant(phi))
        return 0.5 * (lower + upper)

    def bound(self, phi: Visualization, pts: Array) -> float:
        """The proven worst-case error sup (u − ℓ)/2 over `pts`."""
        if phi.range == 0:
            return 0.0
        lower, upper = lipschitz_band(phi, pts, self.constant(phi))
        return float(np.max(upper - lower) / 2)


class NearestExtremeDecoder(Decoder):
    """Predict the value of the nearer extreme (ℓ1); the midpoint on ties. Plausible, wrong."""

    name = "nearest extreme"

    def predict(self, phi: Visualization, pts: Array) -> Array:
        _require_full(phi, self.name)
        to_min, to_max = l1(pts, phi.x_min), l1(pts, phi.x_max)
        return np.where(to_max < to_min, phi.v_max,
                        np.where(to_min < to_max, phi.v_min, phi.midpoint))


class InterpolatingDecoder(Decoder):
    """v_min + R·‖x − x_min‖/(‖x − x_min‖ + ‖x − x_max‖): smooth interpolation. Plausible, wrong."""

    name = "interpolating"

    def predict(self, phi: Visualization, pts: Array) -> Array:
        _require_full(phi, self.name)
        to_min, to_max = l1(pts, phi.x_min), l1(pts, phi.x_max)
        total = to_min + to_max
        frac = np.divide(to_min, total, out=np.full_like(total, 0.5), where=total > 0)
        return phi.v_min + phi.range * frac


def standard_decoders() -> list[Decoder]:
    """Every decoder that applies to any d (the no-go tests run all of them)."""
    return [ChanceDecoder(), NearestExtremeDecoder(), InterpolatingDecoder(),
            LipschitzBandDecoder(relative=1.0), LipschitzBandDecoder(relative=4.0)]


@dataclass(frozen=True)
class TableDecoder(Decoder):
    """A decoder given by arbitrary predictions per query (what hypothesis draws): it maps
    each query, in order, to ``values[i]`` whatever Φ is. Any decoder restricted to finitely
    many queries is of this form, so drawing ``values`` freely covers all of them."""

    values: tuple[float, ...] = ()

    name = "arbitrary"

    def predict(self, phi: Visualization, pts: Array) -> Array:
        if len(self.values) < pts.shape[0]:
            raise ValueError(f"table decoder has {len(self.values)} values for "
                             f"{pts.shape[0]} queries")
        return np.asarray(self.values[: pts.shape[0]], dtype=np.float64)
