"""Certified answers as memberships: the one place a :class:`~theory.certified.Certificate`
(or a form the certified bounds cannot enclose) becomes a three-answer :class:`Membership`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp

from fvtrust.theory.certified import (
    Certificate,
    Unsupported,
    convex_certificate,
    lipschitz_certificate,
    monotone_certificate,
)
from fvtrust.theory.classes.base import MEMBERSHIP_TOL, Membership
from fvtrust.theory.functions import UnitFunction, cube_symbols

Certifier = Callable[[sp.Expr, Sequence[sp.Symbol]], Certificate]


def certified_membership(certify: Certifier, f: UnitFunction, note: str = "") -> Membership:
    """The certifier's answer on f's closed form; `note` says why no exact check ran first."""
    try:
        cert = certify(f.expression, cube_symbols(f.d))
    except Unsupported as exc:
        return Membership.undecided(f"{note}{exc}", "certified bound")
    if cert.answer == "undecided":
        return Membership.undecided(note + cert.reason, "certified bound")
    return Membership(cert.answer == "member", note + cert.reason, "certified bound")


def z3_then_certified(f: UnitFunction, z3_check: Callable[[], Membership | None],
                      certify: Certifier) -> Membership:
    """The one order for closed forms: z3 on a piecewise-linear form with rational
    coefficients (`z3_check`: None when it does not decide), else — or when z3 runs out of
    its budget — the certified bounds, whose reason then says why z3 did not answer."""
    from fvtrust.theory.symbolic import (
        QUICK_RLIMIT,
        WALL_NET_MS,
        budget_words,
        has_rational_coefficients,
        is_piecewise_linear,
    )

    note = ""
    if is_piecewise_linear(f.expression, cube_symbols(f.d)):
        if has_rational_coefficients(f.expression):
            verdict = z3_check()
            if verdict is not None:
                return verdict
            note = f"z3 did not decide within {budget_words(QUICK_RLIMIT, WALL_NET_MS)}; "
        else:
            note = "irrational coefficients (z3 decides rationals); "
    return certified_membership(certify, f, note)


def lipschitz_certificate_of(kappa: float) -> Certifier:
    return lambda expr, xs: lipschitz_certificate(expr, xs, kappa, MEMBERSHIP_TOL)


def convex_certificate_of(expr: sp.Expr, xs: Sequence[sp.Symbol]) -> Certificate:
    return convex_certificate(expr, xs, MEMBERSHIP_TOL)


def monotone_certificate_of(expr: sp.Expr, xs: Sequence[sp.Symbol]) -> Certificate:
    return monotone_certificate(expr, xs, MEMBERSHIP_TOL)
