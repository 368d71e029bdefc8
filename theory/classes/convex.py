"""Convex units: Φ fixes the extremes but not the values at other vertices.

Theorem (convex; after Sec. 5 of *Don't trust your eyes*, formulation ours): let z be a
vertex, b = 1 − z the opposite vertex, t(x) = ⟨b − z, x − z⟩/d ∈ [0, 1], m = 3/10 and
a = z + m(b − z). With ε′ = ε/R, c₊ = 1 − ε′/2, c₋ = ε′/2 and μ = ε′/(2d(1 − m)²),
g±(x) = max((t − m)/(1 − m), c±·(m − t)/m) + μ‖x − a‖₂²
are convex with unique argmin a and unique argmax b (m < 1/2), equal Φ, and
g₊(z) − g₋(z) = 1 − ε′ ≥ (range)·(1 − 2ε′) after rescaling to [f_min, f_max].
(In d = 1 this is the brief's pair with x_min = m, x_max = 1 reflected.)
Near x_max (task D, d ≥ 2; :func:`local_pair`): with z = b − ρe_d, two ramps through b,
r₋(x) = ⟨x − z, 1⟩/⟨b − z, 1⟩ (0 at z) and r₊(x) = 1 − ⟨b − x, n⟩/⟨b − a, n⟩ with
n = (1, …, 1, η) (nearly flat along b − z), give f± = max(μ‖x − a‖₂², r±): convex, unique argmin
a and argmax b, f₊(z) − f₋(z) ≥ 1 − 2ε′.
Proof: ``proofs/convex.py``; tests: ``tests/theory/test_convex.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sps
import sympy as sp
from numpy.typing import ArrayLike
from scipy.optimize import linprog

from fvtrust.theory.classes.base import (
    CounterexamplePair,
    FunctionClass,
    Membership,
    check_eps,
    ensure_query,
    relative_tolerance,
)
from fvtrust.theory.classes.certify import convex_certificate_of, z3_then_certified
from fvtrust.theory.classes.closed_form import random_pairs, rational
from fvtrust.theory.domain import Array, Grid
from fvtrust.theory.functions import ExpressionFunction, GridFunction, UnitFunction, cube_symbols
from fvtrust.theory.minimax import LinearConstraints
from fvtrust.theory.tasks import Task, Witness
from fvtrust.theory.visualization import Visualization, from_extremes


def local_pair(phi: Visualization, eps: float) -> tuple[ExpressionFunction, ExpressionFunction, Array]:
    """(f₊, f₋, z): convex members with Φ = phi (x_max = 1, the all-ones vertex; x_min = a
    with a < 1 coordinate-wise; d ≥ 2) whose values at z = x_max − ρe_d differ by ≥ R − 2ε,
    where ρ = LOCAL_RADIUS (see the module docstring)."""
    from fvtrust.theory.tasks import LOCAL_RADIUS

    d = phi.d
    a_f, b_f = np.asarray(phi.x_min, float), np.asarray(phi.x_max, float)
    if d < 2 or not np.all(b_f == 1) or not np.all(a_f < 1):
        raise ValueError("the local pair needs d >= 2, x_max = (1, …, 1) and x_min < x_max")
    R = phi.range
    e = rational(check_eps(eps, R) / R)
    xs = cube_symbols(d)
    a = [rational(v) for v in a_f]
    rho = rational(LOCAL_RADIUS)
    z = [sp.Integer(1)] * (d - 1) + [1 - rho]
    dist2 = sum(((zi - ai) ** 2 for zi, ai in zip(z, a, strict=True)), sp.Integer(0))
    mu = e / (2 * sum(((1 - ai) ** 2 for ai in a), dist2))  # μ‖z − a‖² ≤ ε′/2, μ‖b − a‖² < 1
    quad = mu * sum(((x - ai) ** 2 for x, ai in zip(xs, a, strict=True)), sp.Integer(0))
    down = sum((x - zi for x, zi in zip(xs, z, strict=True)), sp.Integer(0)) / rho
    # r₊(z) = 1 − ρη/⟨b − a, n⟩ ≥ 1 − ε′/2 for η = ε′·min_i(1 − a_i)/(2ρ)
    eta = e * min(1 - ai for ai in a) / (2 * rho)
    n = [sp.Integer(1)] * (d - 1) + [eta]
    span = sum(((1 - ai) * ni for ai, ni in zip(a, n, strict=True)), sp.Integer(0))
    up = 1 - sum(((1 - x) * ni for x, ni in zip(xs, n, strict=True)), sp.Integer(0)) / span
    lo, scale = rational(phi.v_min), rational(R)
    plus = ExpressionFunction(lo + scale * sp.Max(quad, up), d, "f+")
    minus = ExpressionFunction(lo + scale * sp.Max(quad, down), d, "f-")
    return plus, minus, np.array([float(v) for v in z])


#: m: where along z → b the minimum sits (any m < 1/2 works; 3/10 keeps a on the grid).
MIN_POSITION = sp.Rational(3, 10)


def subgradient_rows(grid: Grid) -> tuple[sps.csr_matrix, sps.csr_matrix]:
    """For all ordered pairs (g, h), g ≠ h: rows of f(g) − f(h) and of s_g·(h − g).

    Discrete convexity: f on G extends to a convex function iff for every g some s_g has
    f(h) ≥ f(g) + s_g·(h − g) for all h.
    """
    n, d = len(grid), grid.d
    gi, hi = np.nonzero(~np.eye(n, dtype=bool))
    rows = np.arange(len(gi))
    values = sps.csr_matrix((np.concatenate([np.ones(len(gi)), -np.ones(len(gi))]),
                             (np.concatenate([rows, rows]), np.concatenate([gi, hi]))),
                            shape=(len(gi), n))
    diff = grid.points[hi] - grid.points[gi]
    cols = (gi[:, None] * d + np.arange(d)[None, :]).ravel()
    sub = sps.csr_matrix((diff.ravel(), (np.repeat(rows, d), cols)), shape=(len(gi), n * d))
    return values, sub


class Convex(FunctionClass):
    """Convex units on [0, 1]^d."""

    key = "convex"
    title = "convex"
    polyhedral = True
    paper = "impossible"

    # A member: max_k (⟨w_k, x⟩ + b_k) + q‖x − c‖₂², q > 0 (unique argmin).
    def build(self, params: Any) -> ExpressionFunction:
        q, centre, planes = params
        xs = cube_symbols(self.d)
        quad = rational(q) * sum(((x - rational(c)) ** 2 for x, c in zip(xs, centre, strict=True)),
                                 sp.Integer(0))
        pieces = [sum((rational(wi) * x for wi, x in zip(w, xs, strict=True)), rational(b))
                  for w, b in planes] or [sp.Integer(0)]
        return ExpressionFunction(sp.Max(*pieces) + quad, self.d, "convex")

    def draw(self, rng: np.random.Generator) -> Any:
        planes = tuple((tuple(rng.normal(size=self.d).round(3)), round(float(rng.normal()), 3))
                       for _ in range(3))
        return float(rng.uniform(0.05, 1)), tuple(rng.random(self.d).round(3)), planes

    def params_strategy(self) -> Any:
        from hypothesis import strategies as st

        unit = st.integers(0, 100).map(lambda k: k / 100)
        coef = st.integers(-20, 20).map(lambda k: k / 10)
        plane = st.tuples(st.tuples(*[coef] * self.d), coef)
        return st.tuples(st.integers(5, 100).map(lambda k: k / 100), st.tuples(*[unit] * self.d),
                         st.lists(plane, min_size=1, max_size=3).map(tuple))

    def membership(self, f: UnitFunction) -> Membership:
        """Three answers. Closed forms are judged on the whole cube: convex by the
        disciplined-convex rules (a proof); piecewise-linear forms with rational coefficients
        by z3 proving midpoint convexity for every pair of points (convexity, for continuous
        f); twice-differentiable forms by their Hessian — exactly when it is constant, else by
        certified interval branch-and-bound on λ_min (:func:`~theory.certified.
        convex_certificate`). When none decides: "undecided" with the reason. Units without a
        closed form: discrete convexity on the grid (an LP: subgradients at every grid point)
        and midpoint convexity on 2,000 seeded random pairs, to 1e-9·R plus round-off; a
        violation refutes it, finding none answers "undecided" ("grid only": evidence off the
        grid, not a proof), except for a tabulated unit, which lives on its grid (exact)."""
        if f.expression is not None and not isinstance(f, GridFunction):
            return self._closed_form_membership(f)
        method = "representation" if isinstance(f, GridFunction) else "grid only"
        values = f(self.grid.points)
        tol = relative_tolerance(values)
        if not isinstance(f, GridFunction):  # a tabulated unit lives on the grid alone
            x, y = random_pairs(self.d)
            excess = f((x + y) / 2) - (f(x) + f(y)) / 2
            if excess.max() > tol:
                k = int(np.argmax(excess))
                return Membership(False, f"midpoint convexity fails between "
                                         f"{x[k].round(3).tolist()} and "
                                         f"{y[k].round(3).tolist()} by {excess[k]:.3g}", method)
        if not self._grid_convex(values, tol):
            return Membership(False, "its grid values have no convex extension (no subgradients)",
                              method)
        if method == "representation":
            return Membership(True)
        return Membership.undecided(f"convex on the {self.grid} and 2,000 random pairs; "
                                    f"without a closed form nothing is certified off them", method)

    def _closed_form_membership(self, f: UnitFunction) -> Membership:
        xs = cube_symbols(self.d)
        if convex_by_rules(f.expression, xs):
            return Membership(True, "disciplined-convex rules", "symbolic rules")
        return z3_then_certified(f, lambda: self._midpoint_membership(f), convex_certificate_of)

    def _midpoint_membership(self, f: UnitFunction) -> Membership | None:
        """z3: midpoint convexity for every pair of points; None when it runs out of time."""
        from fvtrust.theory.symbolic import midpoint_convex

        verdict = midpoint_convex(f.expression, cube_symbols(self.d))
        if verdict.proved:
            return Membership(True, "z3: midpoint convex on the cube", "z3 exact")
        if verdict.counterexample is not None:  # refuted (not merely out of time)
            return Membership(False, f"on the cube, midpoint convexity fails at "
                                     f"{verdict.counterexample}", "z3 exact")
        return None

    def _grid_convex(self, values: Array, tol: float | None = None) -> bool:
        tol = relative_tolerance(values) if tol is None else tol
        vals, sub = subgradient_rows(self.grid)
        # s_g·(h − g) ≤ f(h) − f(g) + tol, feasibility only.
        rhs = -(vals @ values) + tol
        res = linprog(np.zeros(sub.shape[1]), A_ub=sub, b_ub=rhs,
                      bounds=(None, None), method="highs")
        return res.status == 0

    def canonical_phi(self) -> Visualization:
        a = np.full(self.d, 0.3)
        return from_extremes(a, np.ones(self.d), 0.0, 1.0)

    def grid_constraints(self, grid: Grid, phi: Visualization | None = None) -> LinearConstraints:
        vals, sub = subgradient_rows(grid)
        a = sps.hstack([vals, sub]).tocsr()  # f(g) − f(h) + s_g·(h − g) ≤ 0
        return LinearConstraints(len(grid), n_extra=len(grid) * grid.d, A_ub=a,
                                 b_ub=np.zeros(a.shape[0]))

    def counterexample_pair(self, f: UnitFunction | Visualization, z: ArrayLike,
                            eps: float) -> CounterexamplePair:
        if isinstance(f, Visualization):
            v_min, R = f.v_min, f.range
        else:
            self.require_member(f)
            phi_f = self.visualize(f)
            v_min, R = phi_f.v_min, phi_f.range
        z = ensure_query(z, self.d)
        if not np.all((z == 0) | (z == 1)):
            raise ValueError(f"query z={z.tolist()} is not a vertex: off the vertices convexity "
                             f"bounds f(z) by chords and the gap stays below R")
        eps = check_eps(eps, R)
        d, m = self.d, MIN_POSITION
        e = rational(eps / R)
        xs = cube_symbols(d)
        zq = [sp.Integer(int(v)) for v in z]
        b = [1 - v for v in zq]
        a = [zi + m * (bi - zi) for zi, bi in zip(zq, b, strict=True)]
        t = sum(((bi - zi) * (x - zi) for x, zi, bi in zip(xs, zq, b, strict=True)),
                sp.Integer(0)) / d
        mu = e / (2 * d * (1 - m) ** 2)
        quad = mu * sum(((x - ai) ** 2 for x, ai in zip(xs, a, strict=True)), sp.Integer(0))
        top = 1 + mu * d * (1 - m) ** 2  # g(b)
        scale, lo = rational(R) / top, rational(v_min)

        def member(c: sp.Expr, name: str) -> ExpressionFunction:
            g = sp.Max((t - m) / (1 - m), c * (m - t) / m) + quad
            return ExpressionFunction(lo + scale * g, d, name)

        phi = from_extremes(np.array(a, dtype=float), np.array(b, dtype=float), v_min,
                            v_min + R, "convex")
        return CounterexamplePair(member(1 - e / 2, "f+"), member(e / 2, "f-"), phi, z, eps,
                                  meta={"grid_exact": bool(np.all(np.isin(np.array(a, float),
                                                                          self.grid.points)))})

    def explicit_witness(self, task: Task, eps: float) -> Witness | None:
        if task is Task.LOCAL:
            if self.d < 2:
                return None  # d = 1: the LP on the grid
            plus, minus, zq = local_pair(self.canonical_phi(), eps)
            return Witness(task, plus, minus, self.canonical_phi(), (zq,), "construction")
        z = np.zeros(self.d)
        pair = self.counterexample_pair(self.canonical_phi(), z, eps)
        if task is Task.AFC:
            z2 = np.full(self.d, float(MIN_POSITION + (1 - MIN_POSITION) / 2))
            return Witness(task, pair.f_plus, pair.f_minus, pair.phi, (z, z2), "construction")
        return pair.witness(task)


def convex_by_rules(expr: sp.Expr, symbols: tuple[sp.Symbol, ...]) -> bool:
    """A sound syntactic convexity check (disciplined-convex rules): affine terms, squares
    of affine terms, non-negative multiples, sums and maxima of convex terms."""
    expr = sp.sympify(expr)
    poly = sp.Poly(expr, *symbols) if expr.is_polynomial(*symbols) else None
    if poly is not None and poly.total_degree() <= 1:
        return True
    if isinstance(expr, sp.Pow) and expr.exp == 2:
        inner = expr.base
        return bool(inner.is_polynomial(*symbols) and sp.Poly(inner, *symbols).total_degree() <= 1)
    if isinstance(expr, sp.Add | sp.Max):
        return all(convex_by_rules(a, symbols) for a in expr.args)
    if isinstance(expr, sp.Mul):
        consts = [a for a in expr.args if not (a.free_symbols & set(symbols))]
        rest = [a for a in expr.args if a.free_symbols & set(symbols)]
        scale = sp.Mul(*consts)
        return bool(scale.is_nonnegative) and len(rest) == 1 and convex_by_rules(rest[0], symbols)
    return False
