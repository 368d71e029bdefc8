"""Lipschitz units: theorem in theory/classes/lipschitz.py, proof in proofs/lipschitz.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.classes import KAPPA_LARGE, KAPPA_SMALL, Lipschitz
from fvtrust.theory.decoders import lipschitz_band
from fvtrust.theory.domain import l1
from tests.theory.nogo import arbitrary_predictions, assert_nogo, eps_fractions

LARGE, SMALL = Lipschitz(KAPPA_LARGE), Lipschitz(KAPPA_SMALL)


@given(LARGE.strategy(), st.integers(0, 10_000), eps_fractions, st.lists(arbitrary_predictions, max_size=3))
def test_large_L_pair_defeats_every_decoder(f, index, frac, predictions):
    assert LARGE.membership(f)
    phi = LARGE.visualize(f)
    reach = phi.range / LARGE.lipschitz_constant(phi)
    pts = LARGE.grid.points
    far = pts[np.minimum(l1(pts, phi.x_min), l1(pts, phi.x_max)) >= reach]
    if len(far) == 0:
        return  # this member's extremes leave no far query; the band beats chance here
    pair = LARGE.counterexample_pair(phi, far[index % len(far)], frac * phi.range / 2)
    assert_nogo(LARGE, pair, predictions)


@given(st.sampled_from([SMALL, LARGE]).flatmap(lambda c: st.tuples(st.just(c), c.strategy())))
def test_band_decoder_meets_its_proven_bound(cls_and_f):
    cls, f = cls_and_f
    assert cls.membership(f)
    phi = cls.visualize(f)
    dec = cls.decoder()
    pts = cls.grid.points
    lower, upper = lipschitz_band(phi, pts, dec.constant(phi))
    values = f(pts)
    assert np.all(values >= lower - 1e-9) and np.all(values <= upper + 1e-9)
    err = np.abs(dec(phi, pts) - values)
    assert np.all(err <= (upper - lower) / 2 + 1e-9)


@given(SMALL.strategy())
def test_small_L_beats_chance_on_every_member(f):
    phi = SMALL.visualize(f)
    bound = SMALL.decoder().bound(phi, SMALL.grid.points)
    assert bound < 0.5 * phi.range


def test_near_query_is_rejected_with_the_reason():
    with pytest.raises(ValueError, match="within R/L"):
        LARGE.counterexample_pair(LARGE.canonical_phi(), [0.02, 0.0], 1e-3)


def test_kappa_below_one_is_rejected():
    with pytest.raises(ValueError, match="kappa must be >= 1"):
        Lipschitz(0.5)


@given(SMALL.strategy())
def test_every_member_stays_within_the_closed_form_worst_case(f):
    from fvtrust.theory.classes.lipschitz import worst_case_error
    from fvtrust.theory.tasks import Task

    phi = SMALL.visualize(f)
    if phi.range == 0:
        return
    bound = SMALL.decoder().bound(phi, SMALL.grid.points) / phi.range
    assert bound <= worst_case_error(KAPPA_SMALL, 2, Task.SUP)[0] + 1e-9


@pytest.mark.parametrize("d, below, at", [(1, 1.99, 2.0), (2, 1.49, 1.5), (3, 1.49, 1.5)])
def test_chance_threshold_both_sides(d, below, at):
    from fvtrust.theory.classes.lipschitz import chance_threshold, worst_case_error
    from fvtrust.theory.tasks import Task

    assert chance_threshold(d) == at
    assert worst_case_error(below, d, Task.SUP)[0] < 0.5 <= worst_case_error(at, d, Task.SUP)[0]
    assert Lipschitz(below, d=d).key == "lipschitz_small" and Lipschitz(at, d=d).key == "lipschitz_large"


@pytest.mark.parametrize("d", [2, 3, 4, 5, 7])
def test_the_worst_case_is_attained_in_odd_and_even_d(d):
    """κ − 1 is reached in every d ≥ 2 (v0.2 said "not attained" for odd d): the witness is a
    consistent Φ (‖a − b‖₁ ≥ d/κ, inside the cube) with e(x) = min(1/2, κ − 1) exactly, and an
    independent dense search over the cube never beats it."""
    from fractions import Fraction as F

    from fvtrust.theory.classes.lipschitz import half_width, worst_case_error, worst_case_witness
    from fvtrust.theory.tasks import Task

    rng = np.random.default_rng(d)
    for kappa in (F(1), F(21, 20), F(6, 5), F(5, 4), F(7, 5), F(3, 2), F(2), F(20)):
        x, a, b = worst_case_witness(kappa, d)
        assert all(0 <= v <= 1 for p in (x, a, b) for v in p)
        assert sum(abs(p - q) for p, q in zip(a, b, strict=True)) >= d / kappa
        assert half_width(kappa, d, x, a, b) == min(F(1, 2), kappa - 1)
        bound, tight = worst_case_error(float(kappa), d, Task.SUP)
        assert tight and bound == pytest.approx(float(min(F(1, 2), kappa - 1)))
        # random consistent placements (not the package's witness) stay below the bound
        pts = rng.random((3, 4000, d))
        pts[:, :, :] = np.where(rng.random((3, 4000, d)) < 0.3, np.round(pts), pts)  # faces, corners
        xs, as_, bs = pts
        ok = np.abs(as_ - bs).sum(1) >= d / float(kappa)
        s = float(kappa) / d
        e = (np.minimum(1, s * np.abs(xs - as_).sum(1)) + np.minimum(1, s * np.abs(xs - bs).sum(1)) - 1) / 2
        assert (e[ok] <= bound + 1e-12).all()


def test_lp_over_every_phi_matches_the_closed_form_at_kappa_4_3():
    # On the 5-point grid the attaining Φ of κ − 1 (1 − 1/κ = 1/4) is a grid placement.
    from fvtrust.theory.classes.lipschitz import lp_worst_case, worst_case_error
    from fvtrust.theory.tasks import Task

    lp, _ = lp_worst_case(4 / 3, 2, 5)
    assert worst_case_error(4 / 3, 2, Task.SUP)[0] == pytest.approx(1 / 3)
    assert lp == pytest.approx(1 / 3, abs=1e-9)
    below, _ = lp_worst_case(1.45, 2, 5)
    assert below < 0.5


def test_membership_counts_the_factor_d():
    # f = x0 on [0,1]^2: Lip = 1, R = 1, so Lip·d = 2. In the class for κ = 2, not for κ = 1.9.
    from fvtrust.theory.functions import AffineFunction

    f = AffineFunction([1.0, 0.0], 0.0)
    assert Lipschitz(2.0).membership(f)
    verdict = Lipschitz(1.9).membership(f)
    assert not verdict and "exceeds" in verdict.reason


def _ridge(t):
    """a·s for s = x0 + x1 ≤ t, a·(2t − s) beyond: peak a·t on the line s = t, ℓ1-Lipschitz a."""
    import sympy as sp

    from fvtrust.theory.functions import ExpressionFunction, cube_symbols

    x0, x1 = cube_symbols(2)
    s = x0 + x1
    return ExpressionFunction(sp.Min(s, 2 * t - s), 2, "ridge")


def test_a_maximal_slope_member_with_an_off_grid_peak_is_a_member():
    """t = 5/3: Lip·d = 2 = κ·R exactly for κ = 1.2 with R = 5/3, a peak between the grid lines
    (grid sums 1.6 and 1.7 give at most 1.6333): the grid's range is too small, the cube's is exact."""
    import sympy as sp

    from fvtrust.theory.functions import PointwiseFunction

    f = _ridge(sp.Rational(5, 3))
    cls = Lipschitz(1.2)
    assert cls.membership(f), cls.membership(f).reason
    on_grid_only = cls.membership(PointwiseFunction(f, 2))  # no closed form: the grid cannot see the peak
    assert (on_grid_only.answer, on_grid_only.method) == ("undecided", "grid only")
    assert "edge slope" in on_grid_only.reason  # what it saw, without claiming it
    assert not Lipschitz(1.19).membership(f)  # and the exact check is tight: a hair less κ fails


def test_a_steep_off_grid_spike_is_not_a_member():
    """x0 + x1 (a member for κ = 1.2: Lip·d = 2 ≤ 2.4) plus a narrow cone of slope 1 at
    (0.33, 0.33) that no grid point touches: Lip doubles, so it is not a member; the grid
    check alone would accept it."""
    import sympy as sp

    from fvtrust.theory.functions import ExpressionFunction, PointwiseFunction, cube_symbols

    x0, x1 = cube_symbols(2)
    p = sp.Rational(33, 100)
    spike = sp.Max(0, sp.Rational(4, 100) - sp.Abs(x0 - p) - sp.Abs(x1 - p))
    g = ExpressionFunction(x0 + x1 + spike, 2, "spiked")
    cls = Lipschitz(1.2)
    verdict = cls.membership(g)
    assert not verdict and "on the cube" in verdict.reason
    grid_only = cls.membership(PointwiseFunction(g, 2))  # a grid-only check would accept it
    assert (grid_only.answer, grid_only.method) == ("undecided", "grid only")


@pytest.mark.parametrize(("kappa", "d", "expected"), [
    (1.2, 2, "1/5"), (1.3, 2, "3/10"), (1.2, 1, "1/10"), (1.6, 1, "3/10"), (1.1, 3, "1/5"),
    (1.2, 3, "2/5")])
def test_2afc_largest_misordered_gap_is_exact_on_the_cube(kappa, d, expected):
    from fractions import Fraction

    from fvtrust.theory.classes.lipschitz import afc_margins

    m = afc_margins(kappa, d)
    assert m is not None and m.band_decoder_wrong == Fraction(expected) == m.flip
    if d >= 2:  # the general-d proof: a misordered gap is at most e(z) + e(z′) ≤ 2(κ − 1)
        assert m.band_decoder_wrong <= 2 * Fraction(kappa).limit_denominator(100) - 2
    # the witness, evaluated independently: the band decoder misorders a pair of that gap
    w, s = m.witness, kappa / d
    u = {p: min(1.0, s * np.abs(w[p] - w["a"]).sum()) for p in "zw"}
    lo = {p: max(0.0, 1 - s * np.abs(w[p] - w["b"]).sum()) for p in "zw"}
    assert s * np.abs(w["a"] - w["b"]).sum() >= 1 - 1e-9  # a consistent Φ
    assert u["z"] + lo["z"] <= u["w"] + lo["w"] + 1e-9
    assert min(u["z"] - lo["w"], s * np.abs(w["z"] - w["w"]).sum()) == pytest.approx(float(m.flip))


def test_2afc_threshold_in_d2_is_five_quarters():
    from fvtrust.theory.classes.lipschitz import afc_reliable_below

    assert afc_reliable_below(2, tol=1e-3) == pytest.approx(1.25, abs=1e-3)


@given(SMALL.strategy(), st.lists(st.tuples(*[st.floats(0, 1)] * 4), min_size=1, max_size=20))
def test_band_decoder_orders_every_quarter_range_pair_off_the_grid(f, pairs):
    from fvtrust.theory.tasks import afc_accuracy

    phi = SMALL.visualize(f)
    arr = np.array(pairs, dtype=float).reshape(-1, 2, 2)
    assert afc_accuracy(SMALL.decoder(), f, phi, arr) == 1.0


def test_large_L_2afc_pair_is_closed_form_and_verified_on_the_cube():
    from fvtrust.theory.classes.lipschitz import afc_pair
    from fvtrust.theory.table import verify_witness
    from fvtrust.theory.tasks import AFC_MARGIN, Task

    w = LARGE.explicit_witness(Task.AFC, 1e-3)
    assert w is not None and w.f_plus.expression is not None and w.f_minus.expression is not None
    assert all(verify_witness(LARGE, w).values()) and w.lower_bound() == 0.5
    z, z2 = w.queries
    gap_plus = w.f_plus(z[None])[0] - w.f_plus(z2[None])[0]
    gap_minus = w.f_minus(z2[None])[0] - w.f_minus(z[None])[0]
    assert min(gap_plus, gap_minus) >= AFC_MARGIN * w.R
    # small κ: the tents of radius R/L would reach the extremes — no pair, and the table proves C
    assert SMALL.explicit_witness(Task.AFC, 1e-3) is None
    with pytest.raises(ValueError, match="closer than R/L"):
        afc_pair(w.phi, LARGE.lipschitz_constant(w.phi), 1e-3, [1.0, 0.0], [0.98, 0.0])


def test_a_tabulated_unit_is_judged_exactly_on_its_grid_with_the_factor_d():
    """On the grid, ℓ1 paths are edge paths: a tabulated unit's answer is exact. x0 + x1/2:
    Lip·d = 2 > κR = 1.8 (not a member); x0 + 2x1/3: Lip·d = 2 = κR (a member at the bound)."""
    from fvtrust.theory.functions import GridFunction

    cls = Lipschitz(1.2)
    pts = cls.grid.points
    steep = cls.membership(GridFunction(cls.grid, pts[:, 0] + pts[:, 1] / 2))
    at_bound = cls.membership(GridFunction(cls.grid, pts[:, 0] + 2 * pts[:, 1] / 3))
    assert (steep.answer, steep.method) == ("non-member", "representation")
    assert (at_bound.answer, at_bound.method) == ("member", "representation")
