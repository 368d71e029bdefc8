"""Convex units: theorem in theory/classes/convex.py, proof in proofs/convex.py."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from fvtrust.theory.classes import Convex
from fvtrust.theory.classes.convex import convex_by_rules
from fvtrust.theory.functions import ExpressionFunction, cube_symbols
from fvtrust.theory.visualization import grid_visualization
from tests.theory.nogo import arbitrary_predictions, assert_nogo, eps_fractions

CLS = Convex()
VERTICES = [np.array(v, dtype=float) for v in ((0, 0), (0, 1), (1, 0), (1, 1))]


@given(CLS.strategy(), st.sampled_from(VERTICES), eps_fractions, st.lists(arbitrary_predictions, max_size=3))
def test_pair_defeats_every_decoder(f, z, frac, predictions):
    assert CLS.membership(f)
    phi = grid_visualization(f, CLS.grid)
    pair = CLS.counterexample_pair(f, z, frac * phi.range / 2)
    assert convex_by_rules(pair.f_plus.expression, cube_symbols(2))
    assert_nogo(CLS, pair, predictions)


def test_non_convex_is_rejected_with_a_witness():
    x0, x1 = cube_symbols(2)
    concave = ExpressionFunction(-(x0 - 0.5) ** 2 - (x1 - 0.5) ** 2, 2)
    verdict = CLS.membership(concave)
    assert not verdict and "convex" in verdict.reason
    with pytest.raises(ValueError, match="not in class 'convex'"):
        CLS.counterexample_pair(concave, [0.0, 0.0], 0.01)


def test_non_vertex_query_is_rejected():
    with pytest.raises(ValueError, match="not a vertex"):
        CLS.counterexample_pair(CLS.canonical_phi(), [0.5, 0.0], 0.01)


def test_rules_reject_a_concave_expression():
    x0, x1 = cube_symbols(2)
    assert not convex_by_rules(-(x0**2), (x0, x1))
    assert convex_by_rules(sp.Max(x0, 2 * x1 - 1) + 3 * (x0 - x1) ** 2, (x0, x1))


def test_a_narrow_off_grid_dent_is_found_on_the_cube():
    """|x0 − ½| + |x1 − ½| with a 0.01-wide pit at (0.33, 0.33): not convex (its rim is a
    ridge), but no grid point and almost no random pair sees it. The closed form is judged on
    the cube by z3; the same values without a closed form pass the grid and random checks,
    which therefore answer "undecided", never "member"."""
    from fvtrust.theory.functions import PointwiseFunction

    x0, x1 = cube_symbols(2)
    p, r = sp.Rational(33, 100), sp.Rational(1, 100)
    dented = ExpressionFunction(sp.Abs(x0 - sp.Rational(1, 2)) + sp.Abs(x1 - sp.Rational(1, 2))
                                - sp.Max(0, r - sp.Abs(x0 - p) - sp.Abs(x1 - p)), 2)
    verdict = CLS.membership(dented)
    assert not verdict and "on the cube" in verdict.reason
    evidence = CLS.membership(PointwiseFunction(dented, 2))  # values alone: it cannot see the pit
    assert (evidence.answer, evidence.method) == ("undecided", "grid only")
    smooth = ExpressionFunction(sp.Abs(x0 - sp.Rational(1, 2)) + sp.Max(x1, 1 - 2 * x1), 2)
    assert CLS.membership(smooth)


@pytest.mark.parametrize("eps", [1e-3, 0.05])
def test_local_pair_near_x_max_is_verified_on_the_cube(eps):
    from fvtrust.theory.classes.convex import local_pair
    from fvtrust.theory.domain import l1
    from fvtrust.theory.tasks import LOCAL_RADIUS

    cls = CLS
    phi = cls.canonical_phi()
    plus, minus, z = local_pair(phi, eps)
    assert float(l1(z, phi.x_max)) <= LOCAL_RADIUS + 1e-12
    for f in (plus, minus):
        assert cls.membership(f) and cls.shares_visualization(f, phi)  # z3 on the cube
    assert plus(z[None])[0] - minus(z[None])[0] >= phi.range - 2 * eps - 1e-12
    with pytest.raises(ValueError, match="needs d >= 2"):
        local_pair(Convex(d=1).canonical_phi(), eps)

