"""L-Lipschitz units: better than chance only when L is small relative to the range.

Theorem (Lipschitz minimax; after Sec. 5 of *Don't trust your eyes*, formulation ours):
given Φ, every L-Lipschitz (ℓ1) consistent f lies in the band
ℓ(x) = max(f_min, f_max − L‖x − x_max‖₁) ≤ f(x) ≤ u(x) = min(f_max, f_min + L‖x − x_min‖₁);
the decoder (ℓ + u)/2 is minimax with error sup_x (u − ℓ)/2, because slightly tilted
copies of the envelopes are members with the same Φ. That error is chance (R/2) as soon as
some x lies ≥ R/L from both extremes and the extremes are ≥ R/L apart. We state the class
scale-free: Lip(f)·d ≤ κ·R(f) (κ ≥ 1 always). With s = κ/d and distances to a = x_min,
b = x_max, the normalized half-width is e(x) = (min(1, s‖x − a‖) + min(1, s‖x − b‖) − 1)/2.

Worst case over every Φ and every member (:func:`worst_case_error`, proof in
``proofs/lipschitz.py``): per coordinate |x_i − a_i| + |x_i − b_i| ≤ 2 − |a_i − b_i|, so
‖x − a‖ + ‖x − b‖ ≤ 2d − d/κ and e ≤ κ − 1 (d ≥ 2), attained in every d ≥ 2
(:func:`worst_case_witness`; in d = 2 by x = 0, a = (1, 1 − 1/κ), b = (1 − 1/κ, 1), in d = 3
at κ = 6/5 by x = 0, a = (1, 1, ½), b = (0, 0, 1)); in d = 1, e ≤ (κ − 1)/2. Chance needs three
points pairwise ≥ d/κ apart; in [0, 1]^d at most 2d/3 (d ≥ 2) or 1/2 (d = 1) is possible, so the threshold is
κ* = 3/2 for d ≥ 2 and 2 for d = 1. Near x_max (task D, ℓ1 radius ρ): u − ℓ ≤ L‖x − b‖, so
e ≤ κρ/(2d). κ = 1.2 ("small L") is reliable; κ = 20 ("large L") is impossible.
Proof: ``proofs/lipschitz.py``; tests: ``tests/theory/test_lipschitz.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import scipy.sparse as sps
import sympy as sp
from numpy.typing import ArrayLike

from fvtrust.theory.classes.base import (
    MEMBERSHIP_TOL,
    CounterexamplePair,
    FunctionClass,
    Membership,
    ProvenBound,
    check_eps,
    diagonal_phi,
    ensure_query,
    relative_tolerance,
)
from fvtrust.theory.classes.certify import lipschitz_certificate_of, z3_then_certified
from fvtrust.theory.classes.closed_form import grid_neighbour_slopes, l1_expr, rational
from fvtrust.theory.decoders import Decoder, LipschitzBandDecoder
from fvtrust.theory.domain import Grid, l1
from fvtrust.theory.functions import ExpressionFunction, GridFunction, UnitFunction, cube_symbols
from fvtrust.theory.minimax import LinearConstraints, difference_rows
from fvtrust.theory.symbolic import fresh_context, record_optimum, set_budget
from fvtrust.theory.tasks import LOCAL_RADIUS, Task, Witness
from fvtrust.theory.visualization import Visualization, from_extremes


def chance_threshold(d: int) -> float:
    """κ* = L·d/R from which the minimax error reaches chance for some Φ: 2 for d = 1, 3/2
    for d ≥ 2 (the largest ℓ1 distance three points of [0, 1]^d can keep pairwise is 1/2 for
    d = 1 and 2d/3 for d ≥ 2, and chance needs d/κ)."""
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    return 2.0 if d == 1 else 1.5


def worst_case_error(kappa: float, d: int, task: Task) -> tuple[float, bool]:
    """(bound, tight): the minimax normalized error of the class Lip·d ≤ κR, worst case over
    every Φ and every member, for tasks A and B (whole function, one query) and D (queries
    within ℓ1 distance ρ of x_max). `tight` says the bound is attained (else an upper bound).

    A, B: min(1/2, κ − 1) for d ≥ 2 (attained in every d ≥ 2: :func:`worst_case_witness`),
    min(1/2, (κ − 1)/2) for d = 1.
    D: min(1/2, κρ/(2d)), attained when the cube is large enough (d/κ + ρ ≤ d).
    """
    if not np.isfinite(kappa) or kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa!r}")
    if task is Task.AFC:
        raise ValueError("the 2-AFC worst case has no closed form here (see the grid LP)")
    if task is Task.LOCAL:
        bound = kappa * LOCAL_RADIUS / (2 * d)
        return min(0.5, bound), d / kappa + LOCAL_RADIUS <= d
    if d == 1:
        return min(0.5, (kappa - 1) / 2), True
    return min(0.5, kappa - 1), True


Point = tuple[Fraction, ...]


def half_width(kappa: Fraction, d: int, x: Point, a: Point, b: Point) -> Fraction:
    """e(x) = (min(1, s‖x − a‖₁) + min(1, s‖x − b‖₁) − 1)/2 with s = κ/d and R = 1: the band's
    normalized half-width at x when the extremes sit at a and b (exact)."""
    s = Fraction(kappa) / d

    def dist(p: Point) -> Fraction:
        return sum((abs(xi - pi) for xi, pi in zip(x, p, strict=True)), Fraction(0))
    return (min(Fraction(1), s * dist(a)) + min(Fraction(1), s * dist(b)) - 1) / 2


def worst_case_witness(kappa: Fraction | float, d: int) -> tuple[Point, Point, Point]:
    """(x, a, b) in [0, 1]^d, d ≥ 2, with ‖a − b‖₁ ≥ d/κ (a consistent Φ) and e(x) = min(1/2,
    κ − 1): the worst case of :func:`worst_case_error` is attained in every d ≥ 2, odd or even.

    With D = d/min(κ, 3/2) and x = 0: a_i = 1 on the first m = ⌊d/2⌋ coordinates and b_i = 1 on
    the others; the other member of each coordinate is 1 − δ_i, with Σδ = D split so that
    ‖a‖₁, ‖b‖₁ ≤ D. Then ‖a‖₁ + ‖b‖₁ = 2d − D, so e(0) = (κ/d)(2d − D)/2 − 1/2 = κ − 1 for
    κ ≤ 3/2 (and both terms reach 1, e = 1/2, above)."""
    k = Fraction(kappa)
    if d < 2 or k < 1:
        raise ValueError(f"the witness needs d >= 2 and kappa >= 1, got d={d}, kappa={kappa}")
    D = Fraction(d) / min(k, Fraction(3, 2))
    m = d // 2
    on_a = max(d - D, D - (d - m))  # Σδ over the first m coordinates: feasible since D ≥ 2d/3
    da, db = on_a / m, (D - on_a) / (d - m)
    a = tuple(Fraction(1) if i < m else 1 - db for i in range(d))
    b = tuple(1 - da if i < m else Fraction(1) for i in range(d))
    return tuple(Fraction(0) for _ in range(d)), a, b


@dataclass(frozen=True)
class AfcMargins:
    """Task C for the class Lip·d ≤ κR, exact on the continuous cube (z3, R = 1). Every
    consistent member satisfies ℓ ≤ f ≤ u and f(z) − f(z′) ≤ L‖z − z′‖₁, and the extension
    theorem (McShane) realizes every value choice that satisfies these (up to making the
    extremes unique, which costs an arbitrarily small slack), so

    * `flip` = max over Φ, z, z′ of min(u(z) − ℓ(z′), u(z′) − ℓ(z), L‖z − z′‖₁): the largest
      gap by which two members with one Φ can order a pair oppositely;
    * `band_decoder_wrong` = the same maximum of min(u(z) − ℓ(z′), L‖z − z′‖₁) over the pairs
      the band decoder m = (ℓ + u)/2 orders the other way or ties (m(z) ≤ m(z′)): below the
      task's margin γ = 1/4 the band decoder answers every trial correctly.

    `witness` holds a, b, z, z′ attaining `band_decoder_wrong`."""

    kappa: float
    d: int
    flip: Fraction
    band_decoder_wrong: Fraction
    witness: dict[str, np.ndarray]


class CubeProgram:
    """A z3 optimization over named points of [0, 1]^d with ℓ1 distances: linear real
    arithmetic with |·|, min and max, which z3 decides exactly."""

    def __init__(self, names: tuple[str, ...], d: int, timeout_s: float = 60.0) -> None:
        import z3

        self.z3 = z3
        self.ctx = fresh_context()  # its own: its time must not depend on earlier queries
        self.pts = {n: [self.var(f"{n}{i}") for i in range(d)] for n in names}
        self.opt = z3.Optimize(ctx=self.ctx)
        # wall clock only: the largest programs the tests solve take under 1 s, 60× below it
        set_budget(self.opt, None, int(timeout_s * 1000))
        for xs in self.pts.values():
            for x in xs:
                self.opt.add(x >= 0, x <= 1)

    def var(self, name: str) -> Any:
        """A real variable of this program."""
        return self.z3.Real(name, self.ctx)

    def real(self, v: float) -> Any:
        return self.z3.RealVal(Fraction(v).limit_denominator(10**9), self.ctx)

    def dist(self, p: str, q: str) -> Any:
        """‖p − q‖₁."""
        z3 = self.z3
        terms = [z3.If(x >= y, x - y, y - x) for x, y in zip(self.pts[p], self.pts[q], strict=True)]
        # one term is no sum: z3 would print (+ t), which the SMT-LIB standard (and cvc5) refuse
        return z3.Sum(terms) if len(terms) > 1 else terms[0]

    def clip(self, e: Any, lo: Any, hi: Any) -> Any:
        z3 = self.z3
        return z3.If(e <= lo, lo, z3.If(e >= hi, hi, e))

    def maximize(self, t: Any, label: str = "cube program") -> tuple[Fraction, dict[str, np.ndarray]] | None:
        """The exact optimum of t and the points attaining it; None: undecided (timeout). The
        optimum is kept as re-checkable queries under `label` (:func:`record_optimum`)."""
        self.opt.maximize(t)
        if self.opt.check() != self.z3.sat:
            return None
        model = self.opt.model()

        def value(e: Any) -> Fraction:
            v = model.eval(e, model_completion=True)
            return Fraction(v.numerator_as_long(), v.denominator_as_long())
        best = value(t)
        record_optimum(label, self.opt.assertions(), t, self.z3.RealVal(best, self.ctx), maximize=True)
        return best, {n: np.array([float(value(x)) for x in xs]) for n, xs in self.pts.items()}


def afc_margins(kappa: float, d: int, timeout_s: float = 60.0,
                slack: float = 0.0) -> AfcMargins | None:
    """:class:`AfcMargins` by two exact z3 optimizations over (a, b, z, z′) ∈ [0, 1]^{4d}
    (:class:`CubeProgram`). None when z3 is missing or times out.

    `slack` > 0 widens the band's caps to [−slack, 1 + slack] (the band from approximate
    extremes, :class:`~theory.variants.ApproxBandDecoder`, with κ its L̂·d/R̂)."""
    if not np.isfinite(kappa) or kappa < 1:
        raise ValueError(f"kappa must be >= 1, got {kappa!r}")
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    try:
        import z3  # noqa: F401
    except ImportError:
        return None

    def solve(decoder_wrong: bool) -> tuple[Fraction, dict[str, np.ndarray]] | None:
        prog = CubeProgram(("a", "b", "z", "w"), d, timeout_s)
        s, top, floor = prog.real(kappa) / d, 1 + prog.real(slack), -prog.real(slack)

        def upper(p: str) -> Any:
            return prog.clip(s * prog.dist(p, "a"), floor, top)

        def lower(p: str) -> Any:
            return prog.clip(1 - s * prog.dist(p, "b"), floor, top)
        prog.opt.add(s * prog.dist("a", "b") >= 1)  # R = 1 ≤ L‖a − b‖₁: Φ is consistent
        t = prog.var("t")
        prog.opt.add(t <= upper("z") - lower("w"), t <= s * prog.dist("z", "w"))
        if decoder_wrong:
            prog.opt.add(upper("z") + lower("z") <= upper("w") + lower("w"))
        else:
            prog.opt.add(t <= upper("w") - lower("z"))
        return prog.maximize(t, f"2-AFC, kappa = {kappa:g}, d = {d}"
                             + (f", slack {slack:g}" if slack else "")
                             + (": largest gap the band decoder misorders" if decoder_wrong
                                else ": largest flip over every Phi"))
    flip, wrong = solve(False), solve(True)
    if flip is None or wrong is None:
        return None
    return AfcMargins(float(kappa), d, flip[0], wrong[0], wrong[1])


def afc_reliable_below(d: int, tol: float = 1e-6) -> float:
    """κ_C(d): the band decoder answers every 2-AFC trial of the class correctly for κ below
    it (bisection on :func:`afc_margins`, to `tol`)."""
    from fvtrust.theory.tasks import AFC_MARGIN

    lo, hi = 1.0, chance_threshold(d)
    while hi - lo > tol:
        mid = (lo + hi) / 2
        m = afc_margins(mid, d)
        if m is None:
            raise RuntimeError(f"z3 could not decide kappa={mid} in d={d}")
        lo, hi = (mid, hi) if m.band_decoder_wrong < AFC_MARGIN else (lo, mid)
    return lo


def _grid_placements(kappa: float, d: int, n: int) -> Iterator[tuple[Lipschitz, Visualization, Any]]:
    """(class, Φ, its LP constraints) for every placement of x_min ≠ x_max on the n-point grid
    that some member can have (‖x_min − x_max‖₁ ≥ d/κ, R = 1), up to the cube's symmetries
    (reflections, permutations map the class and the tasks to themselves: x_min can be taken
    with coordinates ≤ 1/2, in ascending order). Raises when there is none."""
    cls = Lipschitz(kappa, d=d, n=n)
    pts = cls.grid.points
    canonical = np.flatnonzero(np.all(pts <= 0.5 + 1e-12, axis=1) & np.all(np.diff(pts, axis=1) >= 0, axis=1))
    found = False
    for i in canonical:
        for j in range(len(pts)):
            if i == j or float(l1(pts[i], pts[j])) < d / kappa - 1e-12:
                continue
            found = True
            phi = from_extremes(pts[i], pts[j], 0.0, 1.0)
            yield cls, phi, cls.grid_constraints(cls.grid, phi)
    if not found:
        raise ValueError(f"no Φ on a {n}-point grid is consistent with kappa={kappa} in d={d}")


def lp_afc_flip(kappa: float, d: int, n: int) -> tuple[float, Visualization, tuple[Any, Any]]:
    """The exact grid LP cross-check of :attr:`AfcMargins.flip`: over every placement of Φ
    on the n-point grid (R = 1) and every pair of grid queries, the largest t such that one
    member has f(z) − f(z′) ≥ t and another f(z′) − f(z) ≥ t. Returns (t, Φ, (z, z′))."""
    from fvtrust.theory.minimax import difference_range

    best, best_phi, best_pair = -1.0, None, (None, None)
    for cls, phi, cons in _grid_placements(kappa, d, n):
        pts = cls.grid.points
        for p in range(len(pts)):
            for q in range(p + 1, len(pts)):
                rng = difference_range(cons, cls.grid, phi, pts[p], pts[q])
                t = min(rng.high, -rng.low)
                if t > best:
                    best, best_phi, best_pair = t, phi, (pts[p], pts[q])
    return best, best_phi, best_pair


def lp_worst_case(kappa: float, d: int, n: int, task: Task = Task.QUERY) -> tuple[float, Visualization]:
    """The exact grid LP, maximized over Φ: the largest minimax error (normalized, R = 1) over
    every placement of x_min ≠ x_max on the n-point grid that some member can have
    (‖x_min − x_max‖₁ ≥ d/κ), at every grid query of `task` (A/B: all; D: within ρ of x_max).
    Returns the worst value and the Φ attaining it. A cross-check of :func:`worst_case_error`."""
    from fvtrust.theory.minimax import minimax_errors, value_range

    worst, worst_phi = -1.0, None
    for cls, phi, cons in _grid_placements(kappa, d, n):
        pts = cls.grid.points
        if task is Task.LOCAL:
            near = pts[l1(pts, phi.x_max) <= LOCAL_RADIUS + 1e-12]
            errors = np.array([value_range(cons, cls.grid, phi, q).minimax_error for q in near])
        else:
            errors = minimax_errors(cons, cls.grid, phi)
        if len(errors) and float(errors.max()) > worst:
            worst, worst_phi = float(errors.max()), phi
    return worst, worst_phi


def band_pair(phi: Visualization, L: float | sp.Rational,
              eps: float) -> tuple[ExpressionFunction, ExpressionFunction]:
    """The tilted envelopes (δ = ε/d):
    f₊ = min(f_max − δ‖x − b‖₁, f_min + L‖x − a‖₁), f₋ = max(f_min + δ‖x − a‖₁, f_max − L‖x − b‖₁).
    """
    d = phi.d
    delta = rational(eps) / d
    to_a, to_b = l1_expr(phi.x_min), l1_expr(phi.x_max)
    lo, hi, lip = rational(phi.v_min), rational(phi.v_max), rational(L)
    plus = sp.Min(hi - delta * to_b, lo + lip * to_a)
    minus = sp.Max(lo + delta * to_a, hi - lip * to_b)
    return ExpressionFunction(plus, d, "f+"), ExpressionFunction(minus, d, "f-")


def afc_pair(phi: Visualization, L: float | sp.Rational, eps: float, z: ArrayLike,
             z2: ArrayLike) -> tuple[ExpressionFunction, ExpressionFunction]:
    """Two members with Φ that order (z, z′) oppositely by nearly R (task C, large L): the low
    envelope g = max(f_min + δ‖x − a‖₁, f_max − L‖x − b‖₁) with a tent of height R − ε and
    ℓ1 radius r = R/L raised at z (f₊) or at z′ (f₋):
    f± = max(g, f_min + (R − ε)·max(0, 1 − ‖x − q±‖₁/r)). Lipschitz L (max of L-Lipschitz
    pieces), unique argmin a and argmax b (the tents stay below f_max and away from a, b)."""
    z, z2 = ensure_query(z, phi.d), ensure_query(z2, phi.d)
    lo, hi, lip = rational(phi.v_min), rational(phi.v_max), rational(L)
    radius = (hi - lo) / lip  # exact: the tents' slope (R − ε)/r stays below L at every scale
    r = float(radius)
    for name, q in (("z", z), ("z'", z2)):
        if min(float(l1(q, phi.x_min)), float(l1(q, phi.x_max))) <= r:
            raise ValueError(f"query {name}={q.tolist()} is within R/L = {r:g} of an extreme")
    if float(l1(z, z2)) < r:
        raise ValueError(f"the queries are closer than R/L = {r:g}: one tent would lift both")
    d = phi.d
    delta = rational(eps) / d
    low = sp.Max(lo + delta * l1_expr(phi.x_min), hi - lip * l1_expr(phi.x_max))
    height = hi - lo - rational(eps)

    def lifted(q: np.ndarray, name: str) -> ExpressionFunction:
        tent = sp.Max(0, 1 - l1_expr(q) / radius)
        return ExpressionFunction(sp.Max(low, lo + height * tent), d, name)
    return lifted(z, "f+"), lifted(z2, "f-")


class Lipschitz(FunctionClass):
    """Units with ℓ1-Lipschitz constant L ≤ κ·R/d (scale-free; κ ≥ 1)."""

    polyhedral = True
    paper = "impossible except for small L"

    def __init__(self, kappa: float, d: int = 2, n: int = 11) -> None:
        if not np.isfinite(kappa) or kappa < 1:
            raise ValueError(f"kappa must be >= 1 (Lip·d >= R always holds), got {kappa!r}")
        super().__init__(d, n)
        self.kappa = float(kappa)
        size = "small" if kappa < chance_threshold(d) else "large"
        self.key = f"lipschitz_{size}"
        self.title = (f"L-Lipschitz, {size} L (L·d ≤ {kappa:g}·R, "
                      f"{'below' if size == 'small' else 'at or above'} κ* = {chance_threshold(d):g})")

    def lipschitz_constant(self, phi: Visualization) -> float:
        return self.kappa * phi.range / self.d

    def exact_lipschitz_constant(self, phi: Visualization) -> sp.Rational:
        """κR/d in exact arithmetic, with R = f_max − f_min of phi's values as exact rationals:
        the float R loses its relative precision when the range is small beside the values
        (R = 10⁻⁷ at f ≈ 10⁵ is known to 10⁻⁴ of itself), and a member built with the float
        L can then be steeper than its class allows."""
        return rational(self.kappa) * (rational(phi.v_max) - rational(phi.v_min)) / self.d

    # A member: Σ_k c_k·max(0, r_k − ‖x − p_k‖₁) + ⟨w, x⟩; its Lipschitz bound is max|w_i| + Σ|c_k|.
    def build(self, params: Any) -> ExpressionFunction:
        alpha, signs, cones = params
        xs = cube_symbols(self.d)
        while True:
            w = [(1 - alpha) * s for s in signs]
            expr = sum((rational(wi) * x for wi, x in zip(w, xs, strict=True)), sp.Integer(0))
            total = sum(abs(c) for c, _, _ in cones) or 1.0
            for c, p, r in cones:
                expr += rational(alpha * c / total) * sp.Max(0, rational(r) - l1_expr(np.array(p)))
            f = ExpressionFunction(expr, self.d, "lipschitz")
            R = float(np.ptp(f(self.grid.points)))
            if self.d <= self.kappa * R or alpha < 1e-6:  # bound 1 on Lip(f)
                return f
            alpha /= 2

    def draw(self, rng: np.random.Generator) -> Any:
        cones = tuple((float(rng.uniform(-1, 1)), tuple(rng.random(self.d).round(2)),
                       float(rng.uniform(0.1, 0.5))) for _ in range(2))
        signs = tuple(float(s) for s in rng.choice([-1.0, 1.0], size=self.d))
        return float(rng.uniform(0, 1)), signs, cones

    def params_strategy(self) -> Any:
        from hypothesis import strategies as st

        unit = st.integers(0, 100).map(lambda k: k / 100)
        cone = st.tuples(st.integers(-10, 10).map(lambda k: k / 10),
                         st.tuples(*[unit] * self.d), st.integers(1, 5).map(lambda k: k / 10))
        return st.tuples(unit, st.tuples(*[st.sampled_from([-1.0, 1.0])] * self.d),
                         st.lists(cone, min_size=0, max_size=3).map(tuple))

    def membership(self, f: UnitFunction) -> Membership:
        """Three answers. Closed forms are judged on the whole cube: piecewise-linear forms
        with rational coefficients by z3 (the exact range R, then |f(x) − f(y)| ≤
        (1 + 1e-9)·(κR/d)·‖x − y‖₁ for all x, y), everything else — and a form z3 does not
        decide within its budget (a count of solver steps, not seconds) — by certified
        interval branch-and-bound on sup ‖∇f‖∞
        (:func:`~theory.certified.lipschitz_certificate`); when neither decides, "undecided"
        with the reason, never a grid verdict. Units without a closed form get the grid check
        (exact for a tabulated unit, since ℓ1 paths on a grid are edge paths; "grid only"
        otherwise): max edge slope · d ≤ κ · (grid range), to 1e-9·R plus round-off."""
        if f.expression is not None and not isinstance(f, GridFunction):
            return self._closed_form_membership(f)
        values = f(self.grid.points)
        slopes = np.abs(grid_neighbour_slopes(f, self.grid))
        R = float(np.ptp(values))
        lip = float(slopes.max(initial=0.0))
        slack = self.d * relative_tolerance(values) / self.grid.step
        steep = lip * self.d > self.kappa * R + slack
        if isinstance(f, GridFunction):  # ℓ1 paths on the grid are edge paths: exact
            if steep:
                return Membership(False, f"Lipschitz constant {lip:.6g} exceeds κR/d = "
                                         f"{self.kappa * R / self.d:.6g} (κ={self.kappa:g}, R={R:.6g})")
            return Membership(True)
        # Off the grid, f may be steeper (a member would be refuted) or its range larger
        # (a violation on the grid would be allowed): the grid decides neither way.
        seen = (f"an edge slope {lip:.6g} above κR/d = {self.kappa * R / self.d:.6g} with the "
                f"grid's range R = {R:.6g}" if steep else "no edge slope above κR/d")
        return Membership.undecided(f"no closed form: on the {self.grid} it shows {seen}; the "
                                    f"cube's range and slopes off the grid are unknown", "grid only")

    def _closed_form_membership(self, f: UnitFunction) -> Membership:
        return z3_then_certified(f, lambda: self._cube_membership(f),
                                 lipschitz_certificate_of(self.kappa))

    def _cube_membership(self, f: UnitFunction) -> Membership | None:
        """The exact verdict, or None when z3 does not decide within its budget."""
        from fvtrust.theory.symbolic import exact_extremes, lipschitz_l1

        xs = cube_symbols(self.d)
        extremes = exact_extremes(f.expression, xs)
        if extremes is None:
            return None
        R = extremes[0] - extremes[1]
        bound = rational(self.kappa) * R / self.d * (1 + rational(MEMBERSHIP_TOL))
        verdict = lipschitz_l1(f.expression, xs, bound)
        if verdict.proved:
            return Membership(True, f"z3: |f(x) − f(y)| ≤ (1 + {MEMBERSHIP_TOL:g})·κR/d·‖x − y‖₁ "
                                    f"on the cube, exact R = {float(R):.6g}", "z3 exact")
        if verdict.counterexample is None:
            return None  # unknown, not refuted
        where = f" (z3: {verdict.counterexample})"
        return Membership(False, f"on the cube, |f(x) − f(y)| exceeds (1 + {MEMBERSHIP_TOL:g})·κR/d·"
                                 f"‖x − y‖₁ = {float(bound):.6g}·‖x − y‖₁ (κ={self.kappa:g}, exact "
                                 f"R={float(R):.6g}){where}", "z3 exact")

    def canonical_phi(self) -> Visualization:
        return diagonal_phi(self.d)

    def grid_constraints(self, grid: Grid, phi: Visualization | None = None) -> LinearConstraints:
        R = 1.0 if phi is None else phi.range
        lo, hi = grid.neighbour_pairs()
        n = len(grid)
        step = self.kappa * R / self.d * grid.step
        a = sps.vstack([difference_rows(hi, lo, n), difference_rows(lo, hi, n)]).tocsr()
        return LinearConstraints(n, A_ub=a, b_ub=np.full(a.shape[0], step))

    def counterexample_pair(self, f: UnitFunction | Visualization, z: ArrayLike,
                            eps: float) -> CounterexamplePair:
        phi = f if isinstance(f, Visualization) else self.visualize(f)
        if not isinstance(f, Visualization):
            self.require_member(f)
        z = ensure_query(z, self.d)
        eps = check_eps(eps, phi.range)
        L = self.exact_lipschitz_constant(phi)
        reach = phi.range / float(L)
        if float(l1(phi.x_min, phi.x_max)) < reach - 1e-12:
            raise ValueError(f"no unit with L = {L:g} has this Φ: its extremes are "
                             f"closer than R/L = {reach:g}")
        closest = min(float(l1(z, phi.x_min)), float(l1(z, phi.x_max)))
        if closest < reach - 1e-12:
            raise ValueError(f"query z={z.tolist()} is within R/L = {reach:g} of an extreme; "
                             f"there the band is narrower than R (use the band decoder)")
        plus, minus = band_pair(phi, L, eps)
        return CounterexamplePair(plus, minus, phi, z, eps)

    def explicit_witness(self, task: Task, eps: float) -> Witness | None:
        phi = self.canonical_phi()
        if task is Task.AFC:
            # tents at two far corners; for small κ they reach the extremes (None: no pair)
            z, z2 = np.zeros(self.d), np.ones(self.d)
            z[0], z2[0] = 1.0, 0.0
            try:
                plus, minus = afc_pair(phi, self.exact_lipschitz_constant(phi), eps, z, z2)
            except ValueError:
                return None
            return Witness(task, plus, minus, phi, (z, z2), "construction")
        z = np.ones(self.d)
        if task is Task.LOCAL:
            z[0] -= 0.1
        else:
            z[1:] = 0.0
        try:
            return self.counterexample_pair(phi, z, eps).witness(task)
        except ValueError:
            return None  # no query is far enough: κ is small

    def proven_worst_case(self, task: Task) -> ProvenBound | None:
        if task is Task.AFC:
            from fvtrust.theory.tasks import AFC_MARGIN

            # accuracy 1 when no pair the band decoder misorders has a gap of γR
            margins = afc_margins(self.kappa, self.d)
            if margins is None or margins.band_decoder_wrong >= AFC_MARGIN:
                return None
            return ProvenBound(1.0, True, "z3 on the cube, grid-LP cross-check: proofs/lipschitz.py")
        if self.kappa >= chance_threshold(self.d):
            return None
        score, tight = worst_case_error(self.kappa, self.d, task)
        return ProvenBound(score, tight, "proofs/lipschitz.py")

    def decoder(self) -> Decoder:
        return LipschitzBandDecoder(relative=self.kappa / self.d)
