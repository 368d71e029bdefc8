"""Pictures of the theory for the notebooks: a 2-D unit as a heat map with its visualization."""

from __future__ import annotations

import matplotlib.pyplot as plt


def unit_heatmap(ax: plt.Axes, f: object, grid: object, phi: object, title: str,
                 z: object = None) -> None:
    """A 2-D unit on a grid as a heatmap, with its visualization's extremes (and a query)."""
    n = grid.n
    ax.imshow(f(grid.points).reshape(n, n).T, origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
    ax.plot(*phi.x_min, "wv", ms=9, label="x_min")
    ax.plot(*phi.x_max, "r^", ms=9, label="x_max")
    if z is not None:
        ax.plot(*z, "k*", ms=12, label="query z")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
