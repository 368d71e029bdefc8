"""Exact reasoning about closed-form units: sympy expressions translated to z3.

z3 decides real arithmetic exactly, so a claim such as "for every x in [0, 1]^d,
f(x) ≤ f(b)" is either proved (the negation is unsatisfiable) or refuted with a concrete
model. ``z3-solver`` ships with the ``dev`` and ``proofs`` extras. Inside
:func:`recording_queries` every query z3 decides is kept as SMT-LIB 2, for a second solver
(``proofs/recheck.py``). Floats become the rationals they print as (:func:`exact`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sympy as sp


def exact(value: Any) -> sp.Rational:
    """A float as the rational it prints as (its shortest round-trip decimal), so that
    float(exact(v)) == v exactly: 0.3 → 3/10. (``nsimplify(v, rational=True)`` keeps 15 digits,
    which moves a value of 3·10⁵ by 3·10⁻¹⁰, and a point by as much.)"""
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{value!r} is not a finite number")
    return sp.Rational(repr(v))


def exact_floats(expr: Any) -> sp.Expr:
    """`expr` with every float in it replaced by :func:`exact` of it."""
    expr = sp.sympify(expr)
    return expr.xreplace({f: exact(f) for f in expr.atoms(sp.Float)})


def require_z3() -> Any:
    """Import z3, or explain how to install it."""
    try:
        import z3
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("exact proofs need z3: pip install 'fvtrust[proofs]'") from exc
    return z3


def to_z3(expr: sp.Expr, env: dict[sp.Symbol, Any], ctx: Any = None) -> Any:
    """Translate a sympy expression (+, ·, integer powers, Max, Min, Abs, Piecewise) to z3, in
    the z3 context of `env`'s variables (or `ctx`)."""
    z3 = require_z3()
    if ctx is None and env:
        ctx = next(iter(env.values())).ctx
    expr = sp.sympify(expr)
    if expr.is_Symbol:
        if expr not in env:
            raise ValueError(f"symbol {expr} has no z3 counterpart in the environment")
        return env[expr]
    if expr.is_Rational:
        return z3.RealVal(f"{expr.p}/{expr.q}", ctx)
    if expr.is_Float:
        return to_z3(exact(expr), env, ctx)
    if expr in (sp.true, sp.false):
        return z3.BoolVal(bool(expr), ctx)
    args = [to_z3(a, env, ctx) for a in expr.args]
    if isinstance(expr, sp.Add):
        return z3.Sum(*args)
    if isinstance(expr, sp.Mul):
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if isinstance(expr, sp.Pow):
        base, exp = expr.args
        if exp.is_Integer and exp > 0:
            out = args[0]
            for _ in range(int(exp) - 1):
                out = out * args[0]
            return out
        if exp.is_Integer and exp < 0:
            return 1 / to_z3(base ** (-exp), env, ctx)
        raise ValueError(f"non-integer power {expr} has no exact z3 form")
    if isinstance(expr, sp.Max | sp.Min):
        out = args[0]
        for a in args[1:]:
            out = z3.If(a > out, a, out) if isinstance(expr, sp.Max) else z3.If(a < out, a, out)
        return out
    if isinstance(expr, sp.Abs):
        return z3.If(args[0] >= 0, args[0], -args[0])
    if isinstance(expr, sp.Piecewise):
        out = None
        for value, cond in reversed(expr.args):
            v, c = to_z3(value, env, ctx), to_z3(cond, env, ctx)
            out = v if out is None else z3.If(c, v, out)
        return out
    relations = {sp.StrictLessThan: lambda a, b: a < b, sp.LessThan: lambda a, b: a <= b,
                 sp.StrictGreaterThan: lambda a, b: a > b, sp.GreaterThan: lambda a, b: a >= b,
                 sp.Equality: lambda a, b: a == b, sp.And: z3.And, sp.Or: z3.Or}
    for kind, make in relations.items():
        if isinstance(expr, kind):
            return make(*args)
    raise ValueError(f"no z3 translation for {type(expr).__name__}: {expr}")


@dataclass(frozen=True)
class SmtQuery:
    """One query z3 decided, as the SMT-LIB 2 script z3 was given: `expected` is z3's answer
    (``unsat`` for a proved claim, ``sat`` for an attained optimum or a refuted claim), which
    a second solver can re-check from `script` alone."""

    label: str
    expected: str
    script: str


_QUERIES: ContextVar[list[SmtQuery] | None] = ContextVar("fvtrust_smt_queries", default=None)


@contextmanager
def recording_queries() -> Iterator[list[SmtQuery]]:
    """Collect every query z3 decides inside the block (:func:`prove`, :func:`exact_extremes`,
    the cube programs), as :class:`SmtQuery`; ``fvtrust proofs`` writes them beside its output."""
    sink: list[SmtQuery] = []
    token = _QUERIES.set(sink)
    try:
        yield sink
    finally:
        _QUERIES.reset(token)


def record_query(label: str, assertions: Iterable[Any], expected: str) -> None:
    """Keep `assertions` (z3 terms) with z3's answer when :func:`recording_queries` is active."""
    sink = _QUERIES.get()
    if sink is None:
        return
    z3 = require_z3()
    assertions = list(assertions)
    solver = z3.Solver(ctx=assertions[0].ctx if assertions else None)
    solver.add(*assertions)
    # z3 writes "status unknown" and no logic; the file states z3's answer and asks a second
    # solver for every theory (ALL), so it is a complete benchmark on its own
    body = solver.to_smt2().replace("(set-info :status unknown)", f"(set-info :status {expected})")
    sink.append(SmtQuery(label, expected, f"(set-logic ALL)\n{body}"))


def record_optimum(label: str, assertions: Iterable[Any], term: Any, value: Any, maximize: bool) -> None:
    """An optimum v of `term` that z3's optimizer found, as two re-checkable queries:
    constraints ∧ term > v (``unsat``: nothing beyond) and constraints ∧ term = v (``sat``)."""
    if _QUERIES.get() is None:
        return
    assertions = list(assertions)
    beyond = term > value if maximize else term < value
    word = "max" if maximize else "min"
    record_query(f"{label}: nothing {'above' if maximize else 'below'} the {word} {value}",
                 [*assertions, beyond], "unsat")
    record_query(f"{label}: the {word} {value} is attained", [*assertions, term == value], "sat")


@dataclass(frozen=True)
class Verdict:
    """Outcome of an exact check: proved, or refuted with a counterexample model."""

    proved: bool
    counterexample: dict[str, str] | None = None
    detail: str = ""


#: z3's budget for one quick exact check (a membership on the cube), in z3's resource units
#: (``rlimit``: a count of solver steps), not in seconds, so that whether a query is decided
#: does not depend on how busy the machine is. z3 ran 0.5–15·10⁶ units/s on these queries (one
#: busy core), so 5·10⁶ is at most about 10 s; the largest quick query the tests decide uses
#: 1.5·10⁶, the largest of the slowest kind (ℓ1-Lipschitz of a Max-sum) 0.4·10⁶.
QUICK_RLIMIT = 5_000_000
#: the wall-clock net under a budget, for a host far slower than any we measured on
WALL_NET_MS = 120_000


def set_budget(solver: Any, rlimit: int | None, timeout_ms: int) -> None:
    """Give a z3 Solver or Optimize its budget: `rlimit` resource units per check (None: no
    count limit) and a wall-clock `timeout_ms`."""
    solver.set("timeout", int(timeout_ms))
    if rlimit:
        solver.set("rlimit", int(rlimit))


def budget_words(rlimit: int | None, timeout_ms: int) -> str:
    """What ran out when z3 answers ``unknown`` under :func:`set_budget`."""
    wall = f"{timeout_ms / 1000:g} s of wall clock"
    return f"its budget ({rlimit:,} resource units, or {wall})" if rlimit else wall


def prove(claim: sp.Basic, variables: Iterable[sp.Symbol],
          assumptions: Iterable[sp.Basic] = (), timeout_ms: int = 60_000, label: str = "",
          rlimit: int | None = None) -> Verdict:
    """Prove ∀ variables: assumptions ⇒ claim, exactly, over the reals.

    The negation is handed to z3; ``unsat`` means proved, ``sat`` returns the model that
    refutes the claim, ``unknown`` (the budget ran out: `rlimit` resource units, when given,
    or `timeout_ms`) is reported as not proved. A decided query is kept under `label`
    (default: the claim) for :func:`recording_queries`.
    """
    z3 = require_z3()
    variables = list(variables)
    ctx = fresh_context()
    env = {v: z3.Real(str(v), ctx) for v in variables}
    extra = (set(sp.sympify(claim).free_symbols)
             | set().union(*(sp.sympify(a).free_symbols for a in assumptions))) - set(env)
    if extra:
        raise ValueError(f"free symbols {sorted(map(str, extra))} are not quantified")
    solver = z3.Solver(ctx=ctx)
    set_budget(solver, rlimit, timeout_ms)
    for a in assumptions:
        solver.add(to_z3(a, env, ctx))
    solver.add(z3.Not(to_z3(claim, env, ctx)))
    result = solver.check()
    if result in (z3.unsat, z3.sat):
        record_query(_short(label or f"for all {', '.join(map(str, variables))}: {claim}"),
                     solver.assertions(), str(result))
    if result == z3.unsat:
        return Verdict(True, detail="z3: negation unsatisfiable")
    if result == z3.sat:
        model = solver.model()
        return Verdict(False, {str(v): str(model.eval(env[v], model_completion=True))
                               for v in variables}, detail="z3: counterexample found")
    return Verdict(False, detail=f"z3: undecided within {budget_words(rlimit, timeout_ms)} "
                                 f"({solver.reason_unknown()})")


def fresh_context() -> Any:
    """A z3 context of its own for one query. In the shared default context a query's time
    depends on the queries before it: after a few hundred others in one process, an optimum
    that z3 finds in 15 ms alone ran past a 3 s limit, so a membership verdict depended on what
    the process had asked before (found by tests/theory/test_phi_anywhere.py run alone)."""
    return require_z3().Context()


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def in_cube(symbols: Iterable[sp.Symbol]) -> list[sp.Basic]:
    """The assumptions 0 ≤ x_i ≤ 1."""
    return [c for s in symbols for c in (s >= 0, s <= 1)]


def _z3_rational(value: Any) -> sp.Rational:
    text = str(value)
    if "oo" in text or "epsilon" in text or "?" in text:
        raise ValueError(f"z3 returned a non-rational optimum {text}")
    return sp.Rational(text)


def exact_extremes(expr: sp.Expr, symbols: Iterable[sp.Symbol], rlimit: int = QUICK_RLIMIT,
                   timeout_ms: int = WALL_NET_MS) -> tuple[sp.Rational, sp.Rational] | None:
    """(max, min) of a piecewise-linear closed form over [0, 1]^d, exactly (z3's optimizer
    over linear real arithmetic; Max, Min and Abs become if-then-else); None when z3 does not
    finish within its budget (:func:`set_budget`; the caller then falls back to what it can
    check)."""
    z3 = require_z3()
    symbols = list(symbols)
    out = []
    for maximize in (True, False):
        ctx = fresh_context()
        env = {v: z3.Real(str(v), ctx) for v in symbols}
        term = to_z3(expr, env, ctx)
        opt = z3.Optimize(ctx=ctx)
        set_budget(opt, rlimit, timeout_ms)
        for c in in_cube(symbols):
            opt.add(to_z3(c, env))
        handle = opt.maximize(term) if maximize else opt.minimize(term)
        if opt.check() != z3.sat:
            return None
        try:
            out.append(_z3_rational(opt.upper(handle) if maximize else opt.lower(handle)))
        except ValueError:  # an optimum z3 could only bound (it stopped early)
            return None
        record_optimum(_short(f"{'max' if maximize else 'min'} of {expr} on [0, 1]^{len(symbols)}"),
                       opt.assertions(), term, to_z3(out[-1], env), maximize)
    return out[0], out[1]


def lipschitz_l1(expr: sp.Expr, symbols: Iterable[sp.Symbol], bound: sp.Expr,
                 rlimit: int = QUICK_RLIMIT, timeout_ms: int = WALL_NET_MS) -> Verdict:
    """Prove f(x) − f(y) ≤ bound·‖x − y‖₁ for every x, y in [0, 1]^d (so |f(x) − f(y)| too,
    by symmetry): the exact ℓ1-Lipschitz test of a closed form on the whole cube."""
    xs = list(symbols)
    ys = [sp.Symbol(f"_y{i}") for i in range(len(xs))]
    other = sp.sympify(expr).subs(dict(zip(xs, ys, strict=True)), simultaneous=True)
    distance = sum((sp.Abs(x - y) for x, y in zip(xs, ys, strict=True)), sp.Integer(0))
    return prove(sp.Le(expr - other, bound * distance), [*xs, *ys], in_cube(xs) + in_cube(ys),
                 timeout_ms=timeout_ms, rlimit=rlimit,
                 label=f"l1-Lipschitz({bound}) on the cube: f = {expr}")


def _midpoint(expr: sp.Expr, symbols: Iterable[sp.Symbol], relation: Any, word: str,
              rlimit: int, timeout_ms: int) -> Verdict:
    """Prove relation(2f((x + y)/2), f(x) + f(y)) for every x, y in [0, 1]^d."""
    xs = list(symbols)
    ys = [sp.Symbol(f"_y{i}") for i in range(len(xs))]
    expr = sp.sympify(expr)
    at_y = expr.subs(dict(zip(xs, ys, strict=True)), simultaneous=True)
    at_mid = expr.subs({x: (x + y) / 2 for x, y in zip(xs, ys, strict=True)}, simultaneous=True)
    return prove(relation(2 * at_mid, expr + at_y), [*xs, *ys], in_cube(xs) + in_cube(ys),
                 timeout_ms=timeout_ms, rlimit=rlimit, label=f"midpoint {word} on the cube: f = {expr}")


def midpoint_convex(expr: sp.Expr, symbols: Iterable[sp.Symbol], rlimit: int = QUICK_RLIMIT,
                    timeout_ms: int = WALL_NET_MS) -> Verdict:
    """Prove f((x + y)/2) ≤ (f(x) + f(y))/2 for every x, y in [0, 1]^d: for a continuous f
    (every closed form here) that is convexity on the whole cube, and it stays linear
    arithmetic, which z3 decides."""
    return _midpoint(expr, symbols, sp.Le, "convex", rlimit, timeout_ms)


def midpoint_affine(expr: sp.Expr, symbols: Iterable[sp.Symbol], rlimit: int = QUICK_RLIMIT,
                    timeout_ms: int = WALL_NET_MS) -> Verdict:
    """Prove f(x) + f(y) = 2f((x + y)/2) for every x, y in [0, 1]^d: for a continuous f that is
    affinity on the whole cube."""
    return _midpoint(expr, symbols, sp.Eq, "affine", rlimit, timeout_ms)


def is_piecewise_linear(expr: sp.Expr, symbols: Iterable[sp.Symbol]) -> bool:
    """True when `expr` is built from affine terms with +, constant ·, Max, Min and Abs only:
    then every check above stays in linear real arithmetic, which z3 decides quickly."""
    symbols = set(symbols)
    expr = sp.sympify(expr)
    if not (expr.free_symbols & symbols) or expr.is_Symbol:
        return True
    if isinstance(expr, sp.Add | sp.Max | sp.Min | sp.Abs):
        return all(is_piecewise_linear(a, symbols) for a in expr.args)
    if isinstance(expr, sp.Mul):
        varying = [a for a in expr.args if a.free_symbols & symbols]
        return len(varying) == 1 and is_piecewise_linear(varying[0], symbols)
    return False


def has_rational_coefficients(expr: sp.Expr) -> bool:
    """Every number in `expr` is rational (floats are exact binary rationals): z3's real
    arithmetic takes them exactly; π or √2 it cannot."""
    expr = sp.sympify(expr)
    return all(a.is_Rational or a.is_Float for a in expr.atoms(sp.Number)) and not expr.atoms(
        sp.NumberSymbol) and not any(isinstance(p, sp.Pow) and not p.exp.is_Integer
                                     for p in expr.atoms(sp.Pow))
