"""Bad input to the theory: NaN/inf units and degenerate members get errors naming them."""

import numpy as np
import pytest

from fvtrust.theory.classes import all_classes
from fvtrust.theory.classes.affine import Affine
from fvtrust.theory.classes.lipschitz import Lipschitz
from fvtrust.theory.functions import AffineFunction, PointwiseFunction


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_units_are_refused_naming_the_value(bad):
    f = PointwiseFunction(lambda x: np.where(x[:, 0] > 0.5, bad, x[:, 1]), d=2, name="broken")
    with pytest.raises(ValueError, match=r"broken.*returned (nan|inf|-inf) at x=.*NaN or infinite"):
        f(np.random.default_rng(0).random((50, 2)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        Lipschitz(20).membership(f)


def test_constant_affine_member_has_no_pair():
    with pytest.raises(ValueError, match=r"constant \(w = 0, R = 0\)"):
        Affine(d=2).counterexample_pair(AffineFunction([0.0, 0.0], 0.3), [1.0, 0.0], 0.1)


def test_every_class_still_builds_finite_members():
    for cls in all_classes():
        f = cls.sample(0)
        assert np.isfinite(f(cls.grid.points)).all(), cls.key
