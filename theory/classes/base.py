"""The common interface of a function class F, and the counterexample pair it may have.

A class is: a parameter space (drawn by a seeded numpy sampler and by a hypothesis
strategy, both mapped through one ``build``), a membership check, a way to compute Φ for
its members, and either a no-go construction or a decoder with a proven bound. Adding a
class means writing these pieces; the table and the tests pick it up from the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fvtrust.theory.decoders import Decoder
from fvtrust.theory.domain import Array, Grid, check_in_cube, l1
from fvtrust.theory.functions import UnitFunction
from fvtrust.theory.minimax import LinearConstraints, difference_range, value_range
from fvtrust.theory.tasks import AFC_MARGIN, LOCAL_RADIUS, Task, Witness
from fvtrust.theory.visualization import Visualization, from_extremes, grid_visualization

#: Membership tolerance: relative to the member's range R (a class condition that holds
#: up to 1e-9·R holds), plus the float64 round-off of its values where values are sampled.
MEMBERSHIP_TOL = 1e-9

#: The three answers of a membership check, and the checks that give them.
MEMBER, NON_MEMBER, UNDECIDED = "member", "non-member", "undecided"
METHODS = ("representation", "symbolic rules", "z3 exact", "certified bound", "grid only")


@dataclass(frozen=True)
class Membership:
    """Is f in the class: "member", "non-member" or "undecided" (with the reason: a solver
    timeout, a form no exact check covers); `method` names the check that decided it and
    `reason` what it found. Only a member is truthy: "undecided" never counts as a member."""

    member: bool
    reason: str = ""
    method: str = "representation"
    answer: str = ""

    def __post_init__(self) -> None:
        if not self.answer:
            object.__setattr__(self, "answer", MEMBER if self.member else NON_MEMBER)
        if self.answer not in (MEMBER, NON_MEMBER, UNDECIDED) or (self.answer == MEMBER) != self.member:
            raise ValueError(f"inconsistent membership: member={self.member}, answer={self.answer!r}")
        if self.method not in METHODS:
            raise ValueError(f"unknown membership method {self.method!r}; known: {', '.join(METHODS)}")

    @classmethod
    def undecided(cls, reason: str, method: str) -> Membership:
        return cls(False, reason, method, UNDECIDED)

    @property
    def decided(self) -> bool:
        return self.answer != UNDECIDED

    def __bool__(self) -> bool:
        return self.member

    def __str__(self) -> str:
        return f"{self.answer} ({self.method}{': ' + self.reason if self.reason else ''})"


def relative_tolerance(values: np.ndarray) -> float:
    """MEMBERSHIP_TOL·R plus the round-off of float64 values of this size (scale-free)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return 0.0
    R = float(np.ptp(values))
    return MEMBERSHIP_TOL * R + 16 * np.finfo(np.float64).eps * float(np.max(np.abs(values)))


def check_eps(eps: float, R: float) -> float:
    """Validate 0 < ε < R/2 (else the pair could not beat or reach chance)."""
    if not np.isfinite(eps) or eps <= 0 or eps >= R / 2:
        raise ValueError(f"eps must satisfy 0 < eps < R/2 = {R / 2}, got eps={eps!r}")
    return float(eps)


@dataclass(frozen=True)
class ProvenBound:
    """A proven worst case of the class decoder: error (A, B, D) or accuracy (C) over every
    Φ and every member; `tight` when some member attains it, else an upper bound; `proof`
    names the proof module."""

    score: float
    tight: bool
    proof: str


@dataclass(frozen=True)
class CounterexamplePair:
    """(f₊, f₋) in F with Φ(f₊) = Φ(f₋) = phi and |f₊(z) − f₋(z)| ≥ R − 2ε."""

    f_plus: UnitFunction
    f_minus: UnitFunction
    phi: Visualization
    z: Array
    eps: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return abs(float(self.f_plus(self.z)[0] - self.f_minus(self.z)[0]))

    def verify(self, cls: FunctionClass) -> dict[str, bool]:
        """The three claims: both members, same Φ (as `cls` checks it), the gap."""
        return {
            "f_plus in class": bool(cls.membership(self.f_plus)),
            "f_minus in class": bool(cls.membership(self.f_minus)),
            "same visualization": (cls.shares_visualization(self.f_plus, self.phi)
                                   and cls.shares_visualization(self.f_minus, self.phi)),
            "gap >= R - 2 eps": self.gap >= self.phi.range - 2 * self.eps - 1e-9,
        }

    def witness(self, task: Task = Task.QUERY) -> Witness:
        return Witness(task, self.f_plus, self.f_minus, self.phi, (self.z,), "construction")


class FunctionClass(ABC):
    """A class F of units on [0, 1]^d, checked on the grid of n points per axis."""

    key: str
    title: str
    d: int

    def __init__(self, d: int = 2, n: int = 11) -> None:
        self.d, self._grid = d, Grid(d, n)
    #: Whether its members restricted to a grid form a polyhedron (then :meth:`grid_constraints`).
    polyhedral: bool = False
    #: Φ of constructed pairs must agree to this tolerance (0 where Φ is exact).
    phi_tolerance: float = 1e-12
    #: The paper's status for this class, for the docs; the table never reads it.
    paper: str = ""

    # -- members -------------------------------------------------------------------------
    @abstractmethod
    def build(self, params: Any) -> UnitFunction:
        """The member with these parameters (shared by sampler and strategy)."""

    @abstractmethod
    def draw(self, rng: np.random.Generator) -> Any:
        """Parameters drawn with numpy."""

    @abstractmethod
    def params_strategy(self) -> Any:
        """A hypothesis strategy for the parameters (hypothesis imported lazily)."""

    def sample(self, seed: int | np.random.Generator = 0) -> UnitFunction:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return self.build(self.draw(rng))

    def strategy(self) -> Any:
        """Members as a hypothesis strategy: parameters drawn, then built (shrinkable)."""
        return self.params_strategy().map(self.build)

    @abstractmethod
    def membership(self, f: UnitFunction) -> Membership:
        """Is f in the class? Exact where possible; tolerance documented per class."""

    def require_member(self, f: UnitFunction, role: str = "f") -> None:
        """Raise a ValueError naming the violated condition when f is not in the class."""
        if f.d != self.d:
            raise ValueError(f"{role} has d={f.d}, class {self.key!r} has d={self.d}")
        verdict = self.membership(f)
        if verdict.answer == UNDECIDED:
            raise ValueError(f"whether {role} is in class {self.key!r} is undecided "
                             f"({verdict.method}): {verdict.reason}")
        if not verdict:
            raise ValueError(f"{role} is not in class {self.key!r}: {verdict.reason}")

    # -- visualization -------------------------------------------------------------------
    def visualize(self, f: UnitFunction) -> Visualization:
        """Φ(f) as this class computes it (exact where the representation allows)."""
        return grid_visualization(f, self.grid)

    def shares_visualization(self, g: UnitFunction, phi: Visualization) -> bool:
        """Φ(g) = phi, all four components. A closed-form g is judged on the continuous cube
        alone: g takes phi's values at phi's points and z3 proves f_min ≤ g ≤ f_max with
        equality only there (so Φ agrees under any tie-breaking rule, wherever phi lies: on
        the grid or off it). Other units: Φ as this class computes it, to
        :attr:`phi_tolerance` (relative to the size of the values)."""
        if g.expression is not None and phi.x_min is not None:
            return cube_certified_extremes(g, phi)
        return self.visualize(g).same_as(phi, self.phi_tolerance)

    @property
    def grid(self) -> Grid:
        """The grid used for membership checks, grid Φ and the LP."""
        return self._grid

    def canonical_phi(self) -> Visualization:
        """A visualization the table evaluates the class at (a member has it)."""
        return grid_visualization(self.sample(0), self.grid)

    # -- the no-go side ------------------------------------------------------------------
    def counterexample_pair(self, f: UnitFunction | Visualization, z: ArrayLike,
                            eps: float) -> CounterexamplePair:
        """(f₊, f₋) in F, equal Φ, |f₊(z) − f₋(z)| ≥ R − 2ε. Reliable classes raise."""
        raise NotImplementedError(f"class {self.key!r} has no counterexample pair: "
                                  f"it is reliable (see its decoder)")

    def explicit_witness(self, task: Task, eps: float) -> Witness | None:
        """A closed-form witness for `task`, where the class has one."""
        return None

    def witness(self, task: Task, eps: float) -> Witness | None:
        """A pair that drives every decoder to chance on `task`, or None if none is known.

        Closed-form constructions first; for polyhedral classes the LP on :attr:`grid`
        at :meth:`canonical_phi` is exact and its optimizers are the pair.
        """
        explicit = self.explicit_witness(task, eps)
        if explicit is not None or not self.polyhedral:
            return explicit
        return lp_witness(self, task, eps)

    def query_points(self, phi: Visualization, task: Task) -> Array:
        """Grid queries that task `task` asks about under Φ."""
        pts = self.grid.points
        if task is Task.LOCAL:
            return pts[l1(pts, phi.x_max) <= LOCAL_RADIUS + 1e-12]
        return pts

    # -- the positive side ---------------------------------------------------------------
    def proven_worst_case(self, task: Task) -> ProvenBound | None:
        """The worst score of :meth:`decoder` over *every* Φ and member, as proved (None:
        no proof for this task). A reliable table entry is this bound, never a sample."""
        return None

    def decoder(self) -> Decoder | None:
        """The best decoder the theory has for this class (None: no better than chance)."""
        return None

    def grid_constraints(self, grid: Grid,
                         phi: Visualization | None = None) -> LinearConstraints | None:
        """The class restricted to `grid` as a polyhedron (polyhedral classes only);
        `phi` is passed for classes whose constraints scale with the range R."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, d={self.d})"


def cube_certified_extremes(g: UnitFunction, phi: Visualization) -> bool:
    """z3, over the reals on [0, 1]^d: g's closed form takes phi's values at phi's points, lies
    between them everywhere, and reaches them nowhere else (exact arithmetic)."""
    import sympy as sp

    from fvtrust.theory.functions import cube_symbols
    from fvtrust.theory.symbolic import exact, exact_floats, in_cube, prove

    xs = cube_symbols(g.d)
    # Exact rational arithmetic throughout: the coefficients, the points and the values.
    expr = exact_floats(g.expression)
    point = [{x: exact(v) for x, v in zip(xs, p, strict=True)}
             for p in (phi.x_min, phi.x_max)]
    lo, hi = (sp.simplify(expr.subs(pt)) for pt in point)
    # phi's values are floats: they match g's exact values to a few ulps of their size (an
    # absolute 1e-9 would accept any g on a range of 1e-9 and refuse every g at 1e9)
    scale = max(abs(phi.v_min), abs(phi.v_max), phi.range)
    if not (lo.is_real and hi.is_real) or max(abs(float(lo) - phi.v_min),
                                              abs(float(hi) - phi.v_max)) > 4 * np.finfo(float).eps * scale:
        return False
    at = [sp.And(*(sp.Eq(x, pt[x]) for x in xs)) for pt in point]
    claim = sp.And(expr >= lo, sp.Or(expr > lo, at[0]), expr <= hi, sp.Or(expr < hi, at[1]))
    label = f"same Phi on the cube: extremes {lo}, {hi} only at x_min, x_max, g = {expr}"
    return prove(claim, xs, in_cube(xs), label=label).proved


def lp_witness(cls: FunctionClass, task: Task, eps: float) -> Witness | None:
    """The exact grid witness: LP optima at the worst query (or pair) under canonical Φ.

    Returns None when even the best pair stays better than chance (the class is reliable
    for the task on this grid).
    """
    grid, phi = cls.grid, cls.canonical_phi()
    cons = cls.grid_constraints(grid, phi)
    if cons is None or phi.range == 0:
        return None
    # Uniqueness margin δ: small against ε·h, since near-extreme grid neighbours (one step h
    # away) must differ by δ and in affine-like classes that costs up to δ/h at the query.
    delta = min(eps * grid.step / 4, phi.range / 8)
    queries = cls.query_points(phi, task)
    if task is Task.AFC:
        # Candidate pairs: vertices and the centre; z, z′ swap order in the two members.
        cand = check_in_cube(np.concatenate([grid.points[grid.is_vertex()],
                                             np.full((1, cls.d), 0.5)]), cls.d)
        for i in range(len(cand)):
            for j in range(i + 1, len(cand)):
                rng = difference_range(cons, grid, phi, cand[i], cand[j], delta)
                if rng.high >= AFC_MARGIN * phi.range and -rng.low >= AFC_MARGIN * phi.range:
                    return Witness(task, rng.f_high, rng.f_low, phi, (cand[i], cand[j]), "LP")
        return None
    best_gap, best_w = -1.0, None
    for z in queries:
        rng = value_range(cons, grid, phi, z, delta)
        if rng.high - rng.low > best_gap:
            best_gap = rng.high - rng.low
            best_w = Witness(task, rng.f_high, rng.f_low, phi, (z.copy(),), "LP")
    if best_w is not None and best_w.lower_bound() >= 0.5 - eps / phi.range:
        return best_w
    return None


def diagonal_phi(d: int) -> Visualization:
    """Φ = (0, 1, 0, 1): the visualization of every strictly increasing unit with range 1."""
    return from_extremes(np.zeros(d), np.ones(d), 0.0, 1.0)


def ensure_query(z: ArrayLike, d: int) -> Array:
    """Validate one query point in the cube, return shape (d,)."""
    return check_in_cube(z, d, name="query z")[0]
