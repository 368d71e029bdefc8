"""Statistics that respect a clustered design: trials nested in units.

Trials of one unit share that unit's query images and reference set, so they are not
independent draws. A trial-level bootstrap then treats a lucky unit's 20 trials as 20
pieces of evidence and its interval comes out too narrow. The hierarchical bootstrap
resamples what varies independently:

    accuracy* = mean over u* of mean over t* of correct[u*, t*],

with u* drawn with replacement from the units, then t* with replacement from the trials of
each drawn unit. The estimate itself is the mean of the unit means (every unit weighs the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
