"""Units f : [0, 1]^d → R in the representations the theory needs.

Every representation is a :class:`UnitFunction`: call it on points of shape (m, d) (or one
point of shape (d,)) and get float64 values of shape (m,). Where a closed form exists it
is kept as a sympy expression (``.expression``) so proofs can reason about it exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np
import sympy as sp
import torch
from numpy.typing import ArrayLike

from fvtrust.theory.domain import Array, Grid, as_points, check_dimension
from fvtrust.theory.symbolic import exact


def cube_symbols(d: int) -> tuple[sp.Symbol, ...]:
    """The coordinates x0, …, x{d−1} of [0, 1]^d as real sympy symbols."""
    return tuple(sp.symbols(f"x0:{check_dimension(d)}", real=True))


class UnitFunction(ABC):
    """A unit f : [0, 1]^d → R."""

    d: int
    name: str = "f"

    def __call__(self, x: ArrayLike) -> Array:
        pts = as_points(x, self.d)
        values = np.asarray(self._evaluate(pts), dtype=np.float64).reshape(-1)
        if values.shape[0] != pts.shape[0]:
            raise RuntimeError(f"{self!r} returned {values.shape[0]} values for "
                               f"{pts.shape[0]} points")
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{self!r} returned {values[i]} at x={pts[i].tolist()} "
                             f"({int(bad.sum())} of {len(values)} values are NaN or infinite): "
                             f"a unit must be finite on the cube")
        return values

    @abstractmethod
    def _evaluate(self, pts: Array) -> Array:
        """Values at validated points of shape (m, d)."""

    @property
    def expression(self) -> sp.Expr | None:
        """The closed form in :func:`cube_symbols`, where one exists."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, d={self.d})"


class GridFunction(UnitFunction):
    """A function tabulated on a finite grid G ⊂ [0, 1]^d (the class of *all* functions on G)."""

    def __init__(self, grid: Grid, values: ArrayLike, name: str = "f") -> None:
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        if vals.shape[0] != len(grid):
            raise ValueError(f"values must have one entry per grid point ({len(grid)}), "
                             f"got {vals.shape[0]}")
        if not np.all(np.isfinite(vals)):
            raise ValueError("values contain NaN or infinite entries")
        self.grid, self.values, self.d, self.name = grid, vals, grid.d, name

    def _evaluate(self, pts: Array) -> Array:
        return self.values[self.grid.index_of(pts)]


class AffineFunction(UnitFunction):
    """f(x) = ⟨w, x⟩ + c."""

    def __init__(self, w: ArrayLike, c: float, name: str = "f") -> None:
        self.w = np.asarray(w, dtype=np.float64).reshape(-1)
        self.c = float(c)
        if not (np.all(np.isfinite(self.w)) and np.isfinite(self.c)):
            raise ValueError(f"affine parameters must be finite, got w={self.w}, c={self.c}")
        self.d, self.name = check_dimension(self.w.shape[0]), name

    def _evaluate(self, pts: Array) -> Array:
        return pts @ self.w + self.c

    @property
    def expression(self) -> sp.Expr:
        xs = cube_symbols(self.d)
        return sum((exact(wi) * xi for wi, xi in zip(self.w, xs, strict=True)), exact(self.c))


class ExpressionFunction(UnitFunction):
    """A closed-form unit given as a sympy expression in :func:`cube_symbols` (d)."""

    def __init__(self, expr: sp.Expr, d: int, name: str = "f") -> None:
        self.d, self.name = check_dimension(d), name
        try:
            self._expr = sp.sympify(expr)
        except (sp.SympifyError, TypeError, SyntaxError) as exc:
            raise ValueError(f"{name}: {expr!r} is not a closed form sympy can read "
                             f"({type(exc).__name__})") from None
        if not isinstance(self._expr, sp.Expr):
            raise ValueError(f"{name}: {expr!r} is a {type(self._expr).__name__}, not an expression")
        named = {str(s): s for s in cube_symbols(d)}
        plain = {s for s in self._expr.free_symbols if str(s) in named and s not in named.values()}
        if plain:  # x0 typed as sp.Symbol("x0") without real=True: the same coordinate
            self._expr = self._expr.subs({s: named[str(s)] for s in plain})
        unknown = self._expr.free_symbols - set(cube_symbols(d))
        if unknown:
            raise ValueError(f"{name}: expression has symbols outside x0..x{d - 1} (d = {d}): "
                             f"{sorted(map(str, unknown))}")
        from fvtrust.theory.certified import Unsupported, check_closed_form

        try:  # unsupported functions, NaN/inf or complex coefficients: named in one line
            check_closed_form(self._expr, d)
        except Unsupported as exc:
            raise ValueError(f"{name}: {exc}") from None

    @property
    def expression(self) -> sp.Expr:
        return self._expr

    @cached_property
    def _numeric(self) -> Callable[..., object]:
        return sp.lambdify(cube_symbols(self.d), self._expr, modules="numpy")

    def _evaluate(self, pts: Array) -> Array:
        out = self._numeric(*pts.T)
        return np.broadcast_to(np.asarray(out, dtype=np.float64), (pts.shape[0],)).copy()


class PointwiseFunction(UnitFunction):
    """A unit given by a vectorized numpy callable (m, d) → (m,)."""

    def __init__(self, fn: Callable[[Array], Array], d: int, name: str = "f") -> None:
        self.fn, self.d, self.name = fn, check_dimension(d), name

    def _evaluate(self, pts: Array) -> Array:
        return self.fn(pts)


class ReLUNetwork(UnitFunction):
    """A real ReLU network: a ``torch.nn.Sequential`` of Linear and ReLU layers, d → 1.

    Layout: ``[Linear, ReLU] * k + [Linear]`` in float64. This is the class the paper's
    lemmas are about; :mod:`theory.relu` builds tents, maxima and minima in exactly this form.
    """

    def __init__(self, module: torch.nn.Sequential, name: str = "f") -> None:
        layers = list(module)
        if not layers or not isinstance(layers[0], torch.nn.Linear):
            raise ValueError("a ReLU network must start with a torch.nn.Linear layer")
        for layer in layers:
            if not isinstance(layer, torch.nn.Linear | torch.nn.ReLU):
                raise ValueError(f"a ReLU network may hold only Linear and ReLU layers, "
                                 f"got {type(layer).__name__}")
        linears = [m for m in layers if isinstance(m, torch.nn.Linear)]
        if linears[-1].out_features != 1:
            raise ValueError(f"a unit has one output, the last Linear has "
                             f"{linears[-1].out_features}")
        self.module = module.double().eval()
        self.d = check_dimension(linears[0].in_features)
        self.name = name

    @property
    def linears(self) -> list[torch.nn.Linear]:
        return [m for m in self.module if isinstance(m, torch.nn.Linear)]

    def _evaluate(self, pts: Array) -> Array:
        with torch.no_grad():
            return self.module(torch.from_numpy(pts)).numpy().reshape(-1)

    def torch_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable evaluation on a float64 tensor (m, d) → (m,)."""
        return self.module(x).reshape(-1)

    @property
    def expression(self) -> sp.Expr:
        """The network as a sympy expression with ``Max(0, ·)`` for every ReLU."""
        h: list[sp.Expr] = list(cube_symbols(self.d))
        for layer in self.module:
            if isinstance(layer, torch.nn.Linear):
                w = layer.weight.detach().numpy()
                b = layer.bias.detach().numpy() if layer.bias is not None else np.zeros(w.shape[0])
                h = [sum((exact(w[i, j]) * h[j] for j in range(w.shape[1])), exact(b[i]))
                     for i in range(w.shape[0])]
            else:
                h = [sp.Max(0, hi) for hi in h]
        return h[0]

    def lipschitz_bound(self) -> float:
        """An upper bound on the ℓ1→|·| Lipschitz constant: max|W₁| · Π_{k≥2} ‖W_k‖_{∞→∞}."""
        ws = [m.weight.detach().numpy() for m in self.linears]
        bound = float(np.max(np.abs(ws[0])))
        for w in ws[1:]:
            bound *= float(np.max(np.sum(np.abs(w), axis=1)))
        return bound


def linear_layer(weight: Sequence[Sequence[float]] | np.ndarray,
                 bias: Sequence[float] | np.ndarray) -> torch.nn.Linear:
    """A float64 ``torch.nn.Linear`` with the given weight (out, in) and bias (out,)."""
    w = torch.as_tensor(np.asarray(weight, dtype=np.float64))
    b = torch.as_tensor(np.asarray(bias, dtype=np.float64))
    layer = torch.nn.Linear(w.shape[1], w.shape[0]).double()
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
    return layer
