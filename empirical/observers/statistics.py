"""Statistics that respect a clustered design: trials nested in units.

Trials of one unit share that unit's query images and reference set, so they are not
independent draws. A trial-level bootstrap then treats a lucky unit's 20 trials as 20
pieces of evidence and its interval comes out too narrow. The hierarchical bootstrap
resamples what varies independently:

    accuracy* = mean over u* of mean over t* of correct[u*, t*],

with u* drawn with replacement from the units, then t* with replacement from the trials of
each drawn unit. The estimate itself is the mean of the unit means (every unit weighs the same).

A **paired** comparison of two conditions scored on the same units and trials resamples the
per-trial differences d[u, t] = a[u, t] − b[u, t] the same way (:func:`paired_differences`), so
what the two conditions share (the unit, the queries) cancels. :func:`units_needed` turns a
run's variance components into the units a comparison needs for a given interval width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


def _as_clusters(values: Sequence[Sequence[float] | np.ndarray]) -> list[np.ndarray]:
    clusters = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    if not clusters:
        raise ValueError("need at least one unit (cluster) of trials, got none")
    empty = [i for i, c in enumerate(clusters) if c.size == 0]
    if empty:
        raise ValueError(f"units {empty} have no trials")
    bad = [i for i, c in enumerate(clusters) if not np.isfinite(c).all()]
    if bad:
        raise ValueError(f"units {bad} have NaN or infinite trial values")
    return clusters


def clustered_mean(values: Sequence[Sequence[float] | np.ndarray]) -> float:
    """Mean over units of the mean over each unit's trials."""
    return float(np.mean([c.mean() for c in _as_clusters(values)]))


def hierarchical_bootstrap_ci(values: Sequence[Sequence[float] | np.ndarray], n_boot: int = 2000,
                              seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of :func:`clustered_mean` under resampling units, then trials
    within the drawn units. One unit gives the trial-level interval (nothing else varies)."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    clusters = _as_clusters(values)
    rng = np.random.default_rng(seed)
    n_units = len(clusters)
    sizes = np.array([len(c) for c in clusters])
    width = int(sizes.max())
    # Pad to a rectangle; each row draws trial indices below its own unit's size.
    padded = np.zeros((n_units, width))
    for i, c in enumerate(clusters):
        padded[i, :len(c)] = c
    units = rng.integers(0, n_units, size=(n_boot, n_units))
    draw = np.floor(rng.random((n_boot, n_units, width)) * sizes[units][..., None]).astype(np.int64)
    picked = np.take_along_axis(padded[units], draw, axis=2)
    in_unit = np.arange(width)[None, None, :] < sizes[units][..., None]
    unit_means = (picked * in_unit).sum(2) / sizes[units]
    means = unit_means.mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@dataclass
class ClusteredEstimate:
    """An accuracy with its unit-clustered interval and the counts behind it."""

    mean: float
    ci: tuple[float, float]
    n_units: int
    n_trials: int

    @classmethod
    def of(cls, values: Sequence[Sequence[float] | np.ndarray], seed: int = 0,
           n_boot: int = 2000) -> ClusteredEstimate:
        clusters = _as_clusters(values)
        return cls(clustered_mean(clusters), hierarchical_bootstrap_ci(clusters, n_boot, seed),
                   len(clusters), int(sum(len(c) for c in clusters)))

    def covers(self, value: float) -> bool:
        return self.ci[0] <= value <= self.ci[1]


def paired_differences(a: Sequence[Sequence[float] | np.ndarray],
                       b: Sequence[Sequence[float] | np.ndarray]) -> list[np.ndarray]:
    """Per unit, the per-trial differences a[u, t] − b[u, t] of two conditions scored on the
    same units and trials (their clustered mean is the difference of their accuracies)."""
    ca, cb = _as_clusters(a), _as_clusters(b)
    if len(ca) != len(cb):
        raise ValueError(f"a paired comparison needs the same units: {len(ca)} vs {len(cb)}")
    mismatched = [i for i, (x, y) in enumerate(zip(ca, cb, strict=True)) if x.shape != y.shape]
    if mismatched:
        raise ValueError(f"a paired comparison needs the same trials: units {mismatched} differ")
    return [x - y for x, y in zip(ca, cb, strict=True)]


@dataclass
class VarianceComponents:
    """σ_b² (between units, of the true unit means) and σ_w² (between trials of one unit),
    estimated from a run of n units with m trials each (m: harmonic mean of the units' counts):
    σ_w² = mean of the units' trial variances; σ_b² = max(0, var(unit means) − σ_w²/m)."""

    between: float
    within: float
    n_units: int
    trials: float

    @classmethod
    def of(cls, values: Sequence[Sequence[float] | np.ndarray]) -> VarianceComponents:
        clusters = _as_clusters(values)
        if len(clusters) < 2 or any(len(c) < 2 for c in clusters):
            raise ValueError(f"variance components need >= 2 units of >= 2 trials, got "
                             f"{[len(c) for c in clusters]} trials per unit")
        within = float(np.mean([c.var(ddof=1) for c in clusters]))
        sizes = np.array([len(c) for c in clusters], dtype=np.float64)
        trials = float(len(sizes) / np.sum(1 / sizes)) if np.ptp(sizes) else float(sizes[0])
        means = np.array([c.mean() for c in clusters])
        return cls(max(0.0, float(means.var(ddof=1)) - within / trials), within, len(clusters), trials)

    def half_width(self, n_units: int, trials: float, level: float = 0.95) -> float:
        """The half-width of :func:`hierarchical_bootstrap_ci` at `n_units` × `trials`:
        z·√((σ_b² + 2σ_w²/m)/n). The 2: resampling trials within the resampled units adds
        σ_w²/m to the σ_w²/m the unit means already carry (the bootstrap is conservative)."""
        z = NormalDist().inv_cdf((1 + level) / 2)
        return z * math.sqrt((self.between + 2 * self.within / trials) / n_units)

    def units_needed(self, half_width: float = 0.03, trials: float | None = None,
                     level: float = 0.95) -> int:
        """Fewest units for an interval of at most ±`half_width` with `trials` per unit
        (default: this run's): n = ⌈z²(σ_b² + 2σ_w²/m) / h²⌉, at least 2."""
        if not 0 < half_width < 1:
            raise ValueError(f"half_width must lie in (0, 1), got {half_width}")
        m = self.trials if trials is None else trials
        if not m >= 1:
            raise ValueError(f"trials per unit must be >= 1, got {m}")
        z = NormalDist().inv_cdf((1 + level) / 2)
        return max(2, math.ceil(z * z * (self.between + 2 * self.within / m) / half_width ** 2))
