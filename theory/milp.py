"""Exact extremes of a ReLU network on the continuous cube, by mixed-integer linear programming.

For f = W_L ∘ ReLU ∘ … ∘ ReLU ∘ W_1 on X = [0, 1]^d (optionally ∩ an ℓ1 ball B(z, r)),
max_X f is the MILP (big-M encoding with interval bounds l ≤ ŷ ≤ u per hidden unit):

    h = ReLU(ŷ)  ⇔  h ≥ 0, h ≥ ŷ, h ≤ ŷ − l(1 − δ), h ≤ u·δ, δ ∈ {0, 1}   (l < 0 < u),
    h = ŷ where l ≥ 0, h = 0 where u ≤ 0,

solved by HiGHS (``scipy.optimize.milp``). The certificate is the pair (incumbent, dual
bound): f(x̂) is evaluated by the network itself, and the solver's dual bound B satisfies
max f ≤ B (up to its feasibility tolerance), so η = B − f(x̂) + tol bounds the optimality gap.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix

from fvtrust.theory.domain import Array
from fvtrust.theory.functions import ReLUNetwork

#: HiGHS's primal feasibility tolerance is 1e-7; an extreme is certified to this much on top
#: of the solver's own gap, scaled by the size of the network's weights (see _tolerance).
FEASIBILITY_TOL = 1e-7


@dataclass(frozen=True)
class Extreme:
    """A certified extreme: f(point) = value, and the true extreme lies within `eta` of it
    (max f ∈ [value, value + eta], or min f ∈ [value − eta, value])."""

    sense: str
    point: Array
    value: float
    bound: float
    eta: float
    seconds: float
    n_binaries: int


def _layers(net: ReLUNetwork) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy()) for m in net.linears]


def interval_bounds(net: ReLUNetwork, lower: Array, upper: Array) -> list[tuple[Array, Array]]:
    """Pre-activation bounds (l, u) of every layer for inputs in the box [lower, upper]."""
    out = []
    lo, hi = lower, upper
    for k, (w, b) in enumerate(_layers(net)):
        wp, wn = np.clip(w, 0, None), np.clip(w, None, 0)
        pre_lo, pre_hi = wp @ lo + wn @ hi + b, wp @ hi + wn @ lo + b
        out.append((pre_lo, pre_hi))
        if k < len(net.linears) - 1:
            lo, hi = np.maximum(pre_lo, 0), np.maximum(pre_hi, 0)
    return out


@contextmanager
def _quiet_c_stdout() -> Iterator[None]:
    """Silence HiGHS's C-level diagnostics (printed to fd 1 even with disp off)."""
    fd = 1
    try:
        sys.stdout.flush()
        saved = os.dup(fd)
    except OSError:  # no file descriptor 1: nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _tolerance(net: ReLUNetwork) -> float:
    # A constraint violated by t can move the output by at most t·(product of layer norms).
    scale = 1.0
    for w, _ in _layers(net):
        scale *= max(1.0, float(np.abs(w).sum(1).max()))
    return FEASIBILITY_TOL * scale


def network_extreme(net: ReLUNetwork, sense: str = "max", ball: tuple[ArrayLike, float] | None = None,
                    time_limit: float | None = 60.0) -> Extreme:
    """The certified max (or min) of `net` over [0, 1]^d, or over [0, 1]^d ∩ B₁(z, r).

    The network is encoded exactly as a MILP (:func:`_encode`: big-M ReLUs with interval
    bounds), solved by HiGHS with a zero relative gap (:func:`_solve`), and the incumbent is
    re-evaluated on the network itself; η is the certified gap between that value and the
    solver's dual bound, widened by the float tolerance (:func:`_certify`)."""
    if sense not in ("max", "min"):
        raise ValueError(f"sense must be 'max' or 'min', got {sense!r}")
    lower, upper, z, r = _domain(net.d, ball)
    program = _encode(net, lower, upper, None if ball is None else (z, r))
    sign = -1.0 if sense == "max" else 1.0
    res, seconds = _solve(program, sign, time_limit)
    if res.x is None:
        raise RuntimeError(f"MILP for the {sense} of {net.name} found no solution: {res.message}")
    x = np.clip(res.x[:net.d], lower, upper)
    if z is not None and r is not None:
        excess = np.abs(x - z).sum() - r
        if excess > 0:  # pull the incumbent back into the ball (round-off only)
            x = z + (x - z) * (r / (r + excess))
    return _certify(net, sense, sign, x, res, program.b_out, seconds, program.n_binary)


def _domain(d: int, ball: tuple[ArrayLike, float] | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float | None]:
    """The box [lower, upper] the search runs over (the cube, cut to the ball's box), and the
    ball's centre and radius (None without a ball)."""
    lower, upper = np.zeros(d), np.ones(d)
    if ball is None:
        return lower, upper, None, None
    z = np.asarray(ball[0], dtype=np.float64).reshape(-1)
    r = float(ball[1])
    if z.shape != (d,) or not np.isfinite(r) or r <= 0:
        raise ValueError(f"ball must be (z in R^{d}, r > 0), got z={z.tolist()}, r={r}")
    lower, upper = np.maximum(lower, z - r), np.minimum(upper, z + r)
    if np.any(lower > upper):
        raise ValueError(f"the ball B(z={z.tolist()}, r={r}) misses the cube")
    return lower, upper, z, r


@dataclass
class _Program:
    """A MILP in HiGHS's form: objective c, variable bounds and integrality, rows
    (coefficients, lower, upper); `b_out` is the output bias the objective leaves out."""

    c: np.ndarray
    var_lo: list[float]
    var_hi: list[float]
    integrality: list[int]
    rows: list[tuple[dict[int, float], float, float]]
    b_out: float
    n_binary: int


def _encode(net: ReLUNetwork, lower: np.ndarray, upper: np.ndarray,
            ball: tuple[np.ndarray, float] | None) -> _Program:
    """The exact MILP of `net` on the box, with the ℓ1 ball as linear constraints."""
    d = net.d
    layers = _layers(net)
    bounds = interval_bounds(net, lower, upper)
    # Variable layout: x (d) | t (d, ℓ1 slack, only with a ball) | per hidden layer: ŷ, h, δ.
    var_lo: list[float] = list(lower)
    var_hi: list[float] = list(upper)
    integrality: list[int] = [0] * d
    t_index = None
    if ball is not None:
        t_index = len(var_lo)
        var_lo += [0.0] * d
        var_hi += [1.0] * d
        integrality += [0] * d
    prev = list(range(d))
    rows: list[tuple[dict[int, float], float, float]] = []
    n_bin = 0
    for k, (w, b) in enumerate(layers[:-1]):
        lo, hi = bounds[k]
        cur = []
        for j in range(w.shape[0]):
            y = len(var_lo)
            var_lo.append(float(lo[j]))
            var_hi.append(float(hi[j]))
            integrality.append(0)
            row = {y: 1.0}
            for i, p in enumerate(prev):
                if w[j, i] != 0:
                    row[p] = row.get(p, 0.0) - float(w[j, i])
            rows.append((row, float(b[j]), float(b[j])))  # ŷ − W h_prev = b
            h = len(var_lo)
            var_lo.append(0.0)
            var_hi.append(max(0.0, float(hi[j])))
            integrality.append(0)
            if lo[j] >= 0:
                rows.append(({h: 1.0, y: -1.0}, 0.0, 0.0))
            elif hi[j] > 0:
                delta = len(var_lo)
                var_lo.append(0.0)
                var_hi.append(1.0)
                integrality.append(1)
                n_bin += 1
                rows.append(({h: 1.0, y: -1.0}, 0.0, np.inf))  # h ≥ ŷ
                rows.append(({h: 1.0, y: -1.0, delta: -float(lo[j])}, -np.inf, -float(lo[j])))
                rows.append(({h: 1.0, delta: -float(hi[j])}, -np.inf, 0.0))  # h ≤ u δ
            cur.append(h)
        prev = cur
    if ball is not None:
        assert t_index is not None
        z, r = ball
        for i in range(d):
            rows.append(({t_index + i: 1.0, i: -1.0}, -float(z[i]), np.inf))  # t ≥ x − z
            rows.append(({t_index + i: 1.0, i: 1.0}, float(z[i]), np.inf))  # t ≥ z − x
        rows.append(({t_index + i: 1.0 for i in range(d)}, -np.inf, r))
    w_out, b_out = layers[-1]
    c = np.zeros(len(var_lo))
    for i, p in enumerate(prev):
        c[p] += float(w_out[0, i])
    return _Program(c, var_lo, var_hi, integrality, rows, float(b_out[0]), n_bin)


def _solve(program: _Program, sign: float, time_limit: float | None) -> tuple[Any, float]:
    """HiGHS on min sign·c·v with a zero relative gap: (its result, seconds)."""
    rows = program.rows
    a = lil_matrix((len(rows), len(program.var_lo)))
    row_lo, row_hi = np.empty(len(rows)), np.empty(len(rows))
    for r_i, (row, lb, ub) in enumerate(rows):
        for col, val in row.items():
            a[r_i, col] = val
        row_lo[r_i], row_hi[r_i] = lb, ub
    start = time.perf_counter()
    constraints = [LinearConstraint(a.tocsr(), row_lo, row_hi)] if rows else []
    options: dict[str, Any] = {"mip_rel_gap": 0.0}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)

    def solve(presolve: bool) -> Any:
        with _quiet_c_stdout():
            return milp(sign * program.c, integrality=np.array(program.integrality),
                        bounds=Bounds(program.var_lo, program.var_hi), constraints=constraints,
                        options={**options, "presolve": presolve})
    res = solve(True)
    if res.x is None:  # HiGHS's presolve occasionally breaks down numerically: solve as given
        res = solve(False)
    return res, time.perf_counter() - start


def _certify(net: ReLUNetwork, sense: str, sign: float, x: np.ndarray, res: Any, b_out: float,
             seconds: float, n_binary: int) -> Extreme:
    """The incumbent's value on the network itself, the solver's bound (its dual bound, else
    its objective) widened by the float tolerance, and η = their gap."""
    value = float(net(x[None])[0])
    dual = getattr(res, "mip_dual_bound", None)
    model_bound = sign * float(dual) + b_out if dual is not None and np.isfinite(dual) else np.nan
    if not np.isfinite(model_bound):
        model_bound = sign * float(res.fun) + b_out
    tol = _tolerance(net)
    if sense == "max":
        bound = max(model_bound, value) + tol
        eta = bound - value
    else:
        bound = min(model_bound, value) - tol
        eta = value - bound
    return Extreme(sense, x, value, bound, float(eta), seconds, n_binary)


@dataclass(frozen=True)
class NetworkExtremes:
    """Both certified extremes of a network on the cube."""

    minimum: Extreme
    maximum: Extreme

    @property
    def eta(self) -> float:
        return max(self.minimum.eta, self.maximum.eta)


def network_extremes(net: ReLUNetwork, time_limit: float | None = 60.0) -> NetworkExtremes:
    return NetworkExtremes(network_extreme(net, "min", time_limit=time_limit),
                           network_extreme(net, "max", time_limit=time_limit))
