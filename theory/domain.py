"""The input domain X = [0, 1]^d, finite grids on it, and the norms the theory uses.

After Sec. 5 of *Don't trust your eyes* (Geirhos et al., ICML 2024); formulation ours.
Every point set is a float64 array of shape (m, d); a single point may be given as (d,).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

#: Points closer than this to the cube (in ℓ∞) are accepted as inside it: float64 round-off.
CUBE_TOLERANCE = 1e-12


def check_dimension(d: int) -> int:
    """Validate the input dimension d ≥ 1."""
    if not isinstance(d, int | np.integer) or isinstance(d, bool) or d < 1:
        raise ValueError(f"dimension d must be an integer >= 1, got d={d!r}")
    return int(d)


def as_points(x: ArrayLike, d: int, *, name: str = "x") -> Array:
    """Return x as a finite float64 array of shape (m, d); a 1-D input of length d is one point."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == d:
        arr = arr[None, :]
    elif arr.ndim == 0 and d == 1:
        arr = arr.reshape(1, 1)
    if arr.ndim != 2 or arr.shape[1] != d:
        raise ValueError(f"{name} must have shape (m, {d}) or ({d},), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_in_cube(x: ArrayLike, d: int, *, name: str = "query") -> Array:
    """Validate that every point of x lies in [0, 1]^d and return it as (m, d) points."""
    pts = as_points(x, d, name=name)
    bad = np.any((pts < -CUBE_TOLERANCE) | (pts > 1 + CUBE_TOLERANCE), axis=1)
    if np.any(bad):
        first = pts[np.argmax(bad)]
        raise ValueError(f"{name} {first.tolist()} lies outside the cube [0, 1]^{d}")
    return np.clip(pts, 0.0, 1.0)


def l1(x: ArrayLike, y: ArrayLike) -> Array:
    """‖x − y‖₁ row-wise (broadcasting over leading axes)."""
    return np.sum(np.abs(np.asarray(x, float) - np.asarray(y, float)), axis=-1)


def linf(x: ArrayLike, y: ArrayLike) -> Array:
    """‖x − y‖_∞ row-wise (broadcasting over leading axes)."""
    return np.max(np.abs(np.asarray(x, float) - np.asarray(y, float)), axis=-1)


def vertices(d: int) -> Array:
    """The 2^d vertices of [0, 1]^d in lexicographic order."""
    check_dimension(d)
    return np.array(list(itertools.product((0.0, 1.0), repeat=d)))


@dataclass(frozen=True)
class Grid:
    """The regular grid {0, 1/(n−1), …, 1}^d on [0, 1]^d, points in lexicographic order.

    Lexicographic order is the tie-breaking order of grid visualizations: among equal
    values, the first grid point wins.
    """

    d: int
    n: int

    def __post_init__(self) -> None:
        check_dimension(self.d)
        if not isinstance(self.n, int | np.integer) or self.n < 2:
            raise ValueError(f"grid size n must be an integer >= 2 (else the grid is empty "
                             f"or a single point), got n={self.n!r}")

    @property
    def step(self) -> float:
        """Spacing h = 1/(n − 1)."""
        return 1.0 / (self.n - 1)

    @cached_property
    def points(self) -> Array:
        """All n^d grid points, shape (n^d, d)."""
        axis = np.linspace(0.0, 1.0, self.n)
        mesh = np.meshgrid(*([axis] * self.d), indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def __len__(self) -> int:
        return self.n**self.d

    def index_of(self, x: ArrayLike) -> NDArray[np.int64]:
        """Indices of grid points x (each must be a grid point up to 1e-9)."""
        pts = as_points(x, self.d)
        k = np.rint(pts * (self.n - 1))
        if np.any(np.abs(k - pts * (self.n - 1)) > 1e-9) or np.any((k < 0) | (k > self.n - 1)):
            raise ValueError(f"points {pts.tolist()} are not all points of the grid {self}")
        weights = self.n ** np.arange(self.d - 1, -1, -1)
        return (k.astype(np.int64) * weights).sum(axis=1)

    def neighbour_pairs(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Index pairs (i, j) with grid point j = point i + h·e_k for some axis k.

        On a grid the ℓ1 distance equals the shortest path along such edges, so a bound
        on neighbour differences bounds every pair (used for Lipschitz and monotone).
        """
        idx = np.arange(len(self)).reshape((self.n,) * self.d)
        lo, hi = [], []
        for axis in range(self.d):
            lo.append(np.delete(idx, -1, axis=axis).ravel())
            hi.append(np.delete(idx, 0, axis=axis).ravel())
        return np.concatenate(lo), np.concatenate(hi)

    def is_vertex(self) -> NDArray[np.bool_]:
        """Mask of grid points that are vertices of the cube."""
        p = self.points
        return np.all((p == 0.0) | (p == 1.0), axis=1)
