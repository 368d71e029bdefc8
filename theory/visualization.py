"""Feature visualization as a map Φ(f) = (x_min, x_max, f(x_min), f(x_max)).

After Sec. 5 of *Don't trust your eyes* (argmax/argmin visualizations); formulation ours.
Ties are broken deterministically: the first point in lexicographic grid order (or in the
given candidate order). Three ways to compute Φ:

* :func:`grid_visualization` — exact on a finite grid;
* :func:`symbolic_visualization` — exact for closed forms: best candidate by exact
  arithmetic, then certified global by z3 (∀x ∈ [0,1]^d: f(x_min) ≤ f(x) ≤ f(x_max));
* :func:`numeric_visualization` — multi-start optimization for networks, reporting a
  certified optimality gap η (what a real optimizer returns: approximate extremes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import sympy as sp
import torch
from numpy.typing import ArrayLike
from scipy.optimize import minimize

from fvtrust.theory.domain import Array, Grid, check_in_cube, vertices
from fvtrust.theory.functions import ReLUNetwork, UnitFunction, cube_symbols
from fvtrust.theory.symbolic import exact, exact_floats, in_cube, prove


@dataclass(frozen=True)
class Visualization:
    """Φ(f): the extremes and their values; ``x_min``/``v_min`` are None for max-only.

    ``eta`` bounds the optimality gap: |f(x̂_max) − max f| ≤ η (0 for exact methods,
    ``nan`` when nothing is certified).
    """

    x_max: Array
    v_max: float
    x_min: Array | None = None
    v_min: float | None = None
    eta: float = 0.0
    method: str = "grid"
    certified: bool = True
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.x_min is not None and self.v_min is not None and self.v_min > self.v_max:
            raise ValueError(f"v_min={self.v_min} exceeds v_max={self.v_max}")

    @property
    def d(self) -> int:
        return int(np.asarray(self.x_max).shape[0])

    @property
    def range(self) -> float:
        """R = f(x_max) − f(x_min)."""
        if self.v_min is None:
            raise ValueError("a max-only visualization has no range R")
        return float(self.v_max - self.v_min)

    @property
    def midpoint(self) -> float:
        if self.v_min is None:
            raise ValueError("a max-only visualization has no midpoint")
        return 0.5 * float(self.v_max + self.v_min)

    def max_only(self) -> Visualization:
        """The max-only variant: only (x_max, f(x_max)) is shown."""
        return replace(self, x_min=None, v_min=None)

    def same_as(self, other: Visualization, atol: float = 1e-12) -> bool:
        """Φ(f) = Φ(g), all four components: the points to `atol`, the values to `atol` times
        the range R (so a scale-free class is judged alike at R = 1e-9 and 1e9) plus a few ulps
        of the values' size (floats at 10⁶ differ by 10⁻¹⁰ however they were computed); exact
        equality for atol = 0."""
        values = [abs(v) for v in (self.v_max, self.v_min, other.v_max, other.v_min) if v is not None]
        size = max(values, default=0.0)
        spread = size if self.v_min is None else self.v_max - self.v_min
        scale = spread + (4 * np.finfo(float).eps * size / atol if atol > 0 else 0.0)

        def close(a: Any, b: Any, tol: float) -> bool:
            if a is None or b is None:
                return a is None and b is None
            return bool(np.allclose(a, b, rtol=0.0, atol=tol))
        return (close(self.x_max, other.x_max, atol) and close(self.v_max, other.v_max, atol * scale)
                and close(self.x_min, other.x_min, atol) and close(self.v_min, other.v_min, atol * scale))

    def to_dict(self) -> dict[str, Any]:
        def lst(a: Array | None) -> list[float] | None:
            return None if a is None else np.asarray(a, float).tolist()
        return {"x_min": lst(self.x_min), "x_max": lst(self.x_max), "v_min": self.v_min,
                "v_max": self.v_max, "eta": self.eta, "method": self.method,
                "certified": self.certified}


def from_extremes(x_min: ArrayLike, x_max: ArrayLike, v_min: float, v_max: float,
                  method: str = "given") -> Visualization:
    """A visualization given by its four components (validated)."""
    x_max = np.asarray(x_max, dtype=np.float64).reshape(-1)
    d = x_max.shape[0]
    x_min = check_in_cube(x_min, d, name="x_min")[0]
    x_max = check_in_cube(x_max, d, name="x_max")[0]
    if not (np.isfinite(v_min) and np.isfinite(v_max)):
        raise ValueError(f"visualization values must be finite, got {v_min}, {v_max}")
    return Visualization(x_max, float(v_max), x_min, float(v_min), method=method)


def grid_visualization(f: UnitFunction, grid: Grid, max_only: bool = False) -> Visualization:
    """Exact Φ of f restricted to `grid` (first grid point wins ties)."""
    if f.d != grid.d:
        raise ValueError(f"function has d={f.d} but grid has d={grid.d}")
    values = f(grid.points)
    hi, lo = int(np.argmax(values)), int(np.argmin(values))
    vis = Visualization(grid.points[hi].copy(), float(values[hi]), grid.points[lo].copy(),
                        float(values[lo]), method="grid")
    return vis.max_only() if max_only else vis


def _exact_value(expr: sp.Expr, symbols: Sequence[sp.Symbol], point: Array) -> sp.Expr:
    subs = {s: exact(p) for s, p in zip(symbols, point, strict=True)}
    return sp.nsimplify(exact_floats(expr).subs(subs))


def symbolic_visualization(f: UnitFunction, candidates: ArrayLike | None = None,
                           grid_n: int = 5, max_only: bool = False) -> Visualization:
    """Exact Φ of a closed-form unit.

    Evaluates ``f.expression`` exactly (rational arithmetic) at the candidates (default:
    the cube's vertices and a grid of `grid_n` points per axis), takes the first best,
    and asks z3 to certify it is the global extreme on [0, 1]^d. ``certified`` says
    whether z3 proved it.
    """
    expr = f.expression
    if expr is None:
        raise ValueError(f"{f!r} has no closed form; use numeric_visualization")
    xs = cube_symbols(f.d)
    pts = [Grid(f.d, grid_n).points, vertices(f.d)]
    if candidates is not None:
        pts.insert(0, check_in_cube(candidates, f.d, name="candidate"))
    cand = np.concatenate(pts)
    exact = [_exact_value(expr, xs, p) for p in cand]
    hi = max(range(len(exact)), key=lambda i: (exact[i], -i))
    lo = min(range(len(exact)), key=lambda i: (exact[i], i))
    box = in_cube(xs)
    up = prove(sp.Le(expr, exact[hi]), xs, box,
               label=f"Phi: f <= f(x_max) = {exact[hi]} on the cube, f = {expr}")
    down = up if max_only else prove(sp.Ge(expr, exact[lo]), xs, box,
                                     label=f"Phi: f >= f(x_min) = {exact[lo]} on the cube, f = {expr}")
    vis = Visualization(cand[hi].copy(), float(exact[hi]), cand[lo].copy(), float(exact[lo]),
                        method="symbolic", certified=up.proved and down.proved,
                        meta={"v_max_exact": str(exact[hi]), "v_min_exact": str(exact[lo])})
    return vis.max_only() if max_only else vis


def _dense_grid(d: int, budget: int = 20_000) -> Grid:
    n = max(2, int(np.floor(budget ** (1.0 / d))))
    return Grid(d, n)


def numeric_visualization(f: UnitFunction, starts: int = 8, seed: int = 0,
                          budget: int = 20_000, max_only: bool = False) -> Visualization:
    """Φ by multi-start optimization: a dense grid seeds L-BFGS-B runs in the box.

    η is certified for ReLU networks through their Lipschitz bound L (ℓ1): every point
    is within ℓ1 distance d·h/2 of the grid, so max f ≤ max_grid f + L·d·h/2. For other
    units η is ``nan`` (not certified).
    """
    grid = _dense_grid(f.d, budget)
    pts = grid.points
    values = f(pts)
    rng = np.random.default_rng(seed)

    def refine(sign: float) -> tuple[Array, float]:
        order = np.argsort(-sign * values, kind="stable")[:starts]
        seeds = np.concatenate([pts[order], rng.random((starts, f.d))])
        best_x, best_v = pts[order[0]].copy(), float(values[order[0]])
        for x0 in seeds:
            def negated(x: Array) -> tuple[float, Array]:
                value, grad = _value_and_grad(f, x)
                return -sign * value, -sign * grad
            res = minimize(negated, x0, jac=True, bounds=[(0.0, 1.0)] * f.d, method="L-BFGS-B")
            v = float(f(res.x)[0])
            if sign * v > sign * best_v + 1e-15:
                best_x, best_v = np.clip(res.x, 0, 1), v
        return best_x, best_v

    x_max, v_max = refine(+1.0)
    x_min, v_min = refine(-1.0)
    if isinstance(f, ReLUNetwork):
        eta, certified = f.lipschitz_bound() * f.d * grid.step / 2.0, True
    else:
        eta, certified = float("nan"), False
    vis = Visualization(x_max, v_max, x_min, v_min, eta=eta, method="numeric",
                        certified=certified, meta={"grid_n": grid.n, "starts": starts})
    return vis.max_only() if max_only else vis


def _value_and_grad(f: UnitFunction, x: Array) -> tuple[float, Array]:
    """f(x) and a (sub)gradient: autograd for networks, central differences otherwise."""
    if isinstance(f, ReLUNetwork):
        t = torch.tensor(x[None, :], dtype=torch.float64, requires_grad=True)
        out = f.torch_forward(t)[0]
        out.backward()
        return float(out.detach()), t.grad.numpy()[0].copy()
    h = 1e-6
    eye = np.eye(f.d) * h
    grad = (f(np.clip(x + eye, 0, 1)) - f(np.clip(x - eye, 0, 1))) / (2 * h)
    return float(f(x)[0]), grad


def visualize(f: UnitFunction, grid: Grid | None = None, **kwargs: Any) -> Visualization:
    """Φ(f) by the best available method: grid for tabulated units, else symbolic when a
    closed form exists and z3 certifies it, else numeric."""
    from fvtrust.theory.functions import GridFunction

    if isinstance(f, GridFunction):
        return grid_visualization(f, f.grid, **kwargs)
    if grid is not None:
        return grid_visualization(f, grid, **kwargs)
    return numeric_visualization(f, **kwargs)
