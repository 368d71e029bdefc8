"""Certified bounds on closed forms over boxes of the cube: interval arithmetic and
branch-and-bound.

An expression is compiled once into a vectorized interval evaluator: given boxes
[lo, hi] ⊂ [0, 1]^d (arrays of shape (n, d)) it returns enclosures [l, u] with
l ≤ f(x) ≤ u for every x in each box. Every arithmetic step rounds outward by one ulp
(IEEE +, −, ×, ÷ and √ are correctly rounded, so one ulp covers their error); exp, log,
sin, cos, tanh and atan round outward by 4 ulps, which covers glibc's documented error
(below 1–2 ulps for these functions in double precision). Branch-and-bound splits the
widest side of the box whose bound is worst until the question is decided or the budget
runs out; then the answer is "undecided", never a guess.

Supported: +, −, ×, ÷, integer powers, rational powers of positive bases (√), Abs, Max,
Min, exp, log, sin, cos, tanh, atan, and sign/Heaviside (derivatives of Abs and Max);
rational and irrational constants (π, e, √2). Anything else raises :class:`Unsupported`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

Interval = tuple[np.ndarray, np.ndarray]
Evaluator = Callable[[np.ndarray, np.ndarray], Interval]

#: The functions a closed form may use (sign and Heaviside arise as derivatives).
SUPPORTED_FUNCTIONS = ("Abs", "Max", "Min", "exp", "log", "sin", "cos", "tanh", "atan", "sqrt")


class Unsupported(ValueError):
    """The expression uses something the interval evaluator cannot enclose."""


def _down(x: np.ndarray, ulps: int = 1) -> np.ndarray:
    for _ in range(ulps):
        x = np.nextafter(x, -np.inf)
    return x


def _up(x: np.ndarray, ulps: int = 1) -> np.ndarray:
    for _ in range(ulps):
        x = np.nextafter(x, np.inf)
    return x


def _constant(value: sp.Expr) -> Callable[[np.ndarray, np.ndarray], Interval]:
    """A constant's enclosure: exact rationals and irrationals (π, √2) rounded outward."""
    if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        raise Unsupported(f"the closed form has a NaN or infinite coefficient ({value})")
    if not value.is_real:
        raise Unsupported(f"the closed form has a non-real coefficient ({value})")
    approx = float(sp.N(value, 30))
    if not np.isfinite(approx):
        raise Unsupported(f"coefficient {value} overflows float64")
    lo, hi = float(_down(np.float64(approx), 2)), float(_up(np.float64(approx), 2))

    def const(blo: np.ndarray, _bhi: np.ndarray) -> Interval:
        n = blo.shape[0]
        return np.full(n, lo), np.full(n, hi)
    return const


def _mul(a: Interval, b: Interval) -> Interval:
    products = np.stack([a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]])
    products = np.where(np.isnan(products), 0.0, products)  # 0 · inf within an unbounded box
    return _down(products.min(0)), _up(products.max(0))


def _reciprocal(a: Interval) -> Interval:
    lo, hi = a
    bad = (lo <= 0) & (hi >= 0)
    with np.errstate(divide="ignore"):
        rlo, rhi = _down(1.0 / hi), _up(1.0 / lo)
    return np.where(bad, -np.inf, rlo), np.where(bad, np.inf, rhi)


def _int_power(a: Interval, n: int) -> Interval:
    if n < 0:
        return _reciprocal(_int_power(a, -n))
    if n == 0:
        return np.ones_like(a[0]), np.ones_like(a[0])
    lo, hi = a
    with np.errstate(over="ignore"):
        plo, phi = lo ** n, hi ** n
        if n % 2:
            return _down(plo, n), _up(phi, n)
        mags_lo, mags_hi = np.abs(lo), np.abs(hi)
        top = np.maximum(mags_lo, mags_hi) ** n
        bottom = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(mags_lo, mags_hi) ** n)
    return _down(bottom, n), _up(top, n)


def _monotone(fn: Callable[[np.ndarray], np.ndarray], ulps: int = 4) -> Callable[[Interval], Interval]:
    def apply(a: Interval) -> Interval:
        with np.errstate(over="ignore"):
            return _down(fn(a[0]), ulps), _up(fn(a[1]), ulps)
    return apply


def _log(a: Interval) -> Interval:
    lo, hi = a
    with np.errstate(divide="ignore", invalid="ignore"):
        out_lo, out_hi = _down(np.log(lo), 4), _up(np.log(hi), 4)
    return np.where(lo > 0, out_lo, -np.inf), np.where(hi > 0, out_hi, np.nan)


def _sqrt(a: Interval) -> Interval:
    lo, hi = a
    return np.where(lo >= 0, _down(np.sqrt(np.maximum(lo, 0.0))), np.nan), _up(np.sqrt(np.maximum(hi, 0.0)))


def _sin(a: Interval, shift: float = 0.0) -> Interval:
    """sin(x + shift) over [lo, hi]: the ends, and ±1 where a peak or trough lies inside."""
    lo, hi = a[0] + shift, a[1] + shift
    values = np.stack([np.sin(lo), np.sin(hi)])
    out_lo, out_hi = _down(values.min(0), 4), _up(values.max(0), 4)
    # peaks at π/2 + 2kπ, troughs at −π/2 + 2kπ (with a margin for the rounding of k)
    peak = np.floor((hi - np.pi / 2) / (2 * np.pi)) * 2 * np.pi + np.pi / 2 >= lo - 1e-12
    trough = np.floor((hi + np.pi / 2) / (2 * np.pi)) * 2 * np.pi - np.pi / 2 >= lo - 1e-12
    wide = (hi - lo) >= 2 * np.pi
    return (np.where(trough | wide, -1.0, np.maximum(out_lo, -1.0)),
            np.where(peak | wide, 1.0, np.minimum(out_hi, 1.0)))


def _abs(a: Interval) -> Interval:
    lo, hi = a
    straddle = (lo <= 0) & (hi >= 0)
    return (np.where(straddle, 0.0, np.minimum(np.abs(lo), np.abs(hi))),
            np.maximum(np.abs(lo), np.abs(hi)))


def _sign(a: Interval) -> Interval:
    lo, hi = a
    return np.where(lo > 0, 1.0, np.where(hi < 0, -1.0, np.where(lo == 0, 0.0, -1.0))), \
        np.where(hi < 0, -1.0, np.where(lo > 0, 1.0, np.where(hi == 0, 0.0, 1.0)))


def _heaviside(a: Interval) -> Interval:
    lo, hi = a
    return np.where(lo > 0, 1.0, 0.0), np.where(hi < 0, 0.0, 1.0)


_UNARY = {sp.exp: _monotone(np.exp), sp.tanh: _monotone(np.tanh), sp.atan: _monotone(np.arctan),
          sp.log: _log, sp.Abs: _abs, sp.sign: _sign, sp.Heaviside: _heaviside,
          sp.sin: _sin, sp.cos: lambda a: _sin(a, np.pi / 2)}


def compile_interval(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> Evaluator:
    """An evaluator (lo, hi) ↦ enclosure of `expr` on each box; :class:`Unsupported` names
    the first part it cannot enclose."""
    expr = sp.sympify(expr)
    index = {s: i for i, s in enumerate(symbols)}
    cache: dict[sp.Basic, Callable] = {}

    def build(e: sp.Basic) -> Callable[[np.ndarray, np.ndarray], Interval]:
        if e in cache:
            return cache[e]
        if e.is_Symbol:
            if e not in index:
                raise Unsupported(f"symbol {e} is not a coordinate x0..x{len(symbols) - 1}")
            k = index[e]
            out = lambda lo, hi, k=k: (lo[:, k], hi[:, k])  # noqa: E731
        elif not (e.free_symbols & set(index)):
            out = _constant(e)
        elif isinstance(e, sp.Add | sp.Mul | sp.Max | sp.Min):
            parts = [build(a) for a in e.args]
            if isinstance(e, sp.Add):
                def out(lo, hi, parts=parts):
                    vals = [p(lo, hi) for p in parts]
                    return _down(sum(v[0] for v in vals), len(vals)), _up(sum(v[1] for v in vals), len(vals))
            elif isinstance(e, sp.Mul):
                def out(lo, hi, parts=parts):
                    acc = parts[0](lo, hi)
                    for p in parts[1:]:
                        acc = _mul(acc, p(lo, hi))
                    return acc
            else:
                pick = np.maximum if isinstance(e, sp.Max) else np.minimum

                def out(lo, hi, parts=parts, pick=pick):
                    vals = [p(lo, hi) for p in parts]
                    return pick.reduce([v[0] for v in vals]), pick.reduce([v[1] for v in vals])
        elif isinstance(e, sp.Pow):
            base, exponent = e.args
            if exponent.free_symbols & set(index):
                raise Unsupported(f"variable exponent in {e}")
            inner = build(base)
            if exponent.is_Integer:
                n = int(exponent)
                out = lambda lo, hi, inner=inner, n=n: _int_power(inner(lo, hi), n)  # noqa: E731
            elif exponent == sp.Rational(1, 2):
                out = lambda lo, hi, inner=inner: _sqrt(inner(lo, hi))  # noqa: E731
            elif exponent.is_Rational or exponent.is_real:
                c = float(exponent)

                def out(lo, hi, inner=inner, c=c):
                    blo, bhi = inner(lo, hi)
                    lg = _log((blo, bhi))
                    scaled = _mul(lg, (np.full_like(blo, _down(np.float64(c), 2)),
                                       np.full_like(blo, _up(np.float64(c), 2))))
                    return _monotone(np.exp)(scaled)
            else:
                raise Unsupported(f"power {e}")
        elif type(e) in _UNARY or e.func in _UNARY:
            arg = e.args[0]  # Heaviside(x, H0): its value at 0 lies in the enclosure [0, 1]
            inner, fn = build(arg), _UNARY[e.func]
            out = lambda lo, hi, inner=inner, fn=fn: fn(inner(lo, hi))  # noqa: E731
        else:
            raise Unsupported(f"the closed form uses {type(e).__name__} ({e}), which has no "
                              f"certified bound here (supported: +, −, ×, ÷, powers, "
                              f"{', '.join(SUPPORTED_FUNCTIONS)})")
        cache[e] = out
        return out

    top = build(expr)

    def evaluate(lo: np.ndarray, hi: np.ndarray) -> Interval:
        lo, hi = np.atleast_2d(lo).astype(np.float64), np.atleast_2d(hi).astype(np.float64)
        with np.errstate(invalid="ignore"):
            a, b = top(lo, hi)
        a = np.broadcast_to(a, (lo.shape[0],)).astype(np.float64)
        b = np.broadcast_to(b, (lo.shape[0],)).astype(np.float64)
        # NaN: a function outside its domain somewhere in the box: no bound at all.
        return np.where(np.isnan(a), -np.inf, a), np.where(np.isnan(b), np.inf, b)
    return evaluate


def check_closed_form(expr: sp.Expr, d: int) -> None:
    """Refuse, in one line, a closed form the theory cannot reason about: unsupported
    functions, NaN or infinite coefficients, symbols beyond x0..x{d−1}."""
    symbols = tuple(sp.symbols(f"x0:{d}", real=True))
    compile_interval(expr, symbols)


@dataclass(frozen=True)
class Search:
    """The outcome of a branch-and-bound: `upper` bounds sup g over the cube, `lower` is
    attained (up to outward rounding) at `argmax`; `boxes` were evaluated."""

    lower: float
    upper: float
    argmax: np.ndarray
    boxes: int
    decided: str  # "below" (sup ≤ target), "above" (a point exceeds it), "gap" or "budget"


def maximize(g: Evaluator, d: int, below: float = -np.inf, above: float = np.inf,
             gap: float = 0.0, budget: int = 20_000, batch: int = 64) -> Search:
    """Branch-and-bound for sup g on [0, 1]^d: stops once sup g ≤ `below` is certified, once
    a point certifiably exceeds `above`, once upper − lower ≤ `gap`, or after `budget`
    boxes."""
    counter = itertools.count()
    lo0, hi0 = np.zeros((1, d)), np.ones((1, d))
    u = g(lo0, hi0)[1][0]
    heap = [(-u, next(counter), lo0[0], hi0[0])]
    best, argmax = -np.inf, np.full(d, 0.5)
    boxes = 1
    while heap:
        upper = -heap[0][0]
        if upper <= below:
            return Search(best, upper, argmax, boxes, "below")
        if best > above:
            return Search(best, upper, argmax, boxes, "above")
        if upper - best <= gap:
            return Search(best, upper, argmax, boxes, "gap")
        if boxes >= budget:
            return Search(best, upper, argmax, boxes, "budget")
        take = [heapq.heappop(heap) for _ in range(min(batch, len(heap)))]
        los = np.array([t[2] for t in take])
        his = np.array([t[3] for t in take])
        axis = np.argmax(his - los, axis=1)
        mids = (los[np.arange(len(take)), axis] + his[np.arange(len(take)), axis]) / 2
        left_hi, right_lo = his.copy(), los.copy()
        left_hi[np.arange(len(take)), axis] = mids
        right_lo[np.arange(len(take)), axis] = mids
        child_lo, child_hi = np.vstack([los, right_lo]), np.vstack([left_hi, his])
        _, uppers = g(child_lo, child_hi)
        # Values attained (rounded down) at each child's centre and two opposite corners:
        # extremes on the cube's faces are reached by corners, not by centres.
        points = np.vstack([(child_lo + child_hi) / 2, child_lo, child_hi])
        point_lo, _ = g(points, points)
        boxes += len(child_lo)
        k = int(np.argmax(point_lo))
        if point_lo[k] > best:
            best, argmax = float(point_lo[k]), points[k]
        for clo, chi, cu in zip(child_lo, child_hi, uppers, strict=True):
            if cu > best or not np.isfinite(cu):
                heapq.heappush(heap, (-cu, next(counter), clo, chi))
    return Search(best, best, argmax, boxes, "gap")


@dataclass(frozen=True)
class Range:
    """Certified max_lo ≤ max f ≤ max_hi and min_lo ≤ min f ≤ min_hi on the cube."""

    max_lo: float
    max_hi: float
    min_lo: float
    min_hi: float
    boxes: int

    @property
    def lower(self) -> float:
        """R ≥ this (attained values)."""
        return self.max_lo - self.min_hi

    @property
    def upper(self) -> float:
        """R ≤ this."""
        return self.max_hi - self.min_lo


def range_bounds(expr: sp.Expr, symbols: Sequence[sp.Symbol], rel_gap: float = 1e-12,
                 budget: int = 20_000) -> Range:
    """The range of f on the cube, certified to a gap of `rel_gap`·R on each extreme (or as
    close as `budget` boxes get)."""
    f = compile_interval(expr, symbols)
    g = compile_interval(-sp.sympify(expr), symbols)
    d = len(symbols)
    # A first scale from corners and the centre, so that the gap is relative to R.
    probe = np.vstack([np.array(list(itertools.product((0.0, 1.0), repeat=d))), np.full((1, d), 0.5)])
    lo_vals, hi_vals = f(probe, probe)
    scale = max(float(np.max(hi_vals) - np.min(lo_vals)), 1e-300)
    top = maximize(f, d, gap=rel_gap * scale, budget=budget)
    bottom = maximize(g, d, gap=rel_gap * scale, budget=budget)
    return Range(top.lower, top.upper, -bottom.upper, -bottom.lower, top.boxes + bottom.boxes)


@dataclass(frozen=True)
class Certificate:
    """A certified answer: "member", "non-member" or "undecided", and why."""

    answer: str
    reason: str = ""


def _gradient(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> list[Evaluator]:
    return [compile_interval(sp.diff(expr, x), symbols) for x in symbols]


def _max_abs(parts: list[Evaluator]) -> Evaluator:
    """g = max_k |∂_k f|, enclosed."""
    def g(lo: np.ndarray, hi: np.ndarray) -> Interval:
        bounds = [_abs(p(lo, hi)) for p in parts]
        return np.max([b[0] for b in bounds], axis=0), np.max([b[1] for b in bounds], axis=0)
    return g


def _value_at(g: Evaluator, point: np.ndarray) -> float:
    """g at one point, as the midpoint of its (degenerate) enclosure: for choosing, not proving."""
    return float(np.mean(g(point[None], point[None])))


def _axis_steps(point: np.ndarray, axis: int, steps: Sequence[float]
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs x ≤ y = x + h·e_axis in the cube, centred on `point` where it allows, for each h."""
    for h in steps:
        x = point.copy()
        x[axis] = min(max(x[axis] - h / 2, 0.0), 1.0 - h)
        y = x.copy()
        y[axis] = x[axis] + h
        yield x, y


def _slope_witness(f: Evaluator, point: np.ndarray, axis: int, bound: float
                   ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Two points x, y = x + h·e_axis in the cube with |f(y) − f(x)| > bound·h, certified
    (interval values at both points); None when no step h tried shows it."""
    for x, y in _axis_steps(point, axis, (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)):
        fx, fy = f(x[None], x[None]), f(y[None], y[None])
        step = abs(y[axis] - x[axis])  # the float step actually taken
        diff = max(fy[0][0] - fx[1][0], fx[0][0] - fy[1][0])  # a certified lower bound of |Δf|
        if diff > bound * float(_up(np.float64(step))):
            return x, y, float(diff / step)
    return None


def lipschitz_certificate(expr: sp.Expr, symbols: Sequence[sp.Symbol], kappa: float,
                          rtol: float, budget: int = 40_000) -> Certificate:
    """Is |f(x) − f(y)| ≤ (κR/d)·‖x − y‖₁ on the cube, R the range of f? By the dual norm,
    exactly when sup ‖∇f‖_∞ ≤ κR/d (f is Lipschitz along every segment here: the supported
    functions are, or the bound is infinite). Member: the gradient's certified upper bound
    is ≤ (1 + rtol)·κ·R_lo/d. Non-member: a certified pair of points whose slope exceeds
    (1 + rtol)·κ·R_hi/d. Otherwise undecided."""
    d = len(symbols)
    f = compile_interval(expr, symbols)
    grad = _gradient(expr, symbols)
    r = range_bounds(expr, symbols, budget=budget // 2)
    member_bound = (1 + rtol) * kappa * r.lower / d
    refute_bound = (1 + rtol) * kappa * r.upper / d
    search = maximize(_max_abs(grad), d, below=member_bound, above=refute_bound, budget=budget)
    if search.decided == "below":
        return Certificate("member", f"sup ‖∇f‖∞ ≤ {search.upper:.9g} ≤ (1 + {rtol:g})·κR/d with "
                                     f"R ≥ {r.lower:.9g} (interval branch-and-bound, "
                                     f"{search.boxes + r.boxes} boxes)")
    if search.decided == "above" or search.lower > refute_bound:
        p = search.argmax
        values = [abs(_value_at(part, p)) for part in grad]
        pair = _slope_witness(f, p, int(np.argmax(values)), refute_bound)
        if pair is not None:
            x, y, slope = pair
            return Certificate("non-member", f"|f(x) − f(y)|/‖x − y‖₁ ≥ {slope:.9g} > (1 + "
                                             f"{rtol:g})·κR/d with R ≤ {r.upper:.9g} at x = "
                                             f"{x.round(9).tolist()}, y = {y.round(9).tolist()} "
                                             f"(certified interval values)")
    return Certificate("undecided", f"the certified bounds did not separate within "
                                    f"{search.boxes} boxes: sup ‖∇f‖∞ lies in "
                                    f"[{search.lower:.9g}, {search.upper:.9g}], κR/d in "
                                    f"[{kappa * r.lower / d:.9g}, {kappa * r.upper / d:.9g}]")


def _hessian(expr: sp.Expr, symbols: Sequence[sp.Symbol]) -> list[list[sp.Expr]]:
    first = [sp.diff(expr, x) for x in symbols]
    if any(g.has(sp.DiracDelta) for g in first):
        raise Unsupported("the form has kinks (Abs, Max, Min) that no disciplined-convex rule "
                          "covers, so it has no Hessian to bound")
    hess = [[sp.diff(g, y) for y in symbols] for g in first]
    if any(h.has(sp.DiracDelta) for row in hess for h in row):
        raise Unsupported("the form's gradient has kinks (Abs, Max, Min): no Hessian to bound")
    return hess


def _curvature(entries: list[list[Evaluator]]) -> Evaluator:
    """An enclosure of φ(x) = −λ_min(∇²f(x)) on each box: above by Gershgorin's disc bound,
    below by −vᵀ∇²f v for the float eigenvector v of the smallest eigenvalue at the box's
    centre (λ_min ≤ vᵀHv for every unit v, so this is attained somewhere in the box)."""
    d = len(entries)

    def phi(lo: np.ndarray, hi: np.ndarray) -> Interval:
        h = [[entries[i][j](lo, hi) for j in range(d)] for i in range(d)]
        disc = np.min([h[i][i][0] - sum(_abs(h[i][j])[1] for j in range(d) if j != i)
                       for i in range(d)], axis=0)
        centre = np.array([[(h[i][j][0] + h[i][j][1]) / 2 for j in range(d)] for i in range(d)])
        centre = np.nan_to_num(np.moveaxis(centre, 2, 0), posinf=0.0, neginf=0.0)  # (n, d, d)
        _, vectors = np.linalg.eigh((centre + np.swapaxes(centre, 1, 2)) / 2)
        v = vectors[:, :, 0]  # (n, d), unit
        quad_hi = np.zeros(lo.shape[0])
        for i in range(d):
            for j in range(d):
                vv = v[:, i] * v[:, j]
                term = _mul(h[i][j], (vv, vv))
                quad_hi = _up(quad_hi + term[1])
        return _down(-quad_hi), _up(-disc)
    return phi


def _midpoint_witness(f: Evaluator, point: np.ndarray, direction: np.ndarray, excess: float
                      ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """x, y in the cube with f((x + y)/2) − (f(x) + f(y))/2 > excess, certified; tried
    around `point` and, when it lies on a face, around points moved towards the centre."""
    for pull in (0.0, 0.02, 0.1, 0.3):
        centre = point + pull * (0.5 - point)
        with np.errstate(divide="ignore", invalid="ignore"):
            ahead = np.where(direction > 0, (1 - centre) / direction,
                             np.where(direction < 0, -centre / direction, np.inf))
            behind = np.where(direction > 0, centre / direction,
                              np.where(direction < 0, (centre - 1) / direction, np.inf))
        reach = float(min(ahead.min(), behind.min()))
        for scale in (0.9, 0.3, 0.1, 1e-2, 1e-3):
            step = scale * reach
            if not 0 < step < np.inf:
                break
            x, y = centre - step * direction, centre + step * direction
            if x.min() < 0 or y.min() < 0 or x.max() > 1 or y.max() > 1:
                continue
            mid = (x + y) / 2
            fm, fx, fy = f(mid[None], mid[None]), f(x[None], x[None]), f(y[None], y[None])
            gap = fm[0][0] - float(_up(np.float64((fx[1][0] + fy[1][0]) / 2), 2))
            if gap > excess:
                return x, y, float(gap)
    return None


def convex_certificate(expr: sp.Expr, symbols: Sequence[sp.Symbol], rtol: float,
                       budget: int = 40_000) -> Certificate:
    """Is f convex on the cube (up to rtol·R)? A twice-differentiable f is convex exactly when
    λ_min(∇²f) ≥ 0 everywhere. A constant Hessian is decided exactly (sympy, rational or
    algebraic entries); otherwise branch-and-bound on φ = −λ_min(∇²f): member when sup φ ≤
    rtol·R is certified, non-member with a certified midpoint-convexity violation above
    rtol·R, else undecided."""
    d = len(symbols)
    f = compile_interval(expr, symbols)
    hess = _hessian(expr, symbols)
    if not any(h.free_symbols for row in hess for h in row):
        matrix = sp.Matrix(hess)
        psd = matrix.is_positive_semidefinite
        if psd is True:
            return Certificate("member", "its Hessian is constant and positive semidefinite "
                                         "(exact, sympy)")
        if psd is False:
            numeric = np.array(matrix.evalf(30).tolist(), dtype=np.float64)
            values, vectors = np.linalg.eigh((numeric + numeric.T) / 2)
            pair = _midpoint_witness(f, np.full(d, 0.5), vectors[:, 0], 0.0)
            where = "" if pair is None else (
                f": midpoint convexity fails at x = {pair[0].round(9).tolist()}, y = "
                f"{pair[1].round(9).tolist()} by ≥ {pair[2]:.6g}")
            return Certificate("non-member", f"its Hessian is constant with eigenvalue "
                                             f"{values[0]:.6g} < 0 (exact, sympy){where}")
    r = range_bounds(expr, symbols, budget=budget // 4)
    tol = rtol * max(r.upper, 0.0)
    entries = [[compile_interval(h, symbols) for h in row] for row in hess]
    search = maximize(_curvature(entries), d, below=tol, above=tol, budget=budget)
    if search.decided == "below":
        return Certificate("member", f"λ_min(∇²f) ≥ {-search.upper:.6g} ≥ −{rtol:g}·R on the "
                                     f"cube (interval branch-and-bound, {search.boxes} boxes)")
    if search.lower > tol:
        p = search.argmax
        h = np.array([[_value_at(entries[i][j], p) for j in range(d)] for i in range(d)])
        _, vectors = np.linalg.eigh((h + h.T) / 2)
        pair = _midpoint_witness(f, p, vectors[:, 0], tol)
        if pair is not None:
            x, y, gap = pair
            return Certificate("non-member", f"f((x + y)/2) exceeds (f(x) + f(y))/2 by ≥ "
                                             f"{gap:.6g} > {rtol:g}·R at x = {x.round(9).tolist()}, "
                                             f"y = {y.round(9).tolist()} (certified interval values)")
    return Certificate("undecided", f"the certified bounds did not separate within "
                                    f"{search.boxes} boxes: sup −λ_min(∇²f) lies in "
                                    f"[{search.lower:.6g}, {search.upper:.6g}], the tolerance is "
                                    f"{tol:.3g}")


def monotone_certificate(expr: sp.Expr, symbols: Sequence[sp.Symbol], rtol: float,
                         budget: int = 40_000) -> Certificate:
    """Is f non-decreasing in every coordinate on the cube (up to rtol·R)? For f Lipschitz
    along segments, exactly when inf ∂_k f ≥ 0 for every k. Member: the certified bound
    sup_k sup_x (−∂_k f) ≤ rtol·R; non-member: a certified pair x ≤ y = x + h·e_k with
    f(x) − f(y) > rtol·R; else undecided."""
    d = len(symbols)
    f = compile_interval(expr, symbols)
    parts = _gradient(expr, symbols)

    def descent(lo: np.ndarray, hi: np.ndarray) -> Interval:
        bounds = [p(lo, hi) for p in parts]
        return np.max([-b[1] for b in bounds], axis=0), np.max([-b[0] for b in bounds], axis=0)
    r = range_bounds(expr, symbols, budget=budget // 4)
    tol = rtol * max(r.upper, 0.0)
    search = maximize(descent, d, below=tol, above=tol, budget=budget)
    if search.decided == "below":
        return Certificate("member", f"every ∂_k f ≥ {-search.upper:.6g} ≥ −{rtol:g}·R on the cube "
                                     f"(interval branch-and-bound, {search.boxes} boxes)")
    if search.lower > tol:
        p = search.argmax
        axis = int(np.argmin([_value_at(part, p) for part in parts]))
        for x, y in _axis_steps(p, axis, (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)):
            drop = f(x[None], x[None])[0][0] - f(y[None], y[None])[1][0]
            if drop > tol:
                return Certificate("non-member", f"decreases along x{axis}: f(x) − f(y) ≥ "
                                                 f"{drop:.6g} > {rtol:g}·R for "
                                                 f"x = {x.round(9).tolist()} ≤ y = "
                                                 f"{y.round(9).tolist()} (certified interval values)")
    return Certificate("undecided", f"the certified bounds did not separate within "
                                    f"{search.boxes} boxes: sup_k sup −∂_k f lies in "
                                    f"[{search.lower:.6g}, {search.upper:.6g}], the tolerance is "
                                    f"{tol:.3g}")
