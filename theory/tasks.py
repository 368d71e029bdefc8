"""What a decoder must predict: the four tasks, their scores and chance levels.

After Sec. 5 of *Don't trust your eyes*; formulation ours. Errors are normalized by the
range R = f(x_max) − f(x_min), so chance is 1/2 for (A), (B), (D) (the constant decoder D0
never does worse, Proposition 1) and worst-case accuracy 1/2 for the 2-AFC task (C).

* (A) ``sup``   — whole function: ‖D(Φf) − f‖_∞ / R over a point set.
* (B) ``query`` — stimulus prediction at a query z: |D(Φf)(z) − f(z)| / R.
* (C) ``afc``   — 2-AFC: which of z, z′ activates f more (pairs whose values differ by at
  least γR, γ = AFC_MARGIN), accuracy.
* (D) ``local`` — behaviour near x_max: (B) restricted to ‖z − x_max‖₁ ≤ ρ (ρ = LOCAL_RADIUS).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike

from fvtrust.theory.decoders import Decoder
from fvtrust.theory.domain import Array, check_in_cube, l1
from fvtrust.theory.functions import UnitFunction
from fvtrust.theory.visualization import Visualization

#: γ: 2-AFC pairs count only if their true values differ by at least γ·R.
AFC_MARGIN = 0.25
#: ρ: the local task asks about queries within this ℓ1 distance of x_max.
LOCAL_RADIUS = 0.1


class Task(StrEnum):
    SUP = "A"
    QUERY = "B"
    AFC = "C"
    LOCAL = "D"

    @property
    def title(self) -> str:
        return {"A": "sup-norm prediction", "B": "stimulus prediction",
                "C": "2-AFC", "D": "local near x_max"}[self.value]

    @property
    def higher_is_better(self) -> bool:
        return self is Task.AFC


#: Chance level per task: normalized error of D0 (A, B, D), worst-case accuracy (C).
CHANCE: dict[Task, float] = {Task.SUP: 0.5, Task.QUERY: 0.5, Task.AFC: 0.5, Task.LOCAL: 0.5}


def normalized(error: float, R: float) -> float:
    """error / R, with 0/0 := 0 (a constant unit predicted exactly)."""
    if R < 0:
        raise ValueError(f"range R must be >= 0, got {R}")
    if R == 0:
        return 0.0 if error <= 1e-12 else float("inf")
    return float(error / R)


def sup_error(decoder: Decoder, f: UnitFunction, phi: Visualization, points: ArrayLike) -> float:
    """(A) max over `points` of |D(Φ)(x) − f(x)| / R (a lower bound on the sup over X)."""
    pts = check_in_cube(points, f.d, name="points")
    return normalized(float(np.max(np.abs(decoder(phi, pts) - f(pts)))), phi.range)


def local_points(points: ArrayLike, phi: Visualization, radius: float = LOCAL_RADIUS) -> Array:
    """The points within ℓ1 distance ρ of x_max."""
    pts = check_in_cube(points, phi.d, name="points")
    return pts[l1(pts, phi.x_max) <= radius + 1e-12]


def local_error(decoder: Decoder, f: UnitFunction, phi: Visualization, points: ArrayLike,
                radius: float = LOCAL_RADIUS) -> float:
    """(D) max |D(Φ)(z) − f(z)| / R over points z with ‖z − x_max‖₁ ≤ ρ."""
    near = local_points(points, phi, radius)
    if near.shape[0] == 0:
        raise ValueError(f"no point lies within radius {radius} of x_max={phi.x_max.tolist()}")
    return sup_error(decoder, f, phi, near)


def afc_accuracy(decoder: Decoder, f: UnitFunction, phi: Visualization,
                 pairs: ArrayLike, margin: float = AFC_MARGIN,
                 view: Visualization | None = None) -> float:
    """(C) accuracy of "z activates more than z′ iff D(z) > D(z′)" over the pairs
    (shape (k, 2, d)) whose true values differ by ≥ margin·R; a decoder tie scores 1/2.
    Returns 1.0 when no pair qualifies (nothing to get wrong). The decoder reads `view`
    (a Φ variant of f; default phi), R is always f's own range from phi."""
    arr = np.asarray(pairs, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != 2 or arr.shape[2] != f.d:
        raise ValueError(f"pairs must have shape (k, 2, {f.d}), got {arr.shape}")
    z, z2 = arr[:, 0], arr[:, 1]
    truth = f(z) - f(z2)
    keep = np.abs(truth) >= margin * phi.range - 1e-12
    if phi.range == 0 or not np.any(keep):
        return 1.0
    shown = phi if view is None else view
    guess = decoder(shown, z[keep]) - decoder(shown, z2[keep])
    score = np.where(guess == 0, 0.5, (np.sign(guess) == np.sign(truth[keep])).astype(float))
    return float(np.mean(score))


@dataclass(frozen=True)
class Witness:
    """Two members with the same Φ that any decoder must tell apart, and where.

    For (A), (B), (D): ``queries = (z,)`` and every decoder errs by ≥ |f₊(z) − f₋(z)|/2 on
    one of them (the indistinguishability lemma). For (C): ``queries = (z, z′)`` with
    f₊(z) − f₊(z′) ≥ γR and f₋(z′) − f₋(z) ≥ γR, so every decoder answers one wrongly.
    """

    task: Task
    f_plus: UnitFunction
    f_minus: UnitFunction
    phi: Visualization
    queries: tuple[Array, ...]
    source: str

    @property
    def R(self) -> float:
        return self.phi.range

    def lower_bound(self) -> float:
        """The normalized error every decoder reaches on one member (A, B, D), or the
        accuracy no decoder can exceed in the worst case (C)."""
        if self.task is Task.AFC:
            z, z2 = self.queries
            flip = min(float(self.f_plus(z)[0] - self.f_plus(z2)[0]),
                       float(self.f_minus(z2)[0] - self.f_minus(z)[0]))
            return 0.5 if flip >= AFC_MARGIN * self.R - 1e-12 else 1.0
        (z,) = self.queries
        gap = abs(float(self.f_plus(z)[0] - self.f_minus(z)[0]))
        return normalized(gap / 2, self.R)

    def decoder_score(self, decoder: Decoder) -> float:
        """The decoder's worst score over the two members (error for A, B, D; accuracy for C)."""
        if self.task is Task.AFC:
            pair = np.stack(self.queries)[None]
            return min(afc_accuracy(decoder, f, self.phi, pair)
                       for f in (self.f_plus, self.f_minus))
        return max(sup_error(decoder, f, self.phi, self.queries[0])
                   for f in (self.f_plus, self.f_minus))
